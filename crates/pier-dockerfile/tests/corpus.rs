//! The corpus: each `corpus/NAME.Dockerfile` is parsed and the result (the AST, or the
//! error) compared with `corpus/NAME.expected`, its pretty-printed Debug form. Run
//! with `PIER_BLESS=1` to write the expected files after a deliberate change, then
//! review the diff.

use std::path::Path;

#[test]
fn corpus_matches_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let bless = std::env::var("PIER_BLESS").as_deref() == Ok("1");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "corpus too small: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let actual = match pier_dockerfile::parse(&text) {
            Ok(df) => format!("{df:#?}\n"),
            Err(e) => format!("error: {e}\n"),
        };
        let expected_path = file.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        if expected != actual {
            failures.push(format!(
                "{}: got\n{actual}\nexpected\n{expected}",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
