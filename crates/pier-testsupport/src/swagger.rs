//! A reader of the Engine API contract (`docker-engine-api.yaml`, the swagger) for tests
//! that check Pier against it. No YAML crate is in the tree, and the contract's layout
//! is regular (two-space indents, one key per line), so this reads lines: the names
//! used as keys anywhere, and the properties of a definition (following `allOf`
//! references).

use std::collections::BTreeSet;
use std::path::PathBuf;

/// The contract's text, from `/work/shared/reference` or from `shared/reference` beside
/// the repository; None when neither is there (tests then skip with a reason).
pub fn contract() -> Option<String> {
    let mut places = vec![PathBuf::from(
        "/work/shared/reference/docker-engine-api.yaml",
    )];
    if let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") {
        places.push(PathBuf::from(dir).join("../../../shared/reference/docker-engine-api.yaml"));
    }
    places.iter().find_map(|p| std::fs::read_to_string(p).ok())
}

/// Every name used as a key anywhere in the contract.
pub fn key_names(contract: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in contract.lines() {
        let t = line.trim_start().trim_start_matches("- ");
        if let Some((key, _)) = t.split_once(':') {
            let key = key.trim_matches('"');
            if !key.is_empty() && key.bytes().all(is_name_byte) {
                names.insert(key.to_string());
            }
        }
    }
    names
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The property names of definition `name` (under `definitions:`), in the contract's
/// order, with those of the definitions it takes in through `allOf` first; None if
/// there is no such definition.
pub fn definition_properties(contract: &str, name: &str) -> Option<Vec<String>> {
    let lines: Vec<&str> = contract.lines().collect();
    let start = lines.iter().position(|l| *l == "definitions:")?;
    let head = format!("  {name}:");
    let at = start + lines[start..].iter().position(|l| *l == head)?;
    let body: Vec<&str> = lines[at + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > 2)
        .copied()
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let line = body[i];
        let t = line.trim_start();
        // The definition's own `properties:` (indent 4) or an `allOf` member's (8).
        if t == "properties:" && (indent(line) == 4 || indent(line) == 8) {
            let keys = indent(line) + 2;
            i += 1;
            while i < body.len() && (body[i].trim().is_empty() || indent(body[i]) >= keys) {
                let l = body[i];
                if indent(l) == keys && !l.trim_start().starts_with('#') {
                    if let Some((key, _)) = l.trim_start().split_once(':') {
                        out.push(key.trim_matches('"').to_string());
                    }
                }
                i += 1;
            }
            continue;
        }
        if indent(line) == 6 {
            if let Some(reference) = t.strip_prefix("- $ref: ") {
                let target = reference.trim_matches('"').rsplit('/').next()?;
                out.extend(definition_properties(contract, target)?);
            }
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
definitions:
  Small:
    type: \"object\"
    properties:
      # a comment
      A:
        type: \"string\"
      B:
        type: \"object\"
        properties:
          Inner:
            type: \"string\"

  Both:
    allOf:
      - $ref: \"#/definitions/Small\"
      - type: \"object\"
        properties:
          C:
            type: \"integer\"
  Other:
    type: \"string\"
";

    #[test]
    fn properties_follow_all_of_and_skip_nested_ones() {
        assert_eq!(definition_properties(SAMPLE, "Small").unwrap(), ["A", "B"]);
        assert_eq!(
            definition_properties(SAMPLE, "Both").unwrap(),
            ["A", "B", "C"]
        );
        assert_eq!(
            definition_properties(SAMPLE, "Other").unwrap(),
            Vec::<String>::new()
        );
        assert!(definition_properties(SAMPLE, "Missing").is_none());
        assert!(key_names(SAMPLE).contains("Inner"));
    }
}
