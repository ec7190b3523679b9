//! Parses each file named on the command line and prints the errors and the build
//! check warnings (a quick check of the parser against real Dockerfiles).
fn main() {
    let mut failed = 0;
    let files: Vec<String> = std::env::args().skip(1).collect();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        match pier_dockerfile::parse(&text) {
            Ok(df) => {
                for w in &df.warnings {
                    println!("{f}:{}: {}: {}", w.line, w.rule, w.message);
                }
            }
            Err(e) => {
                failed += 1;
                println!("{f}: {e}");
            }
        }
    }
    println!("{} files, {failed} failed", files.len());
}
