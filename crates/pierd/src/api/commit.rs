//! `POST /commit` (`docker commit`).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use pier_image::reference::Reference;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::engine::commit::CommitOptions;

pub fn routes() -> Router<AppState> {
    Router::new().route("/commit", post(commit))
}

/// The query's values of `key`, in order (`changes` repeats).
fn all(q: &[(String, String)], key: &str) -> Vec<String> {
    q.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

fn first<'a>(q: &'a [(String, String)], key: &str) -> &'a str {
    q.iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// Docker's `BoolValueOrDefault`.
fn bool_or(q: &[(String, String)], key: &str, default: bool) -> bool {
    match first(q, key).trim().to_ascii_lowercase().as_str() {
        "" => default,
        "0" | "no" | "false" | "none" => false,
        _ => true,
    }
}

/// Docker's `RepoTagReference`: no repository, no name; a tag replaces the
/// repository's; without one, `latest`.
pub(crate) fn repo_tag_reference(repo: &str, tag: &str) -> Result<Option<Reference>, ApiError> {
    if repo.is_empty() {
        return Ok(None);
    }
    let reference = Reference::parse(repo)?;
    if reference.digest().is_some() {
        return Err(ApiError::bad_request(
            "refusing to create a tag with a digest reference",
        ));
    }
    let reference = if tag.is_empty() {
        Reference::parse_with_default_tag(repo)?
    } else {
        reference.with_tag(tag)?
    };
    Ok(Some(reference))
}

async fn commit(
    State(d): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let config = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let mut config = serde_json::from_slice::<Value>(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
        super::body_types::commit_config(&mut config)?;
        Some(config)
    };
    let reference = repo_tag_reference(first(&q, "repo"), first(&q, "tag"))?;
    let opts = CommitOptions {
        container: first(&q, "container").to_string(),
        reference,
        comment: first(&q, "comment").to_string(),
        author: first(&q, "author").to_string(),
        pause: bool_or(&q, "pause", true),
        changes: all(&q, "changes"),
        config,
    };
    let committed = d.engine.commit(opts).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": committed.image_id })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_and_tag() {
        assert!(repo_tag_reference("", "x").unwrap().is_none());
        let r = repo_tag_reference("out", "").unwrap().unwrap();
        assert_eq!(r.familiar(), "out:latest");
        let r = repo_tag_reference("localhost:5000/a/out:1", "2")
            .unwrap()
            .unwrap();
        assert_eq!(r.familiar(), "localhost:5000/a/out:2");
        assert!(repo_tag_reference("Bad", "").is_err());
        assert!(repo_tag_reference("out", "bad tag").is_err());
        let zeros = "0".repeat(64);
        assert!(repo_tag_reference(&format!("out@sha256:{zeros}"), "").is_err());
    }

    #[test]
    fn pause_defaults_to_true() {
        let q = |v: &str| vec![("pause".to_string(), v.to_string())];
        assert!(bool_or(&[], "pause", true));
        assert!(!bool_or(&q("0"), "pause", true));
        assert!(!bool_or(&q("false"), "pause", true));
        assert!(bool_or(&q("1"), "pause", true));
    }
}
