//! `--explain` (Pier's `explain=1`): why a step missed the cache.
//!
//! After each step the builder records what it depended on, under an identity made of
//! the build's tags, its Dockerfile and the step's position; `<data-root>/builder/
//! explain/<identity>`. On a miss it compares with the record of the last build of the
//! same step, in the order a change propagates: the step before it, the files a
//! `COPY`/`ADD` reads (named), the instruction with its expanded values and build
//! args, the environment it runs in.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a step depended on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Facts {
    /// The parent image's ID.
    pub parent: String,
    /// The step's cache key (it covers everything below too).
    pub step: String,
    /// The run config before the step.
    pub config: String,
    /// `COPY`/`ADD`: destination path → hash of mode, owners and contents.
    pub files: BTreeMap<String, String>,
}

/// The records, one small JSON file per step identity.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(data_root: &Path) -> Store {
        Store {
            dir: data_root.join("builder").join("explain"),
        }
    }

    pub fn get(&self, identity: &str) -> Option<Facts> {
        serde_json::from_slice(&fs::read(self.dir.join(identity)).ok()?).ok()
    }

    /// Records `facts`; a failure only loses the next explanation.
    pub fn put(&self, identity: &str, facts: &Facts) {
        let _ = (|| -> std::io::Result<()> {
            fs::create_dir_all(&self.dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(&serde_json::to_vec(facts).map_err(std::io::Error::other)?)?;
            tmp.persist(self.dir.join(identity)).map_err(|e| e.error)?;
            Ok(())
        })();
    }
}

/// Why `now` missed, given the last build's record of the same step.
pub fn reason(before: Option<&Facts>, now: &Facts) -> String {
    let Some(before) = before else {
        return "no earlier build of this step (with these tags and Dockerfile) to compare with"
            .into();
    };
    if before.parent != now.parent {
        return "the step before it changed".into();
    }
    if before.files != now.files {
        let mut changed = Vec::new();
        for (path, hash) in &now.files {
            match before.files.get(path) {
                None => changed.push(format!("{path} (new)")),
                Some(h) if h != hash => changed.push(path.clone()),
                _ => {}
            }
        }
        for path in before.files.keys().filter(|p| !now.files.contains_key(*p)) {
            changed.push(format!("{path} (gone)"));
        }
        let shown: Vec<String> = changed.iter().take(10).cloned().collect();
        let more = changed.len().saturating_sub(shown.len());
        return format!(
            "files changed: {}{}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    if before.config != now.config {
        return "its environment changed (an ENV, ARG, USER or WORKDIR before it)".into();
    }
    if before.step != now.step {
        return "the instruction, its expanded values or the build args it sees changed".into();
    }
    "the cache entry is gone (pruned, or never finished)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_what_changed() {
        let mut a = Facts {
            parent: "p".into(),
            step: "k".into(),
            config: "c".into(),
            files: BTreeMap::from([("/a".into(), "1".into()), ("/b".into(), "2".into())]),
        };
        assert!(reason(None, &a).starts_with("no earlier build"));
        let before = a.clone();
        a.files.insert("/a".into(), "9".into());
        a.files.remove("/b");
        a.files.insert("/c".into(), "3".into());
        assert_eq!(
            reason(Some(&before), &a),
            "files changed: /a, /c (new), /b (gone)"
        );
        let mut p = before.clone();
        p.parent = "q".into();
        assert_eq!(reason(Some(&before), &p), "the step before it changed");
        assert!(reason(Some(&before), &before).starts_with("the cache entry is gone"));
    }
}
