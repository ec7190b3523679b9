fn main() {
    eprintln!("pier-registry: not built yet");
    std::process::exit(1);
}
