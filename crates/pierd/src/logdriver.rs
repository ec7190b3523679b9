//! Log drivers: `json-file` (the default), `local` and `none`.
//!
//! The monitor writes both file drivers (see [`crate::monitor`]); they differ in
//! where the file is, the defaults and compression, as Docker's:
//! - `json-file`: `<data>/containers/<id>/<id>-json.log`, one JSON object per line
//!   (Docker's format), rotated at 20 MB × 5 by default here (logs never fill the
//!   disk unless the user asks for it), `compress` optional;
//! - `local`: `<data>/containers/<id>/local-logs/container.log`, max-size 20m,
//!   max-file 5, compress true by default. Docker's file format is protobuf-framed
//!   entries; Pier keeps the JSON lines (the format is private to the daemon, only
//!   `docker logs` reads it), rotated files gzip-compressed (`container.log.N.gz`);
//! - `none`: nothing is kept, and `docker logs` is refused.
//!
//! Options are validated at create with Docker's messages.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::engine::EngineError;

pub const DEFAULT_MAX_SIZE: u64 = 20 << 20;
pub const DEFAULT_MAX_FILES: u32 = 5;

/// What the monitor needs to write a container's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub driver: String,
    /// `None` for `none`.
    pub path: Option<PathBuf>,
    pub max_size: u64,
    pub max_files: u32,
    pub compress: bool,
}

fn driver_of(host_config: &Value) -> &str {
    host_config["LogConfig"]["Type"]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or("json-file")
}

fn opts_of(host_config: &Value) -> Vec<(String, String)> {
    host_config["LogConfig"]["Config"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn invalid(m: String) -> EngineError {
    EngineError::InvalidParameter(m)
}

/// Docker's `RAMInBytes`: `10m`, `1g`, `512k`, `1.5m`, plain bytes (binary units).
fn parse_size(text: &str) -> Result<u64, EngineError> {
    let t = text.trim().to_ascii_lowercase();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(invalid(format!("invalid size: '{text}'"))),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| invalid(format!("invalid size: '{text}'")))?;
    Ok((n * mult as f64) as u64)
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Docker's checks at create: the driver exists, its options are known and valid.
pub fn validate(host_config: &Value) -> Result<(), EngineError> {
    settings(host_config, Path::new("/")).map(|_| ())
}

/// Where the log of a container is, given its json-file path (the driver decides).
pub fn log_file(host_config: &Value, json_path: &Path) -> Option<PathBuf> {
    match driver_of(host_config) {
        "none" => None,
        "local" => Some(
            json_path
                .parent()
                .unwrap_or(Path::new("/"))
                .join("local-logs")
                .join("container.log"),
        ),
        _ => Some(json_path.to_path_buf()),
    }
}

/// The settings of a container's log (`json_path`: where its json-file log goes).
pub fn settings(host_config: &Value, json_path: &Path) -> Result<LogSettings, EngineError> {
    let driver = driver_of(host_config).to_string();
    let opts = opts_of(host_config);
    let (known, compress_default): (&[&str], bool) = match driver.as_str() {
        "none" => {
            return Ok(LogSettings {
                driver,
                path: None,
                max_size: 0,
                max_files: 0,
                compress: false,
            })
        }
        "json-file" => (
            &[
                "max-file",
                "max-size",
                "compress",
                "labels",
                "labels-regex",
                "env",
                "env-regex",
                "tag",
            ],
            false,
        ),
        "local" => (&["max-file", "max-size", "compress"], true),
        other => {
            return Err(invalid(format!(
                "logger: no log driver named '{other}' is registered"
            )))
        }
    };
    let mut keys: Vec<&String> = opts.iter().map(|(k, _)| k).collect();
    keys.sort();
    for key in keys {
        if !known.contains(&key.as_str()) {
            return Err(invalid(if driver == "json-file" {
                format!("unknown log opt '{key}' for json-file log driver")
            } else {
                format!("unknown log opt '{key}' for log driver {driver}")
            }));
        }
    }
    let opt = |k: &str| {
        opts.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let max_size = match opt("max-size") {
        Some(s) => {
            let n = parse_size(s)?;
            if n == 0 && driver == "local" {
                return Err(invalid("max-size must be a positive number".into()));
            }
            n
        }
        None => DEFAULT_MAX_SIZE,
    };
    let max_files = match opt("max-file") {
        Some(n) => {
            let n: i64 = n
                .parse()
                .map_err(|_| invalid(format!("invalid value for max-file: {n}")))?;
            if n < 1 {
                return Err(invalid("max-file cannot be less than 1".into()));
            }
            u32::try_from(n).unwrap_or(u32::MAX)
        }
        None => DEFAULT_MAX_FILES,
    };
    let compress = match opt("compress") {
        Some(v) => parse_bool(v).ok_or_else(|| {
            invalid(format!(
                "error reading compress log option: invalid value {v:?}"
            ))
        })?,
        None => compress_default,
    };
    Ok(LogSettings {
        path: log_file(host_config, json_path),
        driver,
        max_size,
        max_files,
        compress,
    })
}

/// The rotated files of a log, oldest first (`<log>.N` or `<log>.N.gz`).
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for n in 1..1000 {
        let plain = PathBuf::from(format!("{}.{n}", path.display()));
        let gz = PathBuf::from(format!("{}.{n}.gz", path.display()));
        if gz.exists() {
            out.push(gz);
        } else if plain.exists() {
            out.push(plain);
        } else {
            break;
        }
    }
    out.reverse();
    out
}

/// The whole content of a log file, decompressed if it is a `.gz` (blocking).
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    let mut out = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(f).read_to_end(&mut out)?;
    } else {
        f.read_to_end(&mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hc(t: &str, opts: Value) -> Value {
        json!({"LogConfig": {"Type": t, "Config": opts}})
    }

    #[test]
    fn docker_messages() {
        let err = |v: Value| validate(&v).unwrap_err().to_string();
        assert!(err(hc("json-file", json!({"x": "1"})))
            .contains("unknown log opt 'x' for json-file log driver"));
        assert!(err(hc("local", json!({"tag": "1"})))
            .contains("unknown log opt 'tag' for log driver local"));
        assert!(
            err(hc("nope", json!({}))).contains("logger: no log driver named 'nope' is registered")
        );
        assert!(validate(&hc("none", json!({}))).is_ok());
        assert!(validate(&json!({})).is_ok());
        assert!(err(hc("local", json!({"max-file": "0"}))).contains("max-file"));
        assert!(err(hc("local", json!({"compress": "maybe"}))).contains("compress"));
    }

    #[test]
    fn defaults_and_paths() {
        let json_path = Path::new("/d/containers/abc/abc-json.log");
        let s = settings(&hc("local", json!({})), json_path).unwrap();
        assert_eq!(
            s,
            LogSettings {
                driver: "local".into(),
                path: Some("/d/containers/abc/local-logs/container.log".into()),
                max_size: 20 << 20,
                max_files: 5,
                compress: true,
            }
        );
        let s = settings(
            &hc("json-file", json!({"max-size": "1k", "max-file": "3"})),
            json_path,
        )
        .unwrap();
        assert_eq!((s.max_size, s.max_files, s.compress), (1024, 3, false));
        assert_eq!(s.path.as_deref(), Some(json_path));
        assert_eq!(parse_size("1.5m").unwrap(), 3 << 19);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("x").is_err());
        assert!(parse_size("12q").is_err());
    }
}
