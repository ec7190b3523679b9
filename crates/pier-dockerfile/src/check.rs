//! BuildKit's build checks (its Dockerfile linter): the `# check=` directive's
//! configuration, and the names and texts of the rules. The parser reports the rules it
//! can decide from the text alone in [`Dockerfile::warnings`](crate::Dockerfile);
//! those that need the build's values (`JSONArgsRecommended` needs the base image's
//! shell, `UndefinedVar`, `WorkdirRelativePath` …) are the builder's, which can use
//! [`CheckConfig`] for them too. With `error=true`, [`CheckConfig::violation`] is the
//! error that fails the build, as in BuildKit.

use crate::Warning;

/// Rule names, as BuildKit spells them (for `# check=skip=…`).
pub mod rules {
    pub const STAGE_NAME_CASING: &str = "StageNameCasing";
    pub const FROM_AS_CASING: &str = "FromAsCasing";
    pub const NO_EMPTY_CONTINUATION: &str = "NoEmptyContinuation";
    pub const CONSISTENT_INSTRUCTION_CASING: &str = "ConsistentInstructionCasing";
    pub const RESERVED_STAGE_NAME: &str = "ReservedStageName";
    pub const JSON_ARGS_RECOMMENDED: &str = "JSONArgsRecommended";
    pub const MAINTAINER_DEPRECATED: &str = "MaintainerDeprecated";
    pub const MULTIPLE_INSTRUCTIONS_DISALLOWED: &str = "MultipleInstructionsDisallowed";
    pub const LEGACY_KEY_VALUE_FORMAT: &str = "LegacyKeyValueFormat";
    pub const SECRETS_USED_IN_ARG_OR_ENV: &str = "SecretsUsedInArgOrEnv";
    pub const FROM_PLATFORM_FLAG_CONST_DISALLOWED: &str = "FromPlatformFlagConstDisallowed";
    pub const REDUNDANT_TARGET_PLATFORM: &str = "RedundantTargetPlatform";
    pub const UNDEFINED_ARG_IN_FROM: &str = "UndefinedArgInFrom";
    pub const UNDEFINED_VAR: &str = "UndefinedVar";
    pub const INVALID_DEFAULT_ARG_IN_FROM: &str = "InvalidDefaultArgInFrom";
    pub const WORKDIR_RELATIVE_PATH: &str = "WorkdirRelativePath";
}

/// The checks only the build can decide, with BuildKit's texts, for the builder to
/// report through [`CheckConfig::reports`].
pub mod runtime {
    use super::rules;
    use crate::Warning;

    /// `CMD`/`ENTRYPOINT` in the shell form while the image has no `SHELL` of its own.
    pub fn json_args_recommended(line: usize, instruction: &str) -> Warning {
        Warning {
            line,
            rule: rules::JSON_ARGS_RECOMMENDED,
            message: format!(
                "JSON arguments recommended for {instruction} to prevent unintended behavior related to OS signals"
            ),
        }
    }

    /// A relative `WORKDIR` before any absolute one in the build.
    pub fn workdir_relative_path(line: usize, path: &str) -> Warning {
        Warning {
            line,
            rule: rules::WORKDIR_RELATIVE_PATH,
            message: format!(
                "Relative workdir {path:?} can have unexpected results if the base image changes"
            ),
        }
    }

    /// A variable used but neither an ARG nor an ENV in scope (`suggestion`: the
    /// closest name in scope, if any).
    pub fn undefined_var(line: usize, name: &str, suggestion: Option<&str>) -> Warning {
        let mut message = format!("Usage of undefined variable '${name}'");
        if let Some(s) = suggestion {
            message.push_str(&format!(" (did you mean ${s}?)"));
        }
        Warning {
            line,
            rule: rules::UNDEFINED_VAR,
            message,
        }
    }
}

/// The `# check=` directive: `skip=Rule1,Rule2` or `skip=all`, `error=true`,
/// `experimental=…` (Pier has no experimental rules), separated by `;`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    pub skip_all: bool,
    pub skip: Vec<String>,
    /// Fail the build when a check reports something.
    pub error: bool,
    pub experimental_all: bool,
    pub experimental: Vec<String>,
}

impl CheckConfig {
    /// Parses the directive's value (BuildKit's `ParseLintOptions`; its error texts).
    pub fn parse(value: &str) -> Result<CheckConfig, String> {
        let mut config = CheckConfig::default();
        let value = value.trim();
        if value.is_empty() {
            return Ok(config);
        }
        let list =
            |v: &str| -> Vec<String> { v.split(',').map(|r| r.trim().to_string()).collect() };
        for part in value.splitn(3, ';') {
            let Some((key, v)) = part.split_once('=') else {
                return Err(format!("invalid check option {part:?}"));
            };
            let v = v.trim();
            match key.trim() {
                "skip" if v == "all" => config.skip_all = true,
                "skip" => config.skip = list(v),
                "experimental" if v == "all" => config.experimental_all = true,
                "experimental" => config.experimental = list(v),
                "error" => {
                    config.error = match v {
                        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                        "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                        _ => {
                            return Err(format!(
                                "failed to parse check option {part:?}: strconv.ParseBool: parsing {v:?}: invalid syntax"
                            ))
                        }
                    }
                }
                other => return Err(format!("invalid check option {other:?}")),
            }
        }
        Ok(config)
    }

    /// Whether the rule reports at all.
    pub fn reports(&self, rule: &str) -> bool {
        !self.skip_all && !self.skip.iter().any(|r| r == rule)
    }

    /// With `error=true` and something reported: BuildKit's error, `lint violation
    /// found for rules: A, B` (each rule once, in the order first reported).
    pub fn violation(&self, warnings: &[Warning]) -> Option<String> {
        if !self.error {
            return None;
        }
        let mut rules: Vec<&str> = Vec::new();
        for w in warnings {
            if !rules.contains(&w.rule) {
                rules.push(w.rule);
            }
        }
        (!rules.is_empty()).then(|| format!("lint violation found for rules: {}", rules.join(", ")))
    }
}

/// Whether `s` parses as an image reference (Docker's `ParseNormalizedNamed`, which
/// pier-image implements).
pub(crate) fn valid_reference(s: &str) -> bool {
    pier_image::reference::Reference::parse(s).is_ok()
}

/// Whether an ARG or ENV name looks like it holds a secret (BuildKit's
/// `SecretsUsedInArgOrEnv`: a `_`-separated word such as `password` or `token`, and
/// none such as `public` or `file`).
pub(crate) fn looks_secret(name: &str) -> bool {
    const DENY: [&str; 10] = [
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOW: [&str; 3] = ["public", "file", "version"];
    let words: Vec<String> = name.split('_').map(str::to_ascii_lowercase).collect();
    words.iter().any(|w| DENY.contains(&w.as_str()))
        && !words.iter().any(|w| ALLOW.contains(&w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_values() {
        let c = CheckConfig::parse("skip=JSONArgsRecommended, StageNameCasing;error=true").unwrap();
        assert_eq!(c.skip, ["JSONArgsRecommended", "StageNameCasing"]);
        assert!(c.error && !c.reports("StageNameCasing") && c.reports("FromAsCasing"));
        assert!(!CheckConfig::parse("skip=all").unwrap().reports("X"));
        assert_eq!(CheckConfig::parse("").unwrap(), CheckConfig::default());
        assert_eq!(
            CheckConfig::parse("nope").unwrap_err(),
            "invalid check option \"nope\""
        );
        assert_eq!(
            CheckConfig::parse("foo=1").unwrap_err(),
            "invalid check option \"foo\""
        );
        assert!(CheckConfig::parse("error=maybe").is_err());
    }

    #[test]
    fn violations_name_each_rule_once() {
        let w = |rule| Warning {
            line: 1,
            rule,
            message: String::new(),
        };
        let c = CheckConfig::parse("error=true").unwrap();
        assert_eq!(
            c.violation(&[w("A"), w("B"), w("A")]).as_deref(),
            Some("lint violation found for rules: A, B")
        );
        assert_eq!(c.violation(&[]), None);
        assert_eq!(CheckConfig::default().violation(&[w("A")]), None);
    }

    #[test]
    fn runtime_check_texts() {
        assert_eq!(
            runtime::json_args_recommended(3, "CMD").message,
            "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"
        );
        assert_eq!(
            runtime::workdir_relative_path(2, "app").message,
            "Relative workdir \"app\" can have unexpected results if the base image changes"
        );
        assert_eq!(
            runtime::undefined_var(4, "PAHT", Some("PATH")).message,
            "Usage of undefined variable '$PAHT' (did you mean $PATH?)"
        );
    }

    #[test]
    fn image_references() {
        for ok in [
            "busybox",
            "scratch",
            "build",
            "alpine:3.20",
            "library/alpine",
            "docker.io/library/alpine:latest",
            "localhost:5000/app",
            "127.0.0.1:5000/a/b:v1.2_x",
            "my-registry.example.com/team/app__x",
            "a.b-c",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Registry.Example.com/app",
            "[::1]:5000/app",
        ] {
            assert!(valid_reference(ok), "{ok}");
        }
        for bad in [
            "",
            "alpine:",
            "Alpine",
            "alpine:3.20:x",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "alpine@sha256:12",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "app:-tag",
            "host:port/app",
        ] {
            assert!(!valid_reference(bad), "{bad}");
        }
    }

    #[test]
    fn secret_looking_names() {
        for s in [
            "API_KEY",
            "password",
            "GITHUB_TOKEN",
            "secret_message",
            "AUTH",
        ] {
            assert!(looks_secret(s), "{s}");
        }
        for s in [
            "PUBLIC_KEY",
            "KEY_FILE",
            "TOKEN_VERSION",
            "MONKEY",
            "PATH",
            "keyboard",
        ] {
            assert!(!looks_secret(s), "{s}");
        }
    }
}
