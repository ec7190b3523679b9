//! A test volume plugin: a small HTTP/1.1 server on a unix socket, on its own threads,
//! that records every call (`/Plugin.Activate`, `/VolumeDriver.*`) and answers what the
//! test's handler says. Shared by pier-volume's unit tests and pierd's end-to-end test,
//! so both speak to the same stand-in for a third-party plugin.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One request the plugin received.
#[derive(Debug, Clone)]
pub struct PluginCall {
    /// The method, from the path without its slash: `Plugin.Activate`, `VolumeDriver.Mount`.
    pub method: String,
    /// The request's `Accept` header, if any.
    pub accept: Option<String>,
    /// The request body as sent (JSON).
    pub body: String,
}

/// What the handler answers: an HTTP status and a body (JSON).
pub type PluginAnswer = (u16, String);

type Handler = dyn Fn(&str, &str) -> PluginAnswer + Send + Sync;

/// A running test plugin; stops and removes its socket when dropped.
pub struct TestVolumePlugin {
    socket: PathBuf,
    calls: Arc<Mutex<Vec<PluginCall>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestVolumePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestVolumePlugin")
            .field("socket", &self.socket)
            .finish()
    }
}

impl TestVolumePlugin {
    /// Listens on `socket`; `handler(method, body)` answers each call. Every connection
    /// is served on its own thread, so a handler that sleeps (a hanging plugin) holds up
    /// only its own caller.
    pub fn start(
        socket: &Path,
        handler: impl Fn(&str, &str) -> PluginAnswer + Send + Sync + 'static,
    ) -> std::io::Result<TestVolumePlugin> {
        let listener = UnixListener::bind(socket)?;
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let acceptor = {
            let calls = calls.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let calls = calls.clone();
                    let handler = handler.clone();
                    std::thread::spawn(move || serve(conn, &calls, &*handler));
                }
            })
        };
        Ok(TestVolumePlugin {
            socket: socket.to_path_buf(),
            calls,
            stop,
            acceptor: Some(acceptor),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Every call so far, in the order they arrived.
    pub fn calls(&self) -> Vec<PluginCall> {
        self.calls.lock().unwrap().clone()
    }

    /// The methods called so far, in order, without `Plugin.Activate` and the read-only
    /// queries (`Get`, `List`, `Path`, `Capabilities`) whose count is the caller's choice.
    pub fn changes(&self) -> Vec<PluginCall> {
        self.calls()
            .into_iter()
            .filter(|c| {
                matches!(
                    c.method.as_str(),
                    "VolumeDriver.Create"
                        | "VolumeDriver.Remove"
                        | "VolumeDriver.Mount"
                        | "VolumeDriver.Unmount"
                )
            })
            .collect()
    }
}

impl Drop for TestVolumePlugin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor so that it sees the stop flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Serves the requests of one connection until the client closes it.
fn serve(conn: UnixStream, calls: &Mutex<Vec<PluginCall>>, handler: &Handler) {
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut accept = None;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("accept") {
                    accept = Some(value.to_string());
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let method = path.trim_start_matches('/').to_string();
        calls.lock().unwrap().push(PluginCall {
            method: method.clone(),
            accept,
            body: body.clone(),
        });
        let (status, answer) = handler(&method, &body);
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        if writer.write_all(head.as_bytes()).is_err()
            || writer.write_all(answer.as_bytes()).is_err()
        {
            return;
        }
    }
}
