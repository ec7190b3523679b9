//! Variable interpolation in compose files: `$V`, `${V}`, `${V:-d}`, `${V-d}`,
//! `${V:?e}`, `${V?e}`, `${V:+a}`, `${V+a}`, defaults that nest further
//! substitutions, and `$$` for a literal `$`.

use std::collections::BTreeMap;

use crate::yaml::{Node, NodeValue};

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpolationError {
    /// `${V:?msg}` / `${V?msg}` with V missing (or empty, for `:?`).
    Required { variable: String, message: String },
    /// A `$` that starts no valid substitution.
    InvalidFormat { text: String },
}

/// The variables interpolation reads, and the warnings it gathered.
pub struct Interpolator<'a> {
    pub env: &'a BTreeMap<String, String>,
    /// Names used without a value or default (compose warns once per name).
    pub unset: Vec<String>,
}

impl<'a> Interpolator<'a> {
    pub fn new(env: &'a BTreeMap<String, String>) -> Self {
        Interpolator {
            env,
            unset: Vec::new(),
        }
    }

    /// Interpolates every string value of `node` (not keys). `path` names the node
    /// for error messages (`services.web.image`).
    pub fn node(
        &mut self,
        node: &mut Node,
        path: &str,
    ) -> Result<(), (String, InterpolationError)> {
        match &mut node.value {
            NodeValue::Str(s) => {
                *s = self.string(s).map_err(|e| (path.to_string(), e))?;
            }
            NodeValue::Seq(items) => {
                for item in items {
                    self.node(item, path)?;
                }
            }
            NodeValue::Map(entries) => {
                for (k, v) in entries {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    self.node(v, &child)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Interpolates one string.
    pub fn string(&mut self, text: &str) -> Result<String, InterpolationError> {
        let invalid = || InterpolationError::InvalidFormat {
            text: text.to_string(),
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(braced) = after.strip_prefix('{') {
                let end = matching_brace(braced).ok_or_else(invalid)?;
                out.push_str(&self.braced(&braced[..end], text)?);
                rest = &braced[end + 1..];
            } else {
                let len = name_len(after);
                if len == 0 {
                    return Err(invalid());
                }
                out.push_str(&self.lookup_or_blank(&after[..len]));
                rest = &after[len..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn lookup_or_blank(&mut self, name: &str) -> String {
        match self.env.get(name) {
            Some(v) => v.clone(),
            None => {
                if !self.unset.iter().any(|n| n == name) {
                    self.unset.push(name.to_string());
                }
                String::new()
            }
        }
    }

    /// The inside of `${...}`.
    fn braced(&mut self, inner: &str, whole: &str) -> Result<String, InterpolationError> {
        let invalid = || InterpolationError::InvalidFormat {
            text: whole.to_string(),
        };
        let len = name_len(inner);
        if len == 0 {
            return Err(invalid());
        }
        let name = &inner[..len];
        let op = &inner[len..];
        let value = self.env.get(name).cloned();
        let (colon, op) = match op.strip_prefix(':') {
            Some(o) => (true, o),
            None => (false, op),
        };
        // With ':', an empty value counts as unset.
        let present = match &value {
            Some(v) => !(colon && v.is_empty()),
            None => false,
        };
        let Some(kind) = op.chars().next() else {
            if colon {
                return Err(invalid());
            }
            return Ok(self.lookup_or_blank(name));
        };
        let arg = &op[1..];
        match kind {
            '-' => {
                if present {
                    Ok(value.unwrap_or_default())
                } else {
                    self.string(arg)
                }
            }
            '?' => {
                if present {
                    Ok(value.unwrap_or_default())
                } else {
                    Err(InterpolationError::Required {
                        variable: name.to_string(),
                        message: self.string(arg)?,
                    })
                }
            }
            '+' => {
                if present {
                    self.string(arg)
                } else {
                    Ok(String::new())
                }
            }
            _ => Err(invalid()),
        }
    }
}

/// Length of the variable name at the start of `text`.
fn name_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !(bytes[0] == b'_' || bytes[0].is_ascii_alphabetic()) {
        return 0;
    }
    bytes
        .iter()
        .take_while(|c| **c == b'_' || c.is_ascii_alphanumeric())
        .count()
}

/// Index of the `}` closing a `${`, counting nested `${`.
fn matching_brace(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("SET", "v"), ("EMPTY", ""), ("N", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn interp(text: &str) -> Result<String, InterpolationError> {
        let env = env();
        Interpolator::new(&env).string(text)
    }

    #[test]
    fn substitution_forms() {
        assert_eq!(interp("$SET").unwrap(), "v");
        assert_eq!(interp("${SET}").unwrap(), "v");
        assert_eq!(interp("a${SET}b$SET.c").unwrap(), "avbv.c");
        assert_eq!(interp("${MISSING:-d}").unwrap(), "d");
        assert_eq!(interp("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(interp("${EMPTY-d}").unwrap(), "");
        assert_eq!(interp("${MISSING-d}").unwrap(), "d");
        assert_eq!(interp("${SET:+alt}").unwrap(), "alt");
        assert_eq!(interp("${EMPTY:+alt}").unwrap(), "");
        assert_eq!(interp("${EMPTY+alt}").unwrap(), "alt");
        assert_eq!(interp("${MISSING+alt}").unwrap(), "");
        assert_eq!(interp("${MISSING:-${ALSO:-${N}x}}").unwrap(), "3x");
        assert_eq!(interp("$$SET and $${SET}").unwrap(), "$SET and ${SET}");
        assert_eq!(interp("${MISSING}").unwrap(), "");
    }

    #[test]
    fn required_and_invalid() {
        assert_eq!(
            interp("${EMPTY:?must be set}"),
            Err(InterpolationError::Required {
                variable: "EMPTY".into(),
                message: "must be set".into()
            })
        );
        assert_eq!(interp("${EMPTY?must be set}").unwrap(), "");
        assert!(matches!(
            interp("${MISSING?}"),
            Err(InterpolationError::Required { .. })
        ));
        assert!(matches!(
            interp("${SET"),
            Err(InterpolationError::InvalidFormat { .. })
        ));
        assert!(matches!(
            interp("$ x"),
            Err(InterpolationError::InvalidFormat { .. })
        ));
        assert!(matches!(
            interp("${}"),
            Err(InterpolationError::InvalidFormat { .. })
        ));
    }
}
