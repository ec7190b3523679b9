//! `GET /containers/{id}/attach/ws`: attach over a WebSocket (RFC 6455).
//!
//! As Docker's: the output is raw (not multiplexed) in binary frames (API ≥ 1.28),
//! the payloads of the client's data frames are the container's stdin. The accept
//! key's SHA-1 is ring's and its base64 the `base64` crate's (both already in the
//! tree); the small framing is done here: frame encoding for the server (unmasked)
//! and decoding of the client's (masked) frames, ping/pong and close.
//!
//! The framing is kept rather than taken from axum's `ws` feature (tokio-tungstenite):
//! measured against this workspace's lock, that feature brings 6 new crates
//! (tungstenite, tokio-tungstenite, sha1, data-encoding, rand_chacha, ppv-lite86) and
//! 6 second versions of crates already here (rand 0.9 beside 0.10, digest 0.10 beside
//! 0.11, rand_core, block-buffer, cpufeatures, zerocopy), for about 150 lines of
//! RFC 6455 that the tests below and the attach/ws API tests pin down.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::containers::connect_attach;
use super::stream::Demux;
use super::{ApiError, AppState};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// The largest client frame accepted (stdin comes in small pieces).
const MAX_FRAME: u64 = 16 << 20;

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    matches!(q.get(key).map(String::as_str), Some("1" | "true" | "True"))
}

/// The handler; see the [module docs](self).
pub async fn attach_ws(
    State(d): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let c = d.engine.get(&id)?;
    let headers = req.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err(ApiError::bad_request(
            "websocket: the client is not using the websocket protocol",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::bad_request("websocket: missing Sec-WebSocket-Key"))?
        .to_string();
    let accept = accept_key(&key);
    let target = d.engine.attach_target(&id)?;
    let want_stdin = flag(&q, "stdin");
    let want_out = flag(&q, "stdout");
    let want_err = flag(&q, "stderr");
    let tty = c.config["Tty"].as_bool() == Some(true);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let Some(monitor) = connect_attach(target, want_stdin).await else {
            return;
        };
        let (mut client_r, mut client_w) = tokio::io::split(TokioIo::new(upgraded));
        let (mut mon_r, mut mon_w) = monitor.into_split();
        // Every frame to the client goes through one writer.
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(32);
        let writer = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                let close = frame.first().is_some_and(|b| b & 0x0F == OP_CLOSE);
                if client_w.write_all(&frame).await.is_err() || close {
                    break;
                }
            }
            let _ = client_w.shutdown().await;
        });
        let out_tx = tx.clone();
        let to_client = async move {
            let mut demux = Demux::default();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = match mon_r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let chunks = if tty {
                    vec![(1, buf[..n].to_vec())]
                } else {
                    demux.push(&buf[..n])
                };
                for (stream, data) in chunks {
                    if (stream == 2 && !want_err) || (stream != 2 && !want_out) {
                        continue;
                    }
                    if out_tx.send(encode(OP_BINARY, &data)).await.is_err() {
                        return;
                    }
                }
            }
            let _ = out_tx.send(encode(OP_CLOSE, &1000u16.to_be_bytes())).await;
        };
        let from_client = async {
            loop {
                match read_frame(&mut client_r).await {
                    Ok((OP_TEXT | OP_BINARY | OP_CONTINUATION, payload)) => {
                        if want_stdin && mon_w.write_all(&payload).await.is_err() {
                            break;
                        }
                    }
                    Ok((OP_PING, payload)) => {
                        let _ = tx.send(encode(OP_PONG, &payload)).await;
                    }
                    Ok((OP_PONG, _)) => {}
                    Ok((OP_CLOSE, payload)) => {
                        let code = payload.get(..2).map_or(vec![0x03, 0xE8], <[u8]>::to_vec);
                        let _ = tx.send(encode(OP_CLOSE, &code)).await;
                        break;
                    }
                    Ok(_) | Err(_) => break,
                }
            }
        };
        // The client closing (or going away) ends the attach; the container's output
        // ending does too.
        tokio::select! {
            () = to_client => {}
            () = from_client => {}
        }
        let _ = mon_w.shutdown().await;
        drop(tx);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(axum::body::Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// One server frame (FIN, unmasked).
fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// One client frame: (opcode, unmasked payload).
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await?;
    let opcode = head[0] & 0x0F;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).await?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).await?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    if len > MAX_FRAME {
        return Err(std::io::Error::other("websocket frame too large"));
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((opcode, payload))
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_accept_key() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frames() {
        assert_eq!(encode(OP_BINARY, b"hi"), vec![0x82, 2, b'h', b'i']);
        let long = encode(OP_BINARY, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x82, 126, 1, 44]);
        let big = encode(OP_BINARY, &vec![0u8; 70_000]);
        assert_eq!(&big[..2], &[0x82, 127]);
        assert_eq!(big.len(), 70_000 + 10);
        // RFC 6455 section 5.7: a masked "Hello".
        let masked = [
            0x81u8, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (op, payload) = rt.block_on(read_frame(&mut &masked[..])).unwrap();
        assert_eq!((op, payload.as_slice()), (OP_TEXT, &b"Hello"[..]));
    }

    #[test]
    fn demux_across_cuts() {
        let mut d = Demux::default();
        let mut stream = vec![1, 0, 0, 0, 0, 0, 0, 3];
        stream.extend_from_slice(b"out");
        stream.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 2]);
        stream.extend_from_slice(b"er");
        let mut got = d.push(&stream[..5]);
        got.extend(d.push(&stream[5..12]));
        got.extend(d.push(&stream[12..]));
        assert_eq!(got, vec![(1, b"out".to_vec()), (2, b"er".to_vec())]);
    }
}
