//! Terminals: a pty made inside the container's devpts, its master handed to the caller
//! over `--console-socket` (runc's protocol), or proxied by the runtime itself.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::error::{Error, Result};
use crate::spec::ConsoleSize;

/// Opens a new pty pair in the current mount namespace's /dev/ptmx.
pub fn open_pty() -> Result<(OwnedFd, OwnedFd, String)> {
    let master = rustix::fs::open(
        "/dev/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open /dev/ptmx", e.into()))?;
    rustix::pty::unlockpt(&master).map_err(|e| Error::io("unlockpt", e.into()))?;
    let name =
        rustix::pty::ptsname(&master, Vec::new()).map_err(|e| Error::io("ptsname", e.into()))?;
    let name = name.to_string_lossy().into_owned();
    let slave = rustix::fs::open(name.as_str(), OFlags::RDWR | OFlags::NOCTTY, Mode::empty())
        .map_err(|e| Error::io(format!("open {name}"), e.into()))?;
    Ok((master, slave, name))
}

pub fn set_size(fd: BorrowedFd, size: ConsoleSize) -> Result<()> {
    let ws = rustix::termios::Winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(fd, ws).map_err(|e| Error::io("set terminal size", e.into()))
}

/// Makes `slave` the controlling terminal and stdio of the calling process, and binds it
/// over /dev/console when that exists in the container.
pub fn become_console(slave: OwnedFd, name: &str, bind_console: bool) -> Result<()> {
    if bind_console {
        let console = Path::new("/dev/console");
        if std::fs::symlink_metadata(console).is_err() {
            let _ = std::fs::File::create(console);
        }
        crate::mounts::mount(
            Some(Path::new(name)),
            console,
            Some("bind"),
            libc::MS_BIND,
            None,
        )?;
    }
    rustix::process::setsid().map_err(|e| Error::io("setsid", e.into()))?;
    rustix::process::ioctl_tiocsctty(&slave).map_err(|e| Error::io("TIOCSCTTY", e.into()))?;
    for target in 0..3 {
        // SAFETY: dup2 onto the standard fds of this single-threaded process; `slave`
        // stays open for the duration of the call.
        let rc = unsafe { libc::dup2(slave.as_raw_fd(), target) };
        if rc < 0 {
            return Err(Error::io("dup2 console", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Copies between our stdio and a pty master until the master hangs up (the container's
/// side is closed), putting our own terminal in raw mode meanwhile.
pub fn proxy(master: &OwnedFd) {
    let stdin = std::io::stdin();
    let saved = rustix::termios::tcgetattr(stdin.as_fd()).ok();
    if let Some(orig) = &saved {
        let mut raw = orig.clone();
        raw.make_raw();
        let _ =
            rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, &raw);
        if let Ok(ws) = rustix::termios::tcgetwinsize(stdin.as_fd()) {
            let _ = rustix::termios::tcsetwinsize(master, ws);
        }
    }
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![rustix::event::PollFd::new(
            master,
            rustix::event::PollFlags::IN,
        )];
        if stdin_open {
            fds.push(rustix::event::PollFd::new(
                &stdin,
                rustix::event::PollFlags::IN,
            ));
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
        let master_ev = fds[0].revents();
        let stdin_ev = fds.get(1).map(|f| f.revents());
        if master_ev.contains(rustix::event::PollFlags::IN) {
            match rustix::io::read(master, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = write_all(std::io::stdout().as_fd(), &buf[..n]);
                }
            }
        } else if master_ev
            .intersects(rustix::event::PollFlags::HUP | rustix::event::PollFlags::ERR)
        {
            break;
        }
        if let Some(ev) = stdin_ev {
            if ev.intersects(rustix::event::PollFlags::IN | rustix::event::PollFlags::HUP) {
                match rustix::io::read(&stdin, &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = write_all(master.as_fd(), &buf[..n]);
                    }
                }
            }
        }
    }
    if let Some(orig) = saved {
        let _ =
            rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, &orig);
    }
}

fn write_all(fd: BorrowedFd, mut data: &[u8]) -> rustix::io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
