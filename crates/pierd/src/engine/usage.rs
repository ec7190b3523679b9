//! Disk usage of containers (`system df`, `ps --size`) and `container prune` with
//! Docker's filters and `SpaceReclaimed`.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use pier_image::service::ImageService;

use super::{Container, Engine, EngineError};

/// `container prune`'s filters (`until`, `label`, `label!`), Docker's semantics.
#[derive(Debug, Clone, Default)]
pub struct ContainerPruneFilters {
    /// Only containers created before this Unix time are removed.
    pub until: Option<i64>,
    /// `label=k[=v]`: all must match.
    pub labels: Vec<String>,
    /// `label!=k[=v]`: a container all of them match is kept.
    pub not_labels: Vec<String>,
}

/// What `container prune` removed.
#[derive(Debug, Clone, Default)]
pub struct ContainerPruneReport {
    pub deleted: Vec<String>,
    pub space_reclaimed: u64,
}

/// Docker's `MatchKVList`: true without filters; else every `k[=v]` is in `labels`.
fn match_kv_list(filters: &[String], labels: &BTreeMap<String, String>) -> bool {
    if filters.is_empty() {
        return true;
    }
    filters.iter().all(|f| match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(f.as_str()),
    })
}

fn labels_of(c: &Container) -> BTreeMap<String, String> {
    c.config["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

impl ContainerPruneFilters {
    /// Whether the filters let `c` (a container that is not running) be removed.
    pub fn selects(&self, c: &Container) -> bool {
        let created = pier_image::time::parse_rfc3339(&c.created).map_or(0, |(s, _)| s);
        if self.until.is_some_and(|u| created > u) {
            return false;
        }
        let labels = labels_of(c);
        if !match_kv_list(&self.labels, &labels) {
            return false;
        }
        self.not_labels.is_empty() || !match_kv_list(&self.not_labels, &labels)
    }
}

/// The allocated bytes below the root of snapshot `key`'s own dir.
fn size_rw(images: &ImageService, key: &str) -> pier_image::Result<u64> {
    let snaps = images.snapshots();
    let usage = snaps.usage(key)?;
    let root = snaps.fs_path(key)?;
    let blocks = |p: &std::path::Path| std::fs::symlink_metadata(p).map_or(0, |m| m.blocks() * 512);
    // The root itself and what pierd made there (mount points, the copied-up `/etc`
    // holding them) are not the container's.
    let lowers = match snaps.mounts(key)? {
        pier_image::snapshot::MountSpec::Overlay { lowerdirs, .. } => lowerdirs,
        pier_image::snapshot::MountSpec::Bind { .. } => Vec::new(),
    };
    let ours: u64 = super::commit::engine_made(&root, &lowers)
        .iter()
        .map(|p| blocks(&root.join(p)))
        .sum();
    Ok(usage.saturating_sub(blocks(&root) + ours))
}

impl Engine {
    /// The size of a container's writable layer (`SizeRw`): what its snapshot's upper
    /// dir holds below its root, in allocated bytes (hard links once). Blocking.
    pub fn size_rw(&self, c: &Container) -> Result<u64, EngineError> {
        Ok(size_rw(&self.images, &c.snapshot_key)?)
    }

    /// `POST /containers/prune`: removes the containers that are not running (paused
    /// ones run) and that the filters select; `SpaceReclaimed` is the sum of their
    /// writable layers' sizes.
    pub async fn prune_containers(
        self: &Arc<Self>,
        filters: &ContainerPruneFilters,
    ) -> ContainerPruneReport {
        let mut report = ContainerPruneReport::default();
        for c in self.list() {
            if c.state.running || c.state.paused || !filters.selects(&c) {
                continue;
            }
            let size = {
                let images = self.images.clone();
                let key = c.snapshot_key.clone();
                tokio::task::spawn_blocking(move || size_rw(&images, &key).ok())
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            };
            if self.remove(&c.id, false).await.is_ok() {
                report.space_reclaimed += size;
                report.deleted.push(c.id);
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_lists_as_docker_matches_them() {
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        l.insert("b".to_string(), "2".to_string());
        assert!(match_kv_list(&[], &l));
        assert!(match_kv_list(&["a".into(), "b=2".into()], &l));
        assert!(!match_kv_list(&["a".into(), "c".into()], &l));
        assert!(!match_kv_list(&["a=2".into()], &l));
        assert!(!match_kv_list(&["a".into()], &BTreeMap::new()));
    }
}
