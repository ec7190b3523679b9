//! BuildKit's own shell-lexer test tables (tests/buildkit-testfiles/envVarTest and
//! wordsTest, copied from moby/buildkit's frontend/dockerfile/shell) run through
//! [`process_word`] and [`process_words`], with the environment BuildKit's tests use.

use std::path::Path;

use pier_dockerfile::expand::{process_word, process_words};

fn table(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/buildkit-testfiles")
            .join(name),
    )
    .unwrap()
}

fn lookup_in(envs: &[(String, String)]) -> impl Fn(&str) -> Option<String> + '_ {
    move |k| envs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

#[test]
fn env_var_table() {
    let envs: Vec<(String, String)> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let lookup = lookup_in(&envs);
    let mut failures = Vec::new();
    let mut checked = 0;
    for (n, line) in table("envVarTest").lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(parts.len(), 3, "line {}: {line}", n + 1);
        let (platform, source, expected) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
        if platform == "W" {
            continue;
        }
        checked += 1;
        let got = process_word(source, '\\', &lookup);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(w), e) => w == e,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "line {}: {source:?} -> {got:?}, expected {expected:?}",
                n + 1
            ));
        }
    }
    assert!(checked > 150, "{checked}");
    assert!(
        failures.is_empty(),
        "{} of {checked}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn words_table() {
    let mut envs: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    for (n, line) in table("wordsTest").lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            let (k, v) = rest.trim_start_matches(' ').split_once('=').unwrap();
            envs.push((k.to_string(), v.to_string()));
            continue;
        }
        let (test, expected) = line.split_once('|').unwrap();
        let test = test.trim();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        let got = process_words(test, '\\', &lookup_in(&envs))
            .unwrap_or_else(|_| vec!["error".to_string()]);
        if got != expected {
            failures.push(format!(
                "line {}: {test:?} -> {got:?}, expected {expected:?}",
                n + 1
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
