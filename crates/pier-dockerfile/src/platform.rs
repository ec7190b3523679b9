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

    /// Parses `os[/arch[/variant]]` and normalises it as containerd's `Parse` then
    /// `Normalize` do: `x86_64`/`x86-64` → `amd64`, `aarch64` → `arm64` (variant `v8`
    /// dropped), `arm` → `arm/v7`, `armhf` → `arm/v7`, `armel` → `arm/v6`, `i386` →
    /// `386`, `macos` → `darwin`. A single component is an OS (with the native
    /// architecture) if it names one, else an architecture (on linux).
    pub fn parse(value: &str) -> Result<Platform, PlatformError> {
        let err = || PlatformError {
            value: value.to_string(),
        };
        let lower = value.to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        };
        if parts.len() > 3 || !parts.iter().all(|p| valid(p)) {
            return Err(err());
        }
        let os = match parts[0] {
            "macos" => "darwin",
            other => other,
        };
        let (os, arch, variant) = match parts.as_slice() {
            [_] if KNOWN_OS.contains(&os) => {
                let native = Platform::native();
                return Ok(Platform {
                    os: os.to_string(),
                    ..native
                });
            }
            [one] => {
                let (arch, variant) = normalize_arch(one, None);
                if !KNOWN_ARCH.contains(&arch.as_str()) {
                    return Err(err());
                }
                return Ok(Platform {
                    os: "linux".to_string(),
                    architecture: arch,
                    variant,
                });
            }
            [_, arch] => (os, *arch, None),
            [_, arch, variant] => (os, *arch, Some(*variant)),
            _ => return Err(err()),
        };
        let (architecture, variant) = normalize_arch(arch, variant);
        Ok(Platform {
            os: os.to_string(),
            architecture,
            variant,
        })
    }
}

/// containerd's `normalizeArch` (with `Normalize`'s default variants).
fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let v = |s: &str| Some(s.to_string());
    let (arch, variant) = match (arch, variant) {
        ("i386", _) => ("386", None),
        ("x86_64" | "x86-64" | "amd64", Some("v1")) => ("amd64", None),
        ("x86_64" | "x86-64" | "amd64", var) => ("amd64", var.map(str::to_string)),
        ("aarch64" | "arm64", Some("8" | "v8" | "v8.0") | None) => ("arm64", None),
        ("aarch64" | "arm64", Some(var)) => ("arm64", v(var)),
        ("armhf", _) => ("arm", v("v7")),
        ("armel", _) => ("arm", v("v6")),
        ("arm", None | Some("7")) => ("arm", v("v7")),
        ("arm", Some("5" | "6" | "8")) => ("arm", Some(format!("v{}", variant.unwrap_or("")))),
        ("arm", Some(var)) => ("arm", v(var)),
        (other, var) => (other, var.map(str::to_string)),
    };
    (arch.to_string(), variant)
}

/// containerd's known operating systems (`isKnownOS`).
const KNOWN_OS: [&str; 17] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

/// containerd's known architectures (`isKnownArch`).
const KNOWN_ARCH: [&str; 25] = [
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
    "wasm32",
];

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
        assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("armhf").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/arm/6").unwrap().to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            Platform::parse("linux/i386").unwrap().to_string(),
            "linux/386"
        );
        assert_eq!(
            Platform::parse("windows/amd64").unwrap().to_string(),
            "windows/amd64"
        );
        assert!(Platform::parse("bogus").is_err());
        assert!(Platform::parse("linux/am d64").is_err());
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
