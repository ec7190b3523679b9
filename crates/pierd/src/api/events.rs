//! `GET /events`: the event log, replayed from `since` and streamed live until `until`
//! (or until the client goes), one JSON object per line.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::broadcast;

use super::{ApiError, ApiVersion, AppState};
use crate::engine::events::{Event, EventFilter};

pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

/// The first API version without the legacy `status`/`id`/`from` fields.
const WITHOUT_LEGACY_FIELDS: ApiVersion = ApiVersion(1, 52);

async fn events(
    State(d): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let now = now_nanos();
    let since = timestamp(q.get("since"), now, "since")?;
    let until = timestamp(q.get("until"), now, "until")?;
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(ApiError::bad_request(
                "`since` time cannot be after `until` time",
            ));
        }
    }
    let filters = super::containers::parse_filters(q.get("filters"))?;
    let filter = EventFilter::new(filters).map_err(ApiError::bad_request)?;

    let (recent, live) = d.engine.bus().subscribe();
    // Without `since`, only what happens from now on (as dockerd).
    let replay: VecDeque<Event> = match since {
        Some(since) => recent
            .into_iter()
            .filter(|e| e.time_nano >= since && until.is_none_or(|u| e.time_nano <= u))
            .collect(),
        None => VecDeque::new(),
    };
    let deadline = until.map(|u| {
        let wait = u64::try_from(u.saturating_sub(now)).unwrap_or(0);
        tokio::time::Instant::now() + Duration::from_nanos(wait)
    });
    let feed = Feed {
        replay,
        live,
        filter,
        until,
        deadline,
        legacy: version < WITHOUT_LEGACY_FIELDS,
    };
    let body = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        let mut line = event.to_json(feed.legacy).to_string();
        line.push('\n');
        Some((Ok::<_, Infallible>(Bytes::from(line)), feed))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// One client's view of the log.
struct Feed {
    replay: VecDeque<Event>,
    live: broadcast::Receiver<Event>,
    filter: EventFilter,
    until: Option<i64>,
    deadline: Option<tokio::time::Instant>,
    legacy: bool,
}

impl Feed {
    /// The next event that passes the filter; `None` at `until`.
    async fn next(&mut self) -> Option<Event> {
        while let Some(e) = self.replay.pop_front() {
            if self.filter.matches(&e) {
                return Some(e);
            }
        }
        loop {
            let received = match self.deadline {
                Some(deadline) => tokio::select! {
                    r = self.live.recv() => r,
                    () = tokio::time::sleep_until(deadline) => return None,
                },
                None => self.live.recv().await,
            };
            match received {
                Ok(e) => {
                    if self.until.is_some_and(|u| e.time_nano > u) {
                        return None;
                    }
                    if self.filter.matches(&e) {
                        return Some(e);
                    }
                }
                // A slow client misses what it could not keep up with.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Docker's timestamps for `since`/`until`: Unix seconds with an optional fraction,
/// RFC 3339, or a Go duration counted back from now (`10m`). Nanoseconds.
fn timestamp(value: Option<&String>, now: i64, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(text) = value.map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(format!(
            "failed to parse value {text:?} for {name}: not a Unix timestamp, RFC 3339 time or duration"
        ))
    };
    if let Some((secs, frac)) = text.split_once('.').or(Some((text, ""))) {
        if !secs.is_empty()
            && secs.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
            && frac.len() <= 9
        {
            let secs: i64 = secs.parse().map_err(|_| bad())?;
            let nanos: i64 = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<9}").parse().map_err(|_| bad())?
            };
            return Ok(Some(secs.saturating_mul(1_000_000_000) + nanos));
        }
    }
    if let Some((secs, nanos)) = pier_image::time::parse_rfc3339(text) {
        return Ok(Some(secs.saturating_mul(1_000_000_000) + i64::from(nanos)));
    }
    // A Go duration, unsigned here.
    let ago = pier_image::time::parse_go_duration(text)
        .filter(|_| !text.starts_with(['-', '+']))
        .ok_or_else(bad)?;
    Ok(Some(now - ago))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_dockers_forms() {
        let now = 2_000_000_000 * 1_000_000_000;
        let t = |v: &str| timestamp(Some(&v.to_string()), now, "since").map_err(|e| e.message);
        assert_eq!(t("1629574695"), Ok(Some(1_629_574_695_000_000_000)));
        assert_eq!(t("1629574695.5"), Ok(Some(1_629_574_695_500_000_000)));
        assert_eq!(
            t("1629574695.000000001"),
            Ok(Some(1_629_574_695_000_000_001))
        );
        assert_eq!(
            t("2021-08-21T19:38:15Z"),
            Ok(Some(1_629_574_695_000_000_000))
        );
        assert_eq!(t("10m"), Ok(Some(now - 600_000_000_000)));
        assert_eq!(t("1h30m"), Ok(Some(now - 5_400_000_000_000)));
        assert!(t("yesterday").unwrap_err().contains("\"yesterday\""));
        assert_eq!(timestamp(None, now, "since").ok(), Some(None));
    }
}
