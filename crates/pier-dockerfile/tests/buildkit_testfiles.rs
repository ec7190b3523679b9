//! BuildKit's own parser test files (tests/buildkit-testfiles, copied from
//! moby/buildkit): the first pass of Pier's parser must dump each `testfiles/*/Dockerfile`
//! exactly as BuildKit's `result`, and must refuse each `testfiles-negative/*/Dockerfile`.

use std::path::Path;

fn cases(dir: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/buildkit-testfiles")
        .join(dir);
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn first_pass_dumps_as_buildkit() {
    let dirs = cases("testfiles");
    assert!(dirs.len() >= 30, "{dirs:?}");
    let mut failures = Vec::new();
    for dir in dirs {
        let text = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        let expected = std::fs::read_to_string(dir.join("result")).unwrap();
        match pier_dockerfile::dump_first_pass(&text) {
            Ok(dump) if format!("{dump}\n") == expected => {}
            Ok(dump) => failures.push(format!(
                "{}:\n--- buildkit\n{expected}--- pier\n{dump}\n",
                dir.display()
            )),
            Err(e) => failures.push(format!("{}: {e}", dir.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn negative_cases_are_refused() {
    for dir in cases("testfiles-negative") {
        let text = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        assert!(
            pier_dockerfile::dump_first_pass(&text).is_err(),
            "{} parsed",
            dir.display()
        );
    }
}
