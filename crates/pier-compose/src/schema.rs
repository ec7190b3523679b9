//! Key validation against the Compose Specification: every object that the schema
//! closes (`additionalProperties: false`) accepts only its listed keys (and `x-` keys
//! where the schema allows them), and a key holding a mapping, a list or a scalar must
//! hold what the schema says. Scalar types are not checked here: compose casts
//! interpolated strings to numbers and booleans, and the typed model refuses what
//! does not cast.

use crate::schema_keys::OBJECTS;
use crate::yaml::{Node, NodeValue};

/// A key the schema refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key path of the object (`services.web`), or `(root)`.
    pub key: String,
    pub line: usize,
    pub message: String,
}

/// Checks `root` (a whole compose file or the merged model).
pub fn validate(root: &Node) -> Result<(), Violation> {
    let mut pattern = Vec::new();
    let mut display = Vec::new();
    walk(root, &mut pattern, &mut display)
}

fn shape_for(
    pattern: &[String],
) -> Option<&'static (&'static str, bool, crate::schema_keys::KeyTypes)> {
    let joined = pattern.join(".");
    OBJECTS
        .iter()
        .find(|(p, _, _)| {
            let parts: Vec<&str> = if p.is_empty() {
                Vec::new()
            } else {
                p.split('.').collect()
            };
            parts.len() == pattern.len()
                && parts.iter().zip(pattern).all(|(a, b)| *a == "*" || a == b)
        })
        .or_else(|| OBJECTS.iter().find(|(p, _, _)| *p == joined))
}

fn walk(
    node: &Node,
    pattern: &mut Vec<String>,
    display: &mut Vec<String>,
) -> Result<(), Violation> {
    match &node.value {
        NodeValue::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                display.push(i.to_string());
                walk(item, pattern, display)?;
                display.pop();
            }
        }
        NodeValue::Map(entries) => {
            let shape = shape_for(pattern);
            let here = if display.is_empty() {
                "(root)".to_string()
            } else {
                display.join(".")
            };
            for (key, value) in entries {
                if key.starts_with("x-") && shape.is_none_or(|s| s.1) {
                    continue;
                }
                let mut child_pattern = key.clone();
                if let Some((_, _, keys)) = shape {
                    let Some((_, types)) = keys.iter().find(|(k, _)| k == key) else {
                        return Err(Violation {
                            key: here.clone(),
                            line: value.line,
                            message: format!("Additional property {key} is not allowed"),
                        });
                    };
                    check_container(value, types).map_err(|expected| Violation {
                        key: format!("{here}.{key}")
                            .trim_start_matches("(root).")
                            .to_string(),
                        line: value.line,
                        message: format!("must be a {expected}"),
                    })?;
                } else if is_named_map(pattern) {
                    child_pattern = "*".to_string();
                }
                pattern.push(child_pattern);
                display.push(key.clone());
                walk(value, pattern, display)?;
                display.pop();
                pattern.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// Maps whose keys are names (`services`, `networks`, `services.*.ulimits`, ...).
fn is_named_map(pattern: &[String]) -> bool {
    let joined = pattern.join(".");
    matches!(
        joined.as_str(),
        "services" | "networks" | "volumes" | "secrets" | "configs" | "models"
    ) || OBJECTS.iter().any(|(p, _, _)| {
        p.ends_with(".*") && {
            let parent = &p[..p.len() - 2];
            let parts: Vec<&str> = parent.split('.').collect();
            parts.len() == pattern.len()
                && parts.iter().zip(pattern).all(|(a, b)| *a == "*" || a == b)
        }
    })
}

/// Checks mapping/list/scalar against the schema's types; returns what was expected.
fn check_container(value: &Node, types: &[&str]) -> Result<(), String> {
    let allows = |t: &str| types.contains(&t);
    let ok = match &value.value {
        NodeValue::Map(_) => allows("object"),
        NodeValue::Seq(_) => allows("array"),
        NodeValue::Null => true,
        _ => types.iter().any(|t| !matches!(*t, "object" | "array")),
    };
    if ok {
        return Ok(());
    }
    let names: Vec<&str> = types
        .iter()
        .map(|t| match *t {
            "array" => "list",
            "object" => "mapping",
            other => other,
        })
        .collect();
    Err(names.join(" or "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<(), Violation> {
        validate(&crate::yaml::parse(text).unwrap().remove(0))
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = check("services:\n  a:\n    image: x\n    foo: 1\n").unwrap_err();
        assert_eq!(err.key, "services.a");
        assert_eq!(err.line, 4);
        assert!(err.message.contains("foo"), "{err:?}");
        let err = check("servics: {}\n").unwrap_err();
        assert_eq!(err.key, "(root)");
        let err =
            check("services:\n  a:\n    deploy: {resources: {limits: {foo: 1}}}\n").unwrap_err();
        assert_eq!(err.key, "services.a.deploy.resources.limits");
    }

    #[test]
    fn container_types_are_checked() {
        let err = check("services:\n  a:\n    ports: '80'\n").unwrap_err();
        assert_eq!(err.key, "services.a.ports");
        assert_eq!(err.message, "must be a list");
        assert!(check(
            "services:\n  a:\n    x-any: {b: 1}\n    ports: [80, {target: 81, x-y: 1}]\n"
        )
        .is_ok());
    }
}
