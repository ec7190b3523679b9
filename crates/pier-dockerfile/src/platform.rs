//! Platforms and the args Docker defines without an `ARG` default: the automatic
//! platform args and the proxy args.

/// An OCI platform: `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// The predefined proxy args: usable with `--build-arg` without an `ARG` line, and
/// left out of the image history and cache key unless the Dockerfile declares them.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A platform string that is not `os[/arch[/variant]]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{value}\": unknown operating system or architecture: invalid argument")]
pub struct PlatformError {
    pub value: String,
}

impl Platform {
    /// The platform Pier runs on (builds are native only): `linux` and the Go name of
    /// this machine's architecture, with containerd's default variant (`v7` for 32-bit
    /// arm, none otherwise).
    pub fn native() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            "loongarch64" => ("loong64", None),
            "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
            "mips64" => ("mips64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parses `os[/arch[/variant]]` (containerd's normalisation of the usual aliases:
    /// `x86_64`/`x86-64` → `amd64`, `aarch64` → `arm64`, an `arm64/v8` variant
    /// dropped, `arm` → `arm/v7`). A bare `os` gets the native architecture.
    pub fn parse(value: &str) -> Result<Platform, PlatformError> {
        let err = || PlatformError {
            value: value.to_string(),
        };
        let lower = value.to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(err());
        }
        let os = parts[0].to_string();
        if !os
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(err());
        }
        let Some(arch) = parts.get(1) else {
            let native = Platform::native();
            return Ok(Platform { os, ..native });
        };
        let mut variant = parts.get(2).map(|v| v.to_string());
        let architecture = match *arch {
            "i386" => "386",
            "x86_64" | "x86-64" | "amd64" => "amd64",
            "aarch64" | "arm64" => {
                if variant.as_deref() == Some("v8") {
                    variant = None;
                }
                "arm64"
            }
            "armhf" | "armel" | "arm" => {
                if variant.is_none() {
                    variant = Some(if *arch == "armel" { "v6" } else { "v7" }.to_string());
                }
                "arm"
            }
            other => other,
        };
        Ok(Platform {
            os,
            architecture: architecture.to_string(),
            variant,
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The automatic platform args BuildKit defines in the global scope (a stage sees them
/// after `ARG NAME`): `TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`, `TARGETVARIANT`,
/// `BUILDPLATFORM`, `BUILDOS`, `BUILDARCH`, `BUILDVARIANT`. Variants are empty strings
/// when there is none.
pub fn automatic_args(build: &Platform, target: &Platform) -> Vec<(String, String)> {
    let mut args = Vec::with_capacity(8);
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        args.push((format!("{prefix}PLATFORM"), p.to_string()));
        args.push((format!("{prefix}OS"), p.os.clone()));
        args.push((format!("{prefix}ARCH"), p.architecture.clone()));
        args.push((
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        ));
    }
    args
}

/// Whether `name` is one of [`PROXY_ARGS`].
pub fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises_platforms() {
        let p = Platform::parse("linux/x86_64").unwrap();
        assert_eq!(p.to_string(), "linux/amd64");
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("Linux/ARM64").unwrap().to_string(),
            "linux/arm64"
        );
        assert!(Platform::parse("linux//amd64").is_err());
        assert!(Platform::parse("linux/amd64/v1/x").is_err());
        assert_eq!(Platform::parse("linux").unwrap(), Platform::native());
    }

    #[test]
    fn automatic_args_name_both_platforms() {
        let build = Platform::parse("linux/amd64").unwrap();
        let target = Platform::parse("linux/arm/v7").unwrap();
        let args = automatic_args(&build, &target);
        let get = |k: &str| args.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("TARGETPLATFORM"), "linux/arm/v7");
        assert_eq!(get("TARGETVARIANT"), "v7");
        assert_eq!(get("TARGETARCH"), "arm");
        assert_eq!(get("BUILDPLATFORM"), "linux/amd64");
        assert_eq!(get("BUILDOS"), "linux");
        assert_eq!(get("BUILDVARIANT"), "");
        assert_eq!(args.len(), 8);
        assert!(is_proxy_arg("no_proxy") && !is_proxy_arg("NO_proxy"));
    }
}
