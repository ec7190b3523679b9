//! The sync channel between the runtime and the container process it forked: a
//! SOCK_SEQPACKET pair, so every message arrives whole, and EOF means the peer died.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use crate::error::{Error, Result};

/// Messages of the create/exec handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Parent → child: id maps are written and the cgroup is joined; go on.
    Go,
    /// Parent → child (after an early `Go`): the cgroup is joined now.
    Joined,
    /// Child → parent: mounts are done; run prestart and createRuntime hooks now.
    RunHooks,
    /// Parent → child: the hooks are done.
    HooksDone,
    /// Child → parent: set up and waiting for `start` (or about to exec, for exec).
    Ready,
    /// Child → parent: the pid of the process that will run the container's program
    /// (when an intermediate process forked it).
    Pid(i32),
    /// Child → parent: setting up failed.
    Failed(String),
    /// Child → parent: the seccomp notify fd rides along (SCM_RIGHTS), for the parent to
    /// hand to `linux.seccomp.listenerPath`.
    SeccompFd,
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        match self {
            Message::Go => b"G".to_vec(),
            Message::Joined => b"J".to_vec(),
            Message::RunHooks => b"H".to_vec(),
            Message::HooksDone => b"D".to_vec(),
            Message::Ready => b"R".to_vec(),
            Message::Pid(pid) => format!("P{pid}").into_bytes(),
            Message::SeccompFd => b"S".to_vec(),
            Message::Failed(msg) => {
                let mut v = b"E".to_vec();
                v.extend_from_slice(msg.as_bytes());
                v
            }
        }
    }

    fn decode(bytes: &[u8]) -> Result<Message> {
        let (tag, rest) = bytes
            .split_first()
            .ok_or_else(|| Error::Init("container process exited during setup".into()))?;
        Ok(match tag {
            b'G' => Message::Go,
            b'J' => Message::Joined,
            b'H' => Message::RunHooks,
            b'D' => Message::HooksDone,
            b'R' => Message::Ready,
            b'S' => Message::SeccompFd,
            b'P' => Message::Pid(
                std::str::from_utf8(rest)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| Error::Init("bad pid message".into()))?,
            ),
            b'E' => Message::Failed(String::from_utf8_lossy(rest).into_owned()),
            other => return Err(Error::Init(format!("unexpected sync message {other:#x}"))),
        })
    }
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair; the child keeps one end and the parent the other.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::io("socketpair", e.into()))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Message) -> Result<()> {
        rustix::net::send(&self.fd, &msg.encode(), SendFlags::NOSIGNAL)
            .map_err(|e| Error::io("sync send", e.into()))?;
        Ok(())
    }

    pub fn recv(&self) -> Result<Message> {
        self.recv_with_fd().map(|(m, _)| m)
    }

    /// Receives a message and the fd that came with it, if any.
    pub fn recv_with_fd(&self) -> Result<(Message, Option<OwnedFd>)> {
        let mut buf = [0u8; 4096];
        loop {
            let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            match rustix::net::recvmsg(&self.fd, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
                Ok(msg) => {
                    let n = msg.bytes;
                    let mut fd = None;
                    for c in control.drain() {
                        if let RecvAncillaryMessage::ScmRights(mut fds) = c {
                            fd = fds.next();
                        }
                    }
                    return Ok((Message::decode(&buf[..n])?, fd));
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("sync receive", e.into())),
            }
        }
    }

    /// Sends a message with an fd attached.
    pub fn send_with_fd(&self, msg: &Message, fd: BorrowedFd) -> Result<()> {
        send_fd(self.fd.as_fd(), &msg.encode(), fd)
    }

    /// Waits for exactly `expected`; a failure report becomes an error.
    pub fn expect(&self, expected: Message) -> Result<()> {
        match self.recv()? {
            m if m == expected => Ok(()),
            Message::Failed(msg) => Err(Error::Init(msg)),
            other => Err(Error::Init(format!("expected {expected:?}, got {other:?}"))),
        }
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Sends `fd` over a unix socket with `payload` as the message body (runc's SendFd).
pub fn send_fd(socket: BorrowedFd, payload: &[u8], fd: BorrowedFd) -> Result<()> {
    let fds = [fd];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    let iov = [std::io::IoSlice::new(payload)];
    rustix::net::sendmsg(socket, &iov, &mut control, SendFlags::NOSIGNAL)
        .map_err(|e| Error::io("send fd over unix socket", e.into()))?;
    Ok(())
}

/// Receives one fd sent with [`send_fd`].
pub fn recv_fd(socket: BorrowedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    rustix::net::recvmsg(socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
        .map_err(|e| Error::io("receive fd over unix socket", e.into()))?;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(Error::Init("no file descriptor received".into()))
}
