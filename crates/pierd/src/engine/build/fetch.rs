//! `ADD https://…`: a remote file fetched into a directory of the step's own, hashed
//! while it streams to disk, then copied like a context file.
//!
//! As Docker: the file is named by the URL path's last component, gets mode 0600 (and
//! `--chmod`/`--chown` when given) and the `Last-Modified` time; redirects are followed
//! (at most 10); a remote archive is not unpacked. `--checksum=sha256:…` is verified
//! before anything is copied. The HTTP client is pier-distribution's transport (hyper,
//! rustls), so https works as for registries.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use pier_distribution::transport::{Endpoint, RequestBody, Transport};
use pier_image::digest::{Algorithm, Digest, Hasher};

use super::BuildError;

/// Redirects followed before giving up, as Go's HTTP client.
const MAX_REDIRECTS: usize = 10;

fn failed(message: String) -> BuildError {
    BuildError::Failed { message, code: 1 }
}

/// The file name Docker gives a URL's download: the path's last component.
pub fn file_name(url: &str) -> Result<String, BuildError> {
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let path = path.split(['?', '#']).next().unwrap_or("");
    match path.rsplit('/').next() {
        Some(name) if !name.is_empty() && name != "." && name != ".." => Ok(name.to_string()),
        _ => Err(failed(format!("cannot determine filename from url: {url}"))),
    }
}

/// Downloads `url` into `dir/<name>` and checks `checksum`; the path written.
pub async fn fetch(url: &str, dir: &Path, checksum: Option<&str>) -> Result<PathBuf, BuildError> {
    fetch_as(url, dir, &file_name(url)?, checksum).await
}

/// [`fetch`] into `dir/name`.
pub async fn fetch_as(
    url: &str,
    dir: &Path,
    name: &str,
    checksum: Option<&str>,
) -> Result<PathBuf, BuildError> {
    let expected = match checksum {
        Some(c) => Some(
            c.parse::<Digest>()
                .map_err(|_| failed(format!("invalid checksum digest format: {c}")))?,
        ),
        None => None,
    };
    let transport = Transport::new();
    let mut current = url.to_string();
    let mut response = None;
    for _ in 0..=MAX_REDIRECTS {
        let (endpoint, path): (Endpoint, String) = Endpoint::parse_url(&current)
            .ok_or_else(|| failed(format!("unsupported URL: {current}")))?;
        let request = hyper::Request::get(path)
            .body(RequestBody::Empty)
            .map_err(|e| failed(format!("{current}: {e}")))?;
        let answer = transport
            .send(&endpoint, request)
            .await
            .map_err(|e| failed(format!("failed to fetch {url}: {e}")))?;
        if answer.status().is_redirection() {
            let location = answer
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| failed(format!("{current}: redirect without a Location")))?;
            current = if location.contains("://") {
                location.to_string()
            } else {
                endpoint.url(location)
            };
            continue;
        }
        if !answer.status().is_success() {
            return Err(failed(format!(
                "failed to GET {url} with status {}",
                answer.status()
            )));
        }
        response = Some(answer);
        break;
    }
    let response = response.ok_or_else(|| failed(format!("{url}: too many redirects")))?;
    let modified = response
        .headers()
        .get(hyper::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    let target = dir.join(name);
    let mut file = std::fs::File::create(&target)
        .map_err(|e| BuildError::internal("writing a download", e))?;
    let mut hasher = Hasher::new(
        expected
            .as_ref()
            .map_or(Algorithm::Sha256, Digest::algorithm),
    );
    let mut body = axum::body::Body::new(response.into_body()).into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| failed(format!("failed to fetch {url}: {e}")))?;
        hasher.update(&chunk);
        file.write_all(&chunk)
            .map_err(|e| BuildError::internal("writing a download", e))?;
    }
    file.sync_all()
        .map_err(|e| BuildError::internal("writing a download", e))?;
    let got = hasher.finish();
    if let Some(want) = expected {
        if got != want {
            return Err(failed(format!(
                "digest mismatch for {url}: {got}, expected {want}"
            )));
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| BuildError::internal("writing a download", e))?;
    if let Some(t) = modified {
        let _ = file.set_modified(t);
    }
    Ok(target)
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, the form servers send).
fn parse_http_date(text: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u32
        + 1;
    let rfc3339 = format!("{year}-{month:02}-{:0>2}T{time}Z", day);
    let (secs, _) = pier_image::time::parse_rfc3339(&rfc3339)?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(file_name("http://h/a/b.tar.gz?x=1").unwrap(), "b.tar.gz");
        assert!(file_name("http://h/").is_err());
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            784111777
        );
    }
}
