//! GUI programs in containers, run as Docker users run them: an X11 client in a Debian
//! container draws on the host's X server through the bind-mounted socket directory
//! (`-v /tmp/.X11-unix:/tmp/.X11-unix -e DISPLAY=:N`) with the DRI devices
//! (`--device /dev/dri`), on pierd and on a real dockerd.
//!
//! The X server is an Xvfb of the test's own. The container has its own network
//! namespace, so the client cannot reach the server's abstract socket
//! (`@/tmp/.X11-unix/XN` is per network namespace) and connects through the socket
//! file: the path under test. The window is found with `xwininfo` on the host, and
//! Xvfb's framebuffer (an XWD file, `-fbdir`) shows that the client drew in it.
//!
//! A host without `/dev/dri` (a VM, CI) gets a stand-in: a directory with DRM device
//! nodes of the kernel's numbers, mapped with `--device DIR:/dev/dri`, which takes the
//! same path through the engine (a directory of devices) as the real one; and
//! `--device /dev/dri` itself must be refused there as dockerd refuses it.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{wait_until, Engine, Pierd, DOCKER};
use pier_testsupport::{Daemon, DockerdOptions, IsolatedDockerd};

const TEST: &str = "gui_x11";

/// The image both engines import from the Debian rootfs.
const IMAGE: &str = "pier-x11-client";

/// What the rootfs holds besides minbase: `xlogo` (x11-apps), a client that draws.
const PACKAGES: &[&str] = &["x11-apps"];

/// The user the client runs as: a desktop user, not root, so the socket must be
/// reachable through its permissions.
const CLIENT_USER: &str = "1000:1000";

/// How long a client may take to map its window and draw.
const DRAW_TIMEOUT: Duration = Duration::from_secs(30);

/// An Xvfb of the test's own on a display number it picked itself (`-displayfd`),
/// listening on its unix socket only; stopped by its pid when dropped (also when the
/// test fails).
struct Xvfb {
    // Drop order: the server stops before its directory goes.
    daemon: Daemon,
    display: u32,
    dir: tempfile::TempDir,
}

impl Xvfb {
    fn start() -> Xvfb {
        let dir = tempfile::Builder::new()
            .prefix("pier-xvfb-")
            .tempdir()
            .expect("temp dir");
        let number_file = dir.path().join("display");
        // `exec` keeps the pid: the daemon's pid is Xvfb's. Descriptor 3 is where
        // Xvfb writes the display number once it accepts connections.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", r#"f=$1; shift; exec Xvfb "$@" 3>"$f""#, "sh"])
            .arg(&number_file)
            .args(["-displayfd", "3", "-nolisten", "tcp", "-noreset"])
            // A black root and no cursor: whatever is not black was drawn by a client.
            .args(["-br", "-nocursor", "-screen", "0", "320x240x24", "-fbdir"])
            .arg(dir.path());
        let mut daemon = Daemon::spawn("Xvfb", cmd, dir.path().join("xvfb.log"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut display = None;
        daemon
            .wait_ready(Duration::from_secs(30), || {
                display = std::fs::read_to_string(&number_file)
                    .ok()
                    .filter(|t| t.ends_with('\n'))
                    .and_then(|t| t.trim().parse().ok());
                display.is_some()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let display = display.expect("display number");
        Xvfb {
            daemon,
            display,
            dir,
        }
    }

    /// `:N`, for DISPLAY.
    fn name(&self) -> String {
        format!(":{}", self.display)
    }

    /// The socket file a client outside the server's network namespace connects to.
    fn socket(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/.X11-unix/X{}", self.display))
    }

    /// `xwininfo -name <title>` on the host: the window's geometry once it is mapped.
    fn viewable_window(&self, title: &str) -> Option<Rect> {
        let out = pier_testsupport::run(
            Command::new("xwininfo").args(["-display", &self.name(), "-name", title]),
            Duration::from_secs(10),
        )
        .ok()?;
        if out.code != Some(0) || !out.stdout.contains("Map State: IsViewable") {
            return None;
        }
        let field = |name: &str| -> Option<usize> {
            out.stdout.lines().find_map(|l| {
                l.trim()
                    .strip_prefix(name)
                    .and_then(|v| v.trim().parse().ok())
            })
        };
        Some(Rect {
            x: field("Absolute upper-left X:")?,
            y: field("Absolute upper-left Y:")?,
            width: field("Width:")?,
            height: field("Height:")?,
        })
    }

    /// The names of the root window's children (`xwininfo -root -tree`).
    fn tree(&self) -> String {
        pier_testsupport::run(
            Command::new("xwininfo").args(["-display", &self.name(), "-root", "-tree"]),
            Duration::from_secs(10),
        )
        .map(|o| o.stdout)
        .unwrap_or_else(|e| e)
    }

    /// The screen as Xvfb keeps it (an XWD file it maps).
    fn screen(&self) -> Screen {
        Screen::parse(&std::fs::read(self.dir.path().join("Xvfb_screen0")).expect("framebuffer"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
}

/// A 24/32-bit TrueColor XWD image.
struct Screen {
    width: usize,
    height: usize,
    bytes_per_line: usize,
    little_endian: bool,
    pixels: Vec<u8>,
}

impl Screen {
    fn parse(file: &[u8]) -> Screen {
        // The header is 25 big-endian 32-bit words (then the window name), followed by
        // the colormap (12 bytes an entry) and the pixels.
        let word = |i: usize| -> usize {
            u32::from_be_bytes(file[i * 4..i * 4 + 4].try_into().expect("4 bytes")) as usize
        };
        let (header_size, width, height) = (word(0), word(4), word(5));
        let (byte_order, bits_per_pixel, bytes_per_line, ncolors) =
            (word(7), word(11), word(12), word(19));
        assert_eq!(
            bits_per_pixel, 32,
            "Xvfb's screen is 24 bits deep in 32-bit pixels"
        );
        let start = header_size + ncolors * 12;
        Screen {
            width,
            height,
            bytes_per_line,
            little_endian: byte_order == 0,
            pixels: file[start..start + bytes_per_line * height].to_vec(),
        }
    }

    /// (pixels brighter than mid-grey, pixels darker) inside `r`.
    fn light_and_dark(&self, r: Rect) -> (usize, usize) {
        let (mut light, mut dark) = (0, 0);
        for y in r.y..(r.y + r.height).min(self.height) {
            for x in r.x..(r.x + r.width).min(self.width) {
                let at = y * self.bytes_per_line + x * 4;
                let b: [u8; 4] = self.pixels[at..at + 4].try_into().expect("4 bytes");
                let v = if self.little_endian {
                    u32::from_le_bytes(b)
                } else {
                    u32::from_be_bytes(b)
                };
                let sum = (v >> 16 & 0xff) + (v >> 8 & 0xff) + (v & 0xff);
                if sum > 3 * 0x80 {
                    light += 1;
                } else {
                    dark += 1;
                }
            }
        }
        (light, dark)
    }
}

/// The DRI devices a container gets: the host's `/dev/dri`, or a stand-in directory
/// with nodes of the DRM major (226).
struct Dri {
    /// `--device` argument.
    device: String,
    /// `/dev/dri/<name> <major>:<minor>` (hex, as `stat %t:%T`) of each node.
    expected: Vec<String>,
    /// The stand-in's directory (removed at the end); None with the host's /dev/dri.
    stand_in: Option<tempfile::TempDir>,
}

impl Dri {
    fn probe() -> Dri {
        let host = Path::new("/dev/dri");
        if host.is_dir() {
            return Dri {
                device: "/dev/dri".into(),
                expected: nodes_of(host),
                stand_in: None,
            };
        }
        eprintln!(
            "{TEST}: this host has no /dev/dri: mapping a stand-in directory of DRM nodes \
             (--device DIR:/dev/dri) instead"
        );
        let dir = tempfile::Builder::new()
            .prefix("pier-dri-")
            .tempdir()
            .expect("temp dir");
        let dri = dir.path().join("dri");
        std::fs::create_dir(&dri).expect("mkdir");
        for (name, minor) in [("card0", 0), ("renderD128", 128)] {
            let path = std::ffi::CString::new(dri.join(name).as_os_str().as_encoded_bytes())
                .expect("path");
            let dev = libc::makedev(226, minor);
            // SAFETY: mknod takes a NUL-terminated path that outlives the call.
            let made = unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o660, dev) };
            assert_eq!(made, 0, "mknod {name}: {}", std::io::Error::last_os_error());
        }
        Dri {
            device: format!("{}:/dev/dri", dri.display()),
            expected: nodes_of(&dri),
            stand_in: Some(dir),
        }
    }
}

/// The character devices directly in `dir`, as the container should list them.
fn nodes_of(dir: &Path) -> Vec<String> {
    let mut nodes: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.file_type().is_char_device().then(|| {
                let rdev = meta.rdev();
                format!(
                    "/dev/dri/{} {:x}:{:x}",
                    e.file_name().to_string_lossy(),
                    libc::major(rdev),
                    libc::minor(rdev)
                )
            })
        })
        .collect();
    nodes.sort();
    nodes
}

/// On a host without `/dev/dri`, `--device /dev/dri` is refused (nothing is left
/// behind); the exit code and the error the CLI prints.
fn refuse_missing_dri(label: &str, e: &dyn Engine) -> (Option<i32>, String) {
    let out = e.docker(&["run", "--rm", "--device", "/dev/dri", IMAGE, "true"]);
    assert!(
        out.code != Some(0)
            && out.stderr.contains(
                r#"error gathering device information while adding custom device "/dev/dri""#
            ),
        "{label}: {out:?}"
    );
    let left = e.docker_ok(&["ps", "-aq"]);
    assert_eq!(
        left.trim(),
        "",
        "{label}: a refused run left a container behind"
    );
    (out.code, out.stderr)
}

/// What a client did on one engine.
#[derive(Debug, PartialEq)]
struct Drawn {
    window: Rect,
    /// The device nodes the container lists under /dev/dri.
    devices: Vec<String>,
}

/// Runs the client detached on `e`, as a user would, and checks it drew its window;
/// then removes the container and checks the window went with it.
fn draw_on(label: &str, e: &dyn Engine, x: &Xvfb, dri: &Dri) -> Drawn {
    let title = format!("pier-x11-{label}");
    let display = format!("DISPLAY={}", x.name());
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        &title,
        "-u",
        CLIENT_USER,
        "-v",
        "/tmp/.X11-unix:/tmp/.X11-unix",
        "-e",
        &display,
        "--device",
        &dri.device,
        IMAGE,
        "xlogo",
        "-title",
        &title,
    ]);
    let mut window = None;
    let mapped = wait_until(DRAW_TIMEOUT, || {
        window = x.viewable_window(&title);
        window.is_some()
    });
    let why = || {
        format!(
            "the window tree:\n{}\nXvfb's log:\n{}\n{title}'s state: {}\nits logs: {:?}",
            x.tree(),
            x.daemon.log_tail(20),
            e.docker(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                &title
            ])
            .stdout,
            e.docker(&["logs", &title])
        )
    };
    assert!(mapped, "{label}: no window {title:?} mapped; {}", why());
    let window = window.expect("mapped");
    // xlogo draws a dark logo on a light background; the root is black. Both shades
    // inside the window: the client's drawing reached the screen.
    let mut shades = (0, 0);
    let drawn = wait_until(Duration::from_secs(10), || {
        shades = x.screen().light_and_dark(window);
        let area = window.width * window.height;
        shades.0 > area / 3 && shades.1 > area / 50
    });
    assert!(
        drawn,
        "{label}: the window {window:?} has (light, dark) pixels {shades:?}: not xlogo's drawing"
    );
    let listed = e.docker_ok(&["exec", &title, "sh", "-c", "stat -c '%n %t:%T' /dev/dri/*"]);
    let mut devices: Vec<String> = listed.lines().map(str::to_string).collect();
    devices.sort();
    e.docker_ok(&["rm", "-f", &title]);
    assert!(
        wait_until(DRAW_TIMEOUT, || !x.tree().contains(&title)),
        "{label}: the window outlived its container:\n{}",
        x.tree()
    );
    Drawn { window, devices }
}

#[test]
fn x11_client_in_a_container_draws_on_the_host_display() {
    if !pier_testsupport::require_tools(TEST, &["Xvfb", "xwininfo"]) {
        return;
    }
    if !Path::new(DOCKER).exists() {
        pier_testsupport::skip(TEST, &format!("{DOCKER} is missing"));
        return;
    }
    let Some(rootfs) = pier_testsupport::debian::debian_rootfs_tar(TEST, PACKAGES) else {
        return;
    };
    let x = Xvfb::start();
    // The client runs as a user: the socket must let it connect.
    let mode = std::fs::metadata(x.socket())
        .unwrap_or_else(|e| panic!("{}: {e}", x.socket().display()))
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o777,
        "{} is not open to every user",
        x.socket().display()
    );
    let dri = Dri::probe();

    let dockerd = IsolatedDockerd::start_or_skip(TEST, DockerdOptions::default());
    let pierd = Pierd::start();
    let mut engines: Vec<(&str, &dyn Engine)> = vec![("pierd", &pierd)];
    if let Some(d) = &dockerd {
        engines.push(("dockerd", d));
    }
    let mut drawn = Vec::new();
    let mut refusals = Vec::new();
    for (label, e) in &engines {
        let started = std::time::Instant::now();
        e.docker_with_stdin(&["import", "-c", r#"CMD ["xlogo"]"#, "-", IMAGE], &rootfs)
            .ok()
            .unwrap_or_else(|err| panic!("{label}: {err}"));
        let imported = started.elapsed();
        if dri.stand_in.is_some() {
            refusals.push((label, refuse_missing_dri(label, *e)));
        }
        let d = draw_on(label, *e, &x, &dri);
        eprintln!(
            "{TEST}: {label}: image imported in {imported:.1?}, window drawn and gone in {:.1?}",
            started.elapsed() - imported
        );
        assert_eq!(
            d.devices, dri.expected,
            "{label}: /dev/dri in the container"
        );
        drawn.push((label, d));
    }
    if let [(_, on_pierd), (_, on_dockerd)] = &drawn[..] {
        assert_eq!(on_pierd, on_dockerd, "pierd and dockerd differ");
    }
    if let [(_, on_pierd), (_, on_dockerd)] = &refusals[..] {
        assert_eq!(on_pierd, on_dockerd, "pierd and dockerd refuse differently");
    }
}
