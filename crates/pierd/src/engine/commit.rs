//! `POST /commit` (`docker commit`): a new image from a container's changes.
//!
//! As dockerd does it (`CreateImageFromContainer`): a running container is paused for
//! the commit unless the caller says not to (and resumed after, whatever happened);
//! the config given in the request (or the container's own) gets the `changes`
//! (Dockerfile instructions) applied and is then merged with the container's config;
//! the container's upper dir becomes the new layer on top of its image, the history
//! step says `created_by` = the container's `Cmd` joined by spaces, with the author and
//! comment.

use std::path::{Path, PathBuf};

use pier_image::image::ContainerConfig;
use pier_image::reference::Reference;
use pier_image::service::commit::CommitRequest;
use serde_json::Value;

use super::{internal, strings, Container, Engine, EngineError, DEFAULT_PATH};

/// The Dockerfile instructions `docker commit --change` accepts (dockerd's
/// `validCommitCommands`).
const COMMIT_INSTRUCTIONS: [&str; 10] = [
    "cmd",
    "entrypoint",
    "healthcheck",
    "env",
    "expose",
    "label",
    "onbuild",
    "user",
    "volume",
    "workdir",
];

/// What the API hands over.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Container name or ID.
    pub container: String,
    /// The name for the image (tag already defaulted); dangling without one.
    pub reference: Option<Reference>,
    pub comment: String,
    pub author: String,
    /// Pause a running container during the commit.
    pub pause: bool,
    /// Dockerfile instructions to apply to the config.
    pub changes: Vec<String>,
    /// The request body's config, if one was given.
    pub config: Option<Value>,
}

/// What a commit made.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The new image's ID (`sha256:…`).
    pub image_id: String,
    /// The container's full ID.
    pub container_id: String,
    /// The name given to the image, familiar form, or empty.
    pub image_ref: String,
}

impl Engine {
    /// `POST /commit`; see the [module docs](self).
    pub async fn commit(&self, opts: CommitOptions) -> Result<Committed, EngineError> {
        let c = self.get(&opts.container)?;
        if c.state.dead || c.state.status == "dead" {
            return Err(EngineError::Conflict(format!(
                "You cannot commit container {} which is Dead",
                c.id
            )));
        }
        if c.state.status == "removing" {
            return Err(EngineError::Conflict(format!(
                "You cannot commit container {} which is being removed",
                c.id
            )));
        }
        // dockerd ignores a failed pause (and a container that is not running cannot
        // be paused): the commit goes on.
        let paused_here =
            opts.pause && c.state.running && !c.state.paused && self.pause(&c.id).await.is_ok();
        let result = self.commit_container(&c, &opts).await;
        if paused_here {
            if let Err(e) = self.unpause(&c.id).await {
                eprintln!("pierd: commit: unpause {}: {e}", c.id);
            }
        }
        let committed = result?;
        self.container_event(
            &c.id,
            "commit",
            &[
                ("comment", opts.comment.clone()),
                ("imageID", committed.image_id.clone()),
                ("imageRef", committed.image_ref.clone()),
            ],
        );
        if !committed.image_ref.is_empty() {
            self.bus.publish(super::events::Event::image(
                &committed.image_id,
                "tag",
                Some(&committed.image_ref),
            ));
        }
        Ok(committed)
    }

    async fn commit_container(
        &self,
        c: &Container,
        opts: &CommitOptions,
    ) -> Result<Committed, EngineError> {
        let images = self.images.clone();
        let image_id = c.image_id.clone();
        let parent = tokio::task::spawn_blocking(move || images.details(&image_id))
            .await
            .map_err(|e| internal("commit", e))??;
        let image_has_path = parent
            .config
            .config
            .as_ref()
            .and_then(|cc| cc.env.as_ref())
            .is_some_and(|env| env.iter().any(|e| e.starts_with("PATH=")));
        let config = commit_config(c, opts, image_has_path)?;
        let created_by = strings(c.config["Cmd"].as_array().map_or(&[][..], |v| v)).join(" ");

        let images = self.images.clone();
        let key = c.snapshot_key.clone();
        let request_base = (
            parent.id.to_string(),
            config,
            created_by,
            opts.author.clone(),
            opts.comment.clone(),
            opts.reference.clone(),
        );
        let id = tokio::task::spawn_blocking(move || -> Result<String, EngineError> {
            let (parent, config, created_by, author, comment, reference) = request_base;
            let snaps = images.snapshots();
            let upper = snaps.fs_path(&key)?;
            let lowers = match snaps.mounts(&key)? {
                pier_image::snapshot::MountSpec::Overlay { lowerdirs, .. } => lowerdirs,
                pier_image::snapshot::MountSpec::Bind { .. } => Vec::new(),
            };
            let exclude = engine_made(&upper, &lowers);
            let req = CommitRequest {
                upper,
                exclude,
                parent,
                config,
                created_by,
                author: Some(author),
                comment: Some(comment),
                reference,
            };
            Ok(images.commit(&req)?.to_string())
        })
        .await
        .map_err(|e| internal("commit", e))??;
        Ok(Committed {
            image_id: id,
            container_id: c.id.clone(),
            image_ref: opts
                .reference
                .as_ref()
                .map(Reference::familiar)
                .unwrap_or_default(),
        })
    }
}

/// The new image's config: the request's config (or the container's), `changes`
/// applied, merged with the container's config as dockerd's `merge` does.
fn commit_config(
    c: &Container,
    opts: &CommitOptions,
    image_has_path: bool,
) -> Result<ContainerConfig, EngineError> {
    for change in &opts.changes {
        let line = change.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let instr = line
            .split(char::is_whitespace)
            .next()
            .unwrap_or(line)
            .to_ascii_lowercase();
        if !COMMIT_INSTRUCTIONS.contains(&instr.as_str()) {
            return Err(EngineError::InvalidParameter(format!(
                "{instr} is not a valid change command"
            )));
        }
    }
    let container = parse_config(&c.config)?;
    let mut user = match &opts.config {
        Some(v) if !v.is_null() => parse_config(v)?,
        _ => container.clone(),
    };
    pier_image::diff::apply_changes(&mut user, &opts.changes)?;
    merge(&mut user, &container);
    // pierd writes the default PATH into a container's Env when the image has none;
    // Docker adds it when the process starts, so it is not part of the image.
    if !image_has_path {
        if let Some(env) = user.env.as_mut() {
            env.retain(|e| e != DEFAULT_PATH);
        }
        if user.env.as_ref().is_some_and(Vec::is_empty) {
            user.env = None;
        }
    }
    // Run settings only: the container's own settings (hostname, stdio, image name)
    // are not the image's.
    user.extra.clear();
    Ok(user)
}

fn parse_config(v: &Value) -> Result<ContainerConfig, EngineError> {
    serde_json::from_value(v.clone())
        .map_err(|e| EngineError::InvalidParameter(format!("invalid container config: {e}")))
}

/// dockerd's `merge(userConf, imageConf)`: what the user's config leaves unset comes
/// from the container's config.
fn merge(user: &mut ContainerConfig, base: &ContainerConfig) {
    if user.user.as_deref().unwrap_or_default().is_empty() {
        user.user.clone_from(&base.user);
    }
    match (&mut user.exposed_ports, &base.exposed_ports) {
        (Some(mine), Some(theirs)) if !mine.is_empty() => {
            for (k, v) in theirs {
                mine.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        (_, theirs) => {
            if user.exposed_ports.as_ref().is_none_or(|m| m.is_empty()) {
                user.exposed_ports.clone_from(theirs);
            }
        }
    }
    if user.env.as_ref().is_none_or(Vec::is_empty) {
        user.env.clone_from(&base.env);
    } else if let (Some(mine), Some(theirs)) = (user.env.as_mut(), base.env.as_ref()) {
        for e in theirs {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            let found = mine
                .iter()
                .any(|m| m.split_once('=').map_or(m.as_str(), |(k, _)| k) == key);
            if !found {
                mine.push(e.clone());
            }
        }
    }
    let labels = user.labels.get_or_insert_with(Default::default);
    for (k, v) in base.labels.iter().flatten() {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if user.entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if user.cmd.as_ref().is_none_or(Vec::is_empty) {
            user.cmd.clone_from(&base.cmd);
        }
        if user.entrypoint.is_none() {
            user.entrypoint.clone_from(&base.entrypoint);
        }
    }
    if let Some(theirs) = &base.healthcheck {
        match &mut user.healthcheck {
            None => user.healthcheck = Some(theirs.clone()),
            Some(mine) => {
                if mine.test.as_ref().is_none_or(Vec::is_empty) {
                    mine.test.clone_from(&theirs.test);
                }
                if mine.interval.unwrap_or(0) == 0 {
                    mine.interval = theirs.interval;
                }
                if mine.timeout.unwrap_or(0) == 0 {
                    mine.timeout = theirs.timeout;
                }
                if mine.start_period.unwrap_or(0) == 0 {
                    mine.start_period = theirs.start_period;
                }
                if mine.start_interval.unwrap_or(0) == 0 {
                    mine.start_interval = theirs.start_interval;
                }
                if mine.retries.unwrap_or(0) == 0 {
                    mine.retries = theirs.retries;
                }
            }
        }
    }
    if user.working_dir.as_deref().unwrap_or_default().is_empty() {
        user.working_dir.clone_from(&base.working_dir);
    }
    match (&mut user.volumes, &base.volumes) {
        (Some(mine), Some(theirs)) if !mine.is_empty() => {
            for (k, v) in theirs {
                mine.insert(k.clone(), v.clone());
            }
        }
        (_, theirs) => {
            if user.volumes.as_ref().is_none_or(|m| m.is_empty()) {
                user.volumes.clone_from(theirs);
            }
        }
    }
    if user.stop_signal.as_deref().unwrap_or_default().is_empty() {
        user.stop_signal.clone_from(&base.stop_signal);
    }
}

/// Tar paths of the upper dir that pierd (not the container) made: the empty mount
/// points of the bind-mounted `/etc/hostname|hosts|resolv.conf` (Docker has them in
/// its init layer, below the container's), and `/etc` itself when nothing else in it
/// changed and the image has it.
pub(crate) fn engine_made(upper: &Path, lowers: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let etc = upper.join("etc");
    for name in ["hostname", "hosts", "resolv.conf"] {
        if std::fs::symlink_metadata(etc.join(name)).is_ok_and(|m| m.is_file() && m.len() == 0) {
            out.push(Path::new("etc").join(name));
        }
    }
    let Ok(meta) = std::fs::symlink_metadata(&etc) else {
        return out;
    };
    if !meta.is_dir() || out.is_empty() || is_opaque(&etc) {
        return out;
    }
    let only_ours = std::fs::read_dir(&etc).is_ok_and(|rd| {
        rd.flatten()
            .all(|e| out.contains(&Path::new("etc").join(e.file_name())))
    });
    let lower_has_etc = lowers
        .iter()
        .any(|l| std::fs::symlink_metadata(l.join("etc")).is_ok_and(|m| m.is_dir()));
    if only_ours && lower_has_etc {
        out.push(PathBuf::from("etc"));
    }
    out
}

fn is_opaque(path: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut buf = [0u8; 8];
            matches!(rustix::fs::lgetxattr(path, *name, &mut buf[..]), Ok(n) if &buf[..n] == b"y")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: Value) -> ContainerConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn merge_fills_what_the_user_left_unset() {
        let base = cfg(serde_json::json!({
            "User": "nobody", "Env": ["A=1", "B=2"], "Cmd": ["sh"], "WorkingDir": "/w",
            "Labels": {"l": "1", "m": "2"}, "ExposedPorts": {"80/tcp": {}},
        }));
        let mut user = cfg(serde_json::json!({"Env": ["B=3"], "Labels": {"m": "x"}}));
        merge(&mut user, &base);
        assert_eq!(user.user.as_deref(), Some("nobody"));
        assert_eq!(user.env.unwrap(), vec!["B=3", "A=1"]);
        assert_eq!(user.cmd.unwrap(), vec!["sh"]);
        assert_eq!(user.working_dir.as_deref(), Some("/w"));
        let labels = user.labels.unwrap();
        assert_eq!(labels["l"], "1");
        assert_eq!(labels["m"], "x");
        assert!(user.exposed_ports.unwrap().contains_key("80/tcp"));

        // An entrypoint of the user's keeps the base's Cmd out.
        let mut user = cfg(serde_json::json!({"Entrypoint": ["echo"]}));
        merge(&mut user, &base);
        assert_eq!(user.cmd, None);
    }

    #[test]
    fn engine_mount_points_are_not_changes() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("upper");
        let lower = dir.path().join("lower");
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        for f in ["hostname", "hosts", "resolv.conf"] {
            std::fs::write(upper.join("etc").join(f), "").unwrap();
        }
        let ex = engine_made(&upper, std::slice::from_ref(&lower));
        assert!(ex.contains(&PathBuf::from("etc")), "{ex:?}");
        assert!(ex.contains(&PathBuf::from("etc/hosts")), "{ex:?}");
        // A change of the container's own in /etc keeps /etc.
        std::fs::write(upper.join("etc/motd"), "hi").unwrap();
        let ex = engine_made(&upper, std::slice::from_ref(&lower));
        assert!(!ex.contains(&PathBuf::from("etc")), "{ex:?}");
        // A written hosts file is a change.
        std::fs::write(upper.join("etc/hosts"), "x").unwrap();
        let ex = engine_made(&upper, &[lower]);
        assert!(!ex.contains(&PathBuf::from("etc/hosts")), "{ex:?}");
    }
}
