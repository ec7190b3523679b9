//! `GET /containers/{id}/logs`: the container's log file (json-file or local driver,
//! rotated files oldest first, compressed ones decompressed), then, with `follow`,
//! what the container writes until it stops.
//!
//! Following survives rotation: the current file is read through its open
//! descriptor, so what was written to it before it was renamed (or compressed and
//! unlinked) is still read; then the follower finds where it was among the files
//! now present by the last record's timestamp (and how many records carried that
//! timestamp) and goes on from there, however many rotations happened meanwhile:
//! nothing is lost unless it was rotated out of the last file, nothing is repeated.

use std::collections::HashMap;
use std::convert::Infallible;
use std::os::unix::fs::MetadataExt;
use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::{ApiError, AppState};

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    matches!(q.get(key).map(String::as_str), Some("1" | "true" | "True"))
}

#[derive(Debug, Deserialize)]
struct LogLine {
    log: String,
    stream: String,
    time: String,
}

/// Where a record is in time: (seconds, nanoseconds).
type Stamp = (i64, u32);

fn stamp(line: &LogLine) -> Stamp {
    pier_image::time::parse_rfc3339(&line.time).unwrap_or((0, 0))
}

/// Parses a Docker time filter: Unix seconds (with fraction) or RFC 3339.
fn time_filter(v: Option<&String>) -> Option<f64> {
    let v = v?.trim();
    if v.is_empty() || v == "0" {
        return None;
    }
    v.parse::<f64>()
        .ok()
        .or_else(|| pier_image::time::parse_rfc3339(v).map(|(s, n)| s as f64 + f64::from(n) / 1e9))
}

/// One piece of output as Docker streams it: a multiplexed frame, raw with a tty.
pub(super) fn frame(stream: u8, data: &[u8], tty: bool) -> Bytes {
    if tty {
        return Bytes::copy_from_slice(data);
    }
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    Bytes::from(out)
}

fn parse_lines(bytes: &[u8]) -> Vec<LogLine> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<LogLine>(l).ok())
        .collect()
}

/// The last record delivered: its stamp and how many delivered records carry it.
#[derive(Debug, Default, Clone, Copy)]
struct Position {
    stamp: Stamp,
    same: usize,
}

impl Position {
    fn advance(&mut self, line: &LogLine) {
        let s = stamp(line);
        if s == self.stamp {
            self.same += 1;
        } else {
            self.stamp = s;
            self.same = 1;
        }
    }
}

/// The records after `pos` among `lines` (oldest first).
fn after(lines: Vec<LogLine>, pos: Position) -> Vec<LogLine> {
    let mut equal_seen = 0;
    lines
        .into_iter()
        .filter(|l| {
            let s = stamp(l);
            if s < pos.stamp {
                return false;
            }
            if s == pos.stamp && equal_seen < pos.same {
                equal_seen += 1;
                return false;
            }
            true
        })
        .collect()
}

async fn read_blocking(path: PathBuf) -> Vec<u8> {
    tokio::task::spawn_blocking(move || crate::logdriver::read_file(&path).unwrap_or_default())
        .await
        .unwrap_or_default()
}

/// The current file, read through one descriptor.
struct Current {
    file: tokio::fs::File,
    ino: u64,
    offset: u64,
}

impl Current {
    async fn open(path: &FsPath) -> Option<Current> {
        let file = tokio::fs::File::open(path).await.ok()?;
        let ino = file.metadata().await.ok()?.ino();
        Some(Current {
            file,
            ino,
            offset: 0,
        })
    }

    /// What was appended since the last read.
    async fn read_new(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        if self
            .file
            .seek(std::io::SeekFrom::Start(self.offset))
            .await
            .is_ok()
        {
            let _ = self.file.read_to_end(&mut buf).await;
        }
        self.offset += buf.len() as u64;
        buf
    }
}

/// After a rotation: the records written after `pos`, from the files present now,
/// and the new current file (read to its end).
async fn resync(path: &FsPath, pos: Position) -> (Vec<LogLine>, Option<Current>) {
    let mut cur = Current::open(path).await;
    let mut newest = Vec::new();
    if let Some(c) = &mut cur {
        newest = parse_lines(&c.read_new().await);
    }
    // Newest first, until a file that starts at or before `pos`.
    let mut chunks = vec![newest];
    let starts_after = |lines: &[LogLine]| lines.first().is_none_or(|l| stamp(l) > pos.stamp);
    if starts_after(&chunks[0]) {
        for f in crate::logdriver::rotated_files(path).into_iter().rev() {
            let lines = parse_lines(&read_blocking(f).await);
            let done = !starts_after(&lines);
            chunks.push(lines);
            if done {
                break;
            }
        }
    }
    let all: Vec<LogLine> = chunks.into_iter().rev().flatten().collect();
    (after(all, pos), cur)
}

/// Everything logged so far, and where a follower goes on from.
struct History {
    /// The records, oldest first.
    lines: Vec<LogLine>,
    /// The current file, read to its end through the descriptor kept for following.
    cur: Option<Current>,
    /// An unfinished last line of the current file.
    partial: Vec<u8>,
    /// The last record in `lines`.
    pos: Position,
}

impl History {
    async fn read(path: &FsPath) -> History {
        // The current file first: if it rotates meanwhile, the rotated files hold
        // its records too, and those are dropped from what it gave.
        let mut cur = Current::open(path).await;
        let mut partial: Vec<u8> = Vec::new();
        let mut current_lines = Vec::new();
        if let Some(c) = &mut cur {
            partial = c.read_new().await;
            let end = partial
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1);
            current_lines = parse_lines(&partial[..end]);
            partial.drain(..end);
        }
        let mut lines = Vec::new();
        for f in crate::logdriver::rotated_files(path) {
            lines.extend(parse_lines(&read_blocking(f).await));
        }
        let mut pos = Position::default();
        for l in &lines {
            pos.advance(l);
        }
        let current_lines = after(current_lines, pos);
        for l in &current_lines {
            pos.advance(l);
        }
        lines.extend(current_lines);
        History {
            lines,
            cur,
            partial,
            pos,
        }
    }
}

/// The container's logs so far as attach sends them with `logs=1` (Docker's
/// `ReadLogs` with no tail): frames of the selected streams, raw with a terminal.
pub(super) async fn attach_history(
    path: &FsPath,
    want_out: bool,
    want_err: bool,
    tty: bool,
) -> Vec<Bytes> {
    History::read(path)
        .await
        .lines
        .iter()
        .filter_map(|line| {
            let stream = if line.stream == "stderr" { 2 } else { 1 };
            let wanted = if stream == 1 { want_out } else { want_err };
            wanted.then(|| frame(stream, line.log.as_bytes(), tty))
        })
        .collect()
}

/// The handler; see the [module docs](self).
pub async fn logs(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let c = d.engine.get(&id)?;
    let want_out = flag(&q, "stdout");
    let want_err = flag(&q, "stderr");
    if !want_out && !want_err {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let Some(path) = crate::logdriver::log_file(&c.host_config, &d.engine.log_path(&c.id)) else {
        return Err(ApiError::bad_request(
            "configured logging driver does not support reading",
        ));
    };
    let follow = flag(&q, "follow");
    let timestamps = flag(&q, "timestamps");
    let since = time_filter(q.get("since"));
    let until = time_filter(q.get("until"));
    let tail: Option<usize> = q
        .get("tail")
        .and_then(|t| t.trim().parse::<i64>().ok())
        .and_then(|n| usize::try_from(n).ok());
    let tty = c.config["Tty"].as_bool() == Some(true);
    let mut events = d.engine.events(&c.id);
    let (tx, rx) = mpsc::channel::<Bytes>(64);

    tokio::spawn(async move {
        let render = |line: &LogLine| -> Option<Bytes> {
            let stream = if line.stream == "stderr" { 2 } else { 1 };
            if (stream == 1 && !want_out) || (stream == 2 && !want_err) {
                return None;
            }
            let (s, n) = stamp(line);
            let t = s as f64 + f64::from(n) / 1e9;
            if since.is_some_and(|s| t < s) || until.is_some_and(|u| t > u) {
                return None;
            }
            let text = if timestamps {
                format!("{} {}", line.time, line.log)
            } else {
                line.log.clone()
            };
            Some(frame(stream, text.as_bytes(), tty))
        };
        let History {
            lines,
            mut cur,
            mut partial,
            mut pos,
        } = History::read(&path).await;
        let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
        for l in lines.iter().skip(skip) {
            if let Some(b) = render(l) {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        }
        if !follow {
            return;
        }
        loop {
            let running = events.as_ref().is_some_and(|e| e.borrow().running);
            let mut fresh: Vec<LogLine> = Vec::new();
            let mut grew = false;
            if cur.is_none() {
                cur = Current::open(&path).await;
            }
            if let Some(c) = &mut cur {
                let rotated = match tokio::fs::metadata(&path).await {
                    Ok(m) if m.ino() == c.ino => {
                        if m.len() < c.offset {
                            // Truncated in place (max-file 1).
                            c.offset = 0;
                            partial.clear();
                        }
                        false
                    }
                    _ => true,
                };
                // Read the old file to its end even when it was rotated.
                let buf = c.read_new().await;
                grew |= !buf.is_empty();
                partial.extend_from_slice(&buf);
                let end = partial
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1);
                fresh.extend(parse_lines(&partial[..end]));
                partial.drain(..end);
                for l in &fresh {
                    pos.advance(l);
                }
                if rotated {
                    partial.clear();
                    let (more, new_cur) = resync(&path, pos).await;
                    grew |= !more.is_empty() || new_cur.is_some();
                    for l in &more {
                        pos.advance(l);
                    }
                    fresh.extend(more);
                    cur = new_cur;
                }
            }
            for l in &fresh {
                if let Some(b) = render(l) {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
            }
            if !running && !grew {
                return;
            }
            if let Some(e) = events.as_mut() {
                let _ = tokio::time::timeout(Duration::from_millis(100), e.changed()).await;
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(receiver_stream(rx)),
    )
        .into_response())
}

fn receiver_stream(
    mut rx: mpsc::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: &str, log: &str) -> LogLine {
        LogLine {
            log: log.into(),
            stream: "stdout".into(),
            time: t.into(),
        }
    }

    #[test]
    fn after_skips_what_was_delivered() {
        let lines = || {
            vec![
                line("2024-01-01T00:00:01Z", "a"),
                line("2024-01-01T00:00:02Z", "b"),
                line("2024-01-01T00:00:02Z", "c"),
                line("2024-01-01T00:00:03Z", "d"),
            ]
        };
        let mut pos = Position::default();
        for l in &lines()[..2] {
            pos.advance(l);
        }
        let rest: Vec<String> = after(lines(), pos).into_iter().map(|l| l.log).collect();
        assert_eq!(rest, ["c", "d"]);
        pos.advance(&lines()[2]);
        let rest: Vec<String> = after(lines(), pos).into_iter().map(|l| l.log).collect();
        assert_eq!(rest, ["d"]);
        let rest = after(lines(), Position::default());
        assert_eq!(rest.len(), 4);
    }
}
