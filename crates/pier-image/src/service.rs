//! The image service: what users do with images (`docker images`, `image inspect`,
//! `history`, `tag`, `rmi`, `image prune`, `load`, `save`, `import`, `system df`),
//! tying the content store, the image database and the snapshotter together and
//! answering in the Docker Engine API's JSON shapes ([`api`]).
//!
//! Layout under the service root: `content/` (blobs), `images/` (the image database)
//! and `snapshots/` (overlay snapshots by chain ID).
//!
//! Every image that is recorded is also unpacked: each layer once, into a committed
//! snapshot named by its chain ID and shared by every image that has it. Layers are
//! extracted in parallel into parentless snapshots (a layer's contents do not depend on
//! the layers below it) and chained in order afterwards. Removing an image removes
//! exactly the blobs and snapshots that no other image, lease or container snapshot
//! holds.

pub mod api;
pub mod build_step;
pub mod commit;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::archive::{load_archive, save_targets};
use crate::content::ContentStore;
use crate::diff::import_rootfs;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{
    export_oci_layout, select_platform, Descriptor, ImageConfig, ImageStore, LoadedImage, Manifest,
    ManifestKind, Platform, StoredImage,
};
use crate::layer::apply_layer;
use crate::reference::Reference;
use crate::snapshot::{chain_ids, Kind, Snapshotter};
use crate::time::{format_rfc3339, parse_rfc3339};

use api::{DeleteItem, HistoryItem, ImageInspect, ImageSummary, PruneReport};

/// A container's hold on an image, as the engine reports it: images used by
/// containers are not removed without force, and never while the container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    /// The container's full ID.
    pub container: String,
    /// The image ID the container was created from.
    pub image: Digest,
    pub running: bool,
}

/// Filters of `docker images` (`--filter`), as the Engine API takes them.
#[derive(Debug, Clone, Default)]
pub struct ListFilters {
    /// `dangling=true|false`.
    pub dangling: Option<bool>,
    /// `reference=<pattern>`: glob on the familiar name (`busy*`, `*/app:1.*`).
    pub reference: Vec<String>,
    /// `label=<key>` or `label=<key>=<value>`.
    pub label: Vec<String>,
    /// `before=<image>`: images created before that one.
    pub before: Option<String>,
    /// `since=<image>`: images created after that one.
    pub since: Option<String>,
}

/// One image resolved down to the host platform's manifest and config.
#[derive(Debug, Clone)]
pub struct ImageDetails {
    pub id: Digest,
    pub target: Descriptor,
    pub names: Vec<Reference>,
    pub manifest: Manifest,
    pub config: ImageConfig,
    /// Chain IDs of the layers, bottom first (the snapshot names).
    pub chain: Vec<Digest>,
    pub created: u64,
    pub updated: u64,
}

/// The image service over one root directory; see the [module docs](self).
#[derive(Debug)]
pub struct ImageService {
    store: ImageStore,
    snapshots: Snapshotter,
    /// Serializes removals and GC within this process (other processes coordinate
    /// through the stores' file locks).
    gc_lock: Mutex<()>,
}

static EXTRACT_SEQ: AtomicU64 = AtomicU64::new(0);

impl ImageService {
    /// Opens (creating if needed) the service rooted at `root`.
    pub fn open(root: &Path) -> Result<ImageService> {
        let content = ContentStore::open(&root.join("content"))?;
        let store = ImageStore::open(content, &root.join("images"))?;
        let snapshots = Snapshotter::open(&root.join("snapshots"))?;
        Ok(ImageService {
            store,
            snapshots,
            gc_lock: Mutex::new(()),
        })
    }

    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    pub fn content(&self) -> &ContentStore {
        self.store.content()
    }

    pub fn snapshots(&self) -> &Snapshotter {
        &self.snapshots
    }

    // -----------------------------------------------------------------------------
    // Getting images in.

    /// `docker load`: a `docker save` archive or an OCI layout tar. Every loaded image
    /// is recorded (nameless ones as dangling) and unpacked.
    pub fn load(&self, input: impl Read) -> Result<Vec<LoadedImage>> {
        let loaded = load_archive(&self.store, input)?;
        let mut done = HashSet::new();
        for image in &loaded {
            if done.insert(image.target.digest.clone()) {
                self.unpack(&image.target)?;
            }
        }
        Ok(loaded)
    }

    /// `docker import`: a rootfs tar (plain or compressed) becomes a one-layer image,
    /// with `--change` instructions applied; recorded as `reference` or dangling.
    /// Returns the image ID.
    pub fn import(
        &self,
        source: impl Read,
        changes: &[String],
        reference: Option<&Reference>,
    ) -> Result<Digest> {
        let target = import_rootfs(&self.store, source, changes, reference)?;
        self.unpack(&target)?;
        Ok(self.store.image_id(&target))
    }

    /// Makes sure every layer of the image (host platform) is unpacked into a
    /// committed snapshot; returns the chain IDs, bottom first. Missing layers are
    /// extracted in parallel.
    pub fn unpack(&self, target: &Descriptor) -> Result<Vec<Digest>> {
        let (_, manifest, config) = self.resolve_manifest(target)?;
        let diff_ids = &config.rootfs.diff_ids;
        let layers: Vec<&Descriptor> = manifest.layers.iter().collect();
        if layers.len() != diff_ids.len() {
            return Err(Error::InvalidContent(format!(
                "image {}: manifest has {} layers but the config lists {} diff IDs",
                target.digest,
                layers.len(),
                diff_ids.len()
            )));
        }
        let chain = chain_ids(diff_ids);
        let missing: Vec<usize> = (0..chain.len())
            .filter(|&i| !self.snapshots.exists(&chain[i].to_string()))
            .collect();
        if missing.is_empty() {
            return Ok(chain);
        }

        let seq = EXTRACT_SEQ.fetch_add(1, Ordering::Relaxed);
        let key = |i: usize| format!("extract-{}-{seq}-{i}", std::process::id());
        let extracted = self.extract_parallel(&missing, &key, |i, dir| {
            let layer = layers[i];
            let blob = self.content().open_verified(&layer.content())?;
            let applied = apply_layer(
                BufReader::with_capacity(256 * 1024, blob),
                dir,
                Some(&layer.digest),
            )?;
            if applied.diff_id != diff_ids[i] {
                return Err(Error::Mismatch {
                    what: format!("layer {} diff ID", layer.digest),
                    expected: diff_ids[i].to_string(),
                    actual: applied.diff_id.to_string(),
                });
            }
            Ok(())
        });
        let mut result = extracted.map(|_| ());
        if result.is_ok() {
            // Chain bottom-up; a layer another process committed meanwhile is reused.
            for (i, name) in chain.iter().enumerate() {
                if !missing.contains(&i) {
                    continue;
                }
                let parent = i.checked_sub(1).map(|p| chain[p].to_string());
                if let Err(e) =
                    self.snapshots
                        .commit_onto(&name.to_string(), &key(i), parent.as_deref())
                {
                    result = Err(e);
                    break;
                }
            }
        }
        // Whatever is still an extraction snapshot failed or lost a race.
        for &i in &missing {
            if self.snapshots.exists(&key(i)) {
                let _ = self.snapshots.remove(&key(i));
            }
        }
        result.map(|()| chain)
    }

    /// Runs `extract(i, dir)` for every index in `work`, each into a new parentless
    /// active snapshot `key(i)`, on up to `available_parallelism` threads. The first
    /// error stops the remaining work and is returned.
    fn extract_parallel(
        &self,
        work: &[usize],
        key: &(dyn Fn(usize) -> String + Sync),
        extract: impl Fn(usize, &Path) -> Result<()> + Sync,
    ) -> Result<()> {
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(work.len())
            .max(1);
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        let run = || loop {
            if failure.lock().map_or(true, |f| f.is_some()) {
                return;
            }
            let n = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = work.get(n) else { return };
            let outcome = self
                .snapshots
                .prepare(&key(i), None)
                .and_then(|dir| extract(i, &dir));
            if let Err(e) = outcome {
                if let Ok(mut f) = failure.lock() {
                    f.get_or_insert(e);
                }
                return;
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(run);
            }
            run();
        });
        match failure.into_inner() {
            Ok(Some(e)) => Err(e),
            Ok(None) => Ok(()),
            Err(_) => Err(Error::io(
                "unpacking layers",
                std::io::Error::other("an extraction thread panicked"),
            )),
        }
    }

    // -----------------------------------------------------------------------------
    // Getting images out.

    /// `docker save`: names or IDs to a docker-archive tar (which also carries an OCI
    /// layout). A name is recorded in the archive; an ID is saved without names.
    pub fn save(&self, names: &[String], out: impl Write) -> Result<()> {
        let targets = self.save_targets(names)?;
        save_targets(&self.store, &targets, out)
    }

    /// Writes the named images as an OCI image layout directory.
    pub fn save_oci_layout(&self, names: &[String], dir: &Path) -> Result<()> {
        let mut refs = Vec::new();
        for (name, _) in self.save_targets(names)? {
            refs.push(name.ok_or_else(|| {
                Error::InvalidArgument("an OCI layout export needs image names, not IDs".into())
            })?);
        }
        export_oci_layout(&self.store, &refs, dir).map(|_| ())
    }

    fn save_targets(&self, names: &[String]) -> Result<Vec<(Option<Reference>, Descriptor)>> {
        if names.is_empty() {
            return Err(Error::InvalidArgument("no images specified".to_string()));
        }
        let mut out = Vec::with_capacity(names.len());
        for input in names {
            let resolved = self.store.resolve(input)?;
            let by_name = Reference::parse_with_default_tag(input)
                .ok()
                .filter(|r| resolved.names.contains(r));
            out.push((by_name, resolved.target));
        }
        Ok(out)
    }

    // -----------------------------------------------------------------------------
    // Looking at images.

    /// The image behind a name or ID, down to the host platform's config.
    pub fn details(&self, name_or_id: &str) -> Result<ImageDetails> {
        let resolved = self.store.resolve(name_or_id)?;
        let stored = self
            .store
            .images()?
            .into_iter()
            .find(|i| i.target.digest == resolved.target.digest);
        let (created, updated) = stored.map_or((0, 0), |s| (s.created, s.updated));
        self.details_of(&resolved.target, resolved.names, created, updated)
    }

    fn details_of(
        &self,
        target: &Descriptor,
        names: Vec<Reference>,
        created: u64,
        updated: u64,
    ) -> Result<ImageDetails> {
        let (config_digest, manifest, config) = self.resolve_manifest(target)?;
        let chain = chain_ids(&config.rootfs.diff_ids);
        Ok(ImageDetails {
            id: config_digest,
            target: target.clone(),
            names,
            manifest,
            config,
            chain,
            created,
            updated,
        })
    }

    /// The host platform's manifest of `target` and its parsed config (with the
    /// config's digest, the image ID).
    fn resolve_manifest(&self, target: &Descriptor) -> Result<(Digest, Manifest, ImageConfig)> {
        let mut desc = target.clone();
        for _ in 0..8 {
            match self.store.read_manifest(&desc)? {
                ManifestKind::Manifest(m) => {
                    let bytes = self.content().read(&m.config.digest)?;
                    let config = ImageConfig::parse(&bytes)?;
                    return Ok((m.config.digest.clone(), m, config));
                }
                ManifestKind::Index(index) => {
                    let host = Platform::host();
                    let child = select_platform(&index, &host).ok_or_else(|| {
                        Error::NotFound(format!(
                            "image {} has no manifest for platform {}",
                            target.digest,
                            host.to_short_string()
                        ))
                    })?;
                    desc = child.plain();
                }
            }
        }
        Err(Error::InvalidContent(format!(
            "image {}: indexes nested too deeply",
            target.digest
        )))
    }

    fn all_details(&self) -> Result<Vec<ImageDetails>> {
        let mut out = Vec::new();
        for StoredImage {
            target,
            names,
            created,
            updated,
        } in self.store.images()?
        {
            match self.details_of(&target, names, created, updated) {
                Ok(d) => out.push(d),
                // Another platform's image only: nothing to show for this host.
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Sum of the unpacked sizes of a chain's snapshots (those present).
    fn chain_size(&self, chain: &[Digest], sizes: &HashMap<String, u64>) -> u64 {
        chain.iter().filter_map(|c| sizes.get(&c.to_string())).sum()
    }

    fn snapshot_sizes(&self) -> Result<HashMap<String, u64>> {
        let mut out = HashMap::new();
        for info in self.snapshots.list()? {
            if info.kind == Kind::Committed {
                let size = match info.size {
                    Some(s) => s,
                    None => self.snapshots.usage(&info.name)?,
                };
                out.insert(info.name, size);
            }
        }
        Ok(out)
    }

    /// `docker images` (`GET /images/json`). `users` fills in `Containers` and
    /// `SharedSize` when given (`system df`); otherwise both are -1, as Docker does.
    pub fn list(
        &self,
        filters: &ListFilters,
        users: Option<&[ImageUser]>,
    ) -> Result<Vec<ImageSummary>> {
        let all = self.all_details()?;
        let sizes = self.snapshot_sizes()?;
        let created_of = |d: &ImageDetails| config_created(&d.config);
        let reference_time = |input: &str| -> Result<i64> {
            let d = self.details(input)?;
            Ok(created_of(&d))
        };
        let before = filters.before.as_deref().map(reference_time).transpose()?;
        let since = filters.since.as_deref().map(reference_time).transpose()?;
        let mut layer_users: HashMap<&Digest, usize> = HashMap::new();
        for d in &all {
            for c in &d.chain {
                *layer_users.entry(c).or_default() += 1;
            }
        }

        let mut out = Vec::new();
        for d in &all {
            let dangling = d.names.iter().all(|n| n.tag().is_none());
            if filters.dangling.is_some_and(|want| want != dangling) {
                continue;
            }
            // As in Docker, a reference filter also narrows the names shown.
            let names: Vec<Reference> = if filters.reference.is_empty() {
                d.names.clone()
            } else {
                let matching: Vec<Reference> = d
                    .names
                    .iter()
                    .filter(|n| filters.reference.iter().any(|p| reference_matches(p, n)))
                    .cloned()
                    .collect();
                if matching.is_empty() {
                    continue;
                }
                matching
            };
            let labels = d
                .config
                .config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            if !filters.label.iter().all(|f| label_matches(f, &labels)) {
                continue;
            }
            let created = created_of(d);
            if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
                continue;
            }
            let size = self.chain_size(&d.chain, &sizes);
            let (containers, shared) = match users {
                Some(users) => {
                    let shared: u64 = d
                        .chain
                        .iter()
                        .filter(|c| layer_users.get(c).is_some_and(|&n| n > 1))
                        .filter_map(|c| sizes.get(&c.to_string()))
                        .sum();
                    let count = users.iter().filter(|u| u.image == d.id).count();
                    (count as i64, shared as i64)
                }
                None => (-1, -1),
            };
            let (repo_tags, repo_digests) = repo_names(&names);
            out.push(ImageSummary {
                id: d.id.to_string(),
                parent_id: String::new(),
                repo_tags,
                repo_digests,
                created,
                size: size as i64,
                shared_size: shared,
                labels,
                containers,
            });
        }
        // Newest first, as Docker lists them.
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// `docker image inspect` (`GET /images/{name}/json`).
    pub fn inspect(&self, name_or_id: &str) -> Result<ImageInspect> {
        let d = self.details(name_or_id)?;
        let sizes = self.snapshot_sizes()?;
        let size = self.chain_size(&d.chain, &sizes);
        let mut dirs: Vec<String> = Vec::new();
        for c in d.chain.iter().rev() {
            if let Ok(p) = self.snapshots.fs_path(&c.to_string()) {
                dirs.push(p.display().to_string());
            }
        }
        let mut data = BTreeMap::new();
        if let Some((upper, lower)) = dirs.split_first() {
            data.insert("UpperDir".to_string(), upper.clone());
            if !lower.is_empty() {
                data.insert("LowerDir".to_string(), lower.join(":"));
            }
        }
        let (repo_tags, repo_digests) = repo_names(&d.names);
        let c = &d.config;
        let last_tag = if d.updated == 0 {
            "0001-01-01T00:00:00Z".to_string()
        } else {
            format_rfc3339(d.updated as i64, 0)
        };
        Ok(ImageInspect {
            id: d.id.to_string(),
            descriptor: api::OciDescriptor {
                media_type: d.target.media_type.clone(),
                digest: d.target.digest.to_string(),
                size: d.target.size,
            },
            repo_tags,
            repo_digests,
            parent: String::new(),
            comment: c
                .history
                .last()
                .and_then(|h| h.comment.clone())
                .unwrap_or_default(),
            created: c.created.clone(),
            author: c.author.clone().unwrap_or_default(),
            config: api::ImageConfigView::from_config(c.config.as_ref()),
            architecture: c.architecture.clone(),
            variant: c.variant.clone(),
            os: c.os.clone(),
            os_version: c.os_version.clone(),
            size: size as i64,
            graph_driver: api::DriverData {
                name: "overlay2".to_string(),
                data,
            },
            root_fs: api::RootFsView {
                kind: c.rootfs.kind.clone(),
                layers: c.rootfs.diff_ids.iter().map(ToString::to_string).collect(),
            },
            metadata: api::ImageMetadata {
                last_tag_time: last_tag,
            },
        })
    }

    /// `docker history` (`GET /images/{name}/history`): newest step first; empty
    /// steps have size 0; only the top step carries the image ID and tags, the others
    /// are `<missing>` (Pier keeps no intermediate images), as for pulled images in
    /// Docker.
    pub fn history(&self, name_or_id: &str) -> Result<Vec<HistoryItem>> {
        let d = self.details(name_or_id)?;
        let sizes = self.snapshot_sizes()?;
        let mut layer = 0usize;
        let mut items = Vec::new();
        let history = if d.config.history.is_empty() {
            // No history recorded: one step per layer.
            d.chain
                .iter()
                .map(|_| crate::image::History::default())
                .collect()
        } else {
            d.config.history.clone()
        };
        for h in &history {
            let empty = h.empty_layer.unwrap_or(false);
            let size = if empty {
                0
            } else {
                let s = d
                    .chain
                    .get(layer)
                    .and_then(|c| sizes.get(&c.to_string()))
                    .copied()
                    .unwrap_or(0);
                layer += 1;
                s
            };
            items.push(HistoryItem {
                id: "<missing>".to_string(),
                created: h
                    .created
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .map_or(0, |(s, _)| s),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: None,
                size: size as i64,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
        items.reverse();
        if let Some(top) = items.first_mut() {
            top.id = d.id.to_string();
            let (tags, _) = repo_names(&d.names);
            top.tags = (!tags.is_empty()).then_some(tags);
        }
        Ok(items)
    }

    // -----------------------------------------------------------------------------
    // Names and removal.

    /// `docker tag SOURCE TARGET`: `source` is a name or ID, `target` a name (a tag,
    /// not a digest).
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let resolved = self.store.resolve(source)?;
        let reference = Reference::parse_with_default_tag(target)?;
        if reference.digest().is_some() {
            return Err(Error::InvalidArgument(format!(
                "refusing to create a tag with a digest reference: {target}"
            )));
        }
        self.store.tag(&reference, &resolved.target).map(|_| ())
    }

    /// `docker rmi` (`DELETE /images/{name}`), with Docker's rules:
    /// - by name, when the image has other names: only that name is removed;
    /// - by name, last name, or by ID: the image is deleted, refused (409) while a
    ///   container uses it unless `force`, and always while a running container uses
    ///   it (then `force` by name only untags);
    /// - by ID with names in several repositories: refused unless `force`.
    ///
    /// Unless `no_prune`, layers and blobs nothing else holds are removed too.
    pub fn remove(
        &self,
        name_or_id: &str,
        force: bool,
        no_prune: bool,
        users: &[ImageUser],
    ) -> Result<Vec<DeleteItem>> {
        let _guard = self.gc_lock.lock();
        let resolved = self.store.resolve(name_or_id)?;
        let id = resolved.id.clone();
        let short = short_id(&id);
        let by_name = Reference::parse_with_default_tag(name_or_id)
            .ok()
            .filter(|r| resolved.names.contains(r));
        let holders: Vec<&ImageUser> = users.iter().filter(|u| u.image == id).collect();
        let running = holders.iter().find(|u| u.running);
        let mut items = Vec::new();

        if let Some(name) = by_name {
            // As dockerd: removing a repository's last tag also removes that
            // repository's digest references (`RepoDigests`) of the image.
            let same_repo_digests: Vec<&Reference> = if name.digest().is_none()
                && !resolved.names.iter().any(|n| {
                    n != &name && n.digest().is_none() && n.repository() == name.repository()
                }) {
                resolved
                    .names
                    .iter()
                    .filter(|n| n.digest().is_some() && n.repository() == name.repository())
                    .collect()
            } else {
                Vec::new()
            };
            let remaining = resolved.names.len() - 1 - same_repo_digests.len();
            if remaining > 0 {
                self.store.untag(&name)?;
                items.push(DeleteItem::untagged(name.familiar()));
                for digest_ref in same_repo_digests {
                    self.store.untag(digest_ref)?;
                    items.push(DeleteItem::untagged(digest_ref.familiar()));
                }
                return Ok(items);
            }
            if let Some(holder) = holders.first() {
                if !force {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name_or_id}\" (must force) - container {} is using its referenced image {short}",
                        short_container(&holder.container)
                    )));
                }
                if running.is_some() {
                    // Forced: the name goes, the image stays for its running container.
                    self.store.remove_target(&resolved.target.digest)?;
                    self.store
                        .add_dangling(std::slice::from_ref(&resolved.target))?;
                    items.push(DeleteItem::untagged(name.familiar()));
                    return Ok(items);
                }
            }
        } else {
            let repos: HashSet<String> = resolved.names.iter().map(Reference::repository).collect();
            if repos.len() > 1 && !force {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                )));
            }
            if let Some(holder) = running {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {short} (cannot be forced) - image is being used by running container {}",
                    short_container(&holder.container)
                )));
            }
            if let Some(holder) = holders.first() {
                if !force {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {short} (must be forced) - image is being used by stopped container {}",
                        short_container(&holder.container)
                    )));
                }
            }
        }

        let removed = self.store.remove_target(&resolved.target.digest)?;
        items.extend(removed.iter().map(|n| DeleteItem::untagged(n.familiar())));
        items.push(DeleteItem::deleted(id.to_string()));
        if !no_prune {
            let (layers, _) = self.collect(users)?;
            items.extend(layers.into_iter().map(DeleteItem::deleted));
        }
        Ok(items)
    }

    /// `docker image prune` (`POST /images/prune`): dangling images, or with `all`
    /// every image no container uses. Filters `label`/`until` are the caller's to
    /// apply through `keep`: images for which it returns true stay.
    pub fn prune(
        &self,
        all: bool,
        users: &[ImageUser],
        keep: &dyn Fn(&ImageDetails) -> bool,
    ) -> Result<PruneReport> {
        let _guard = self.gc_lock.lock();
        let used: HashSet<&Digest> = users.iter().map(|u| &u.image).collect();
        let mut report = PruneReport::default();
        for d in self.all_details()? {
            let dangling = d.names.iter().all(|n| n.tag().is_none());
            if (!all && !dangling) || used.contains(&d.id) || keep(&d) {
                continue;
            }
            let removed = self.store.remove_target(&d.target.digest)?;
            report
                .images_deleted
                .extend(removed.iter().map(|n| DeleteItem::untagged(n.familiar())));
            report
                .images_deleted
                .push(DeleteItem::deleted(d.id.to_string()));
        }
        let (layers, freed) = self.collect(users)?;
        report
            .images_deleted
            .extend(layers.into_iter().map(DeleteItem::deleted));
        report.space_reclaimed = freed;
        Ok(report)
    }

    /// [`collect`](Self::collect) under the GC lock: what `builder prune` runs after
    /// dropping the build cache's leases. The bytes freed.
    pub fn collect_garbage(&self, users: &[ImageUser]) -> Result<u64> {
        let _guard = self.gc_lock.lock();
        Ok(self.collect(users)?.1)
    }

    /// Removes committed snapshots no image needs (and nothing is built on) and blobs
    /// no image or lease holds. Returns the removed layers' chain IDs (top first) and
    /// the bytes freed.
    fn collect(&self, _users: &[ImageUser]) -> Result<(Vec<String>, u64)> {
        let mut live: HashSet<String> = HashSet::new();
        for d in self.all_details_lenient()? {
            live.extend(d.iter().map(ToString::to_string));
        }
        let mut freed = 0u64;
        let mut removed = Vec::new();
        // Children before parents: repeat until nothing more can go.
        loop {
            let infos = self.snapshots.list()?;
            let parents: HashSet<&str> = infos.iter().filter_map(|i| i.parent.as_deref()).collect();
            let doomed: Vec<_> = infos
                .iter()
                .filter(|i| i.kind == Kind::Committed)
                .filter(|i| !live.contains(&i.name) && !parents.contains(i.name.as_str()))
                .collect();
            if doomed.is_empty() {
                break;
            }
            for info in doomed {
                self.snapshots.remove(&info.name)?;
                freed += info.size.unwrap_or(0);
                removed.push(info.name.clone());
            }
        }
        let roots = self.store.roots()?;
        let report = self.content().gc(&roots)?;
        freed += report.bytes_freed;
        Ok((removed, freed))
    }

    /// The chains of every image; an image whose config cannot be read keeps nothing
    /// alive beyond what its blobs say (GC must not fail on a foreign-platform image).
    fn all_details_lenient(&self) -> Result<Vec<Vec<Digest>>> {
        let mut out = Vec::new();
        for stored in self.store.images()? {
            if let Ok((_, _, config)) = self.resolve_manifest(&stored.target) {
                out.push(chain_ids(&config.rootfs.diff_ids));
            }
        }
        Ok(out)
    }

    /// The unpacked size of all layers (`LayersSize` of `system df`).
    pub fn layers_size(&self) -> Result<u64> {
        Ok(self.snapshot_sizes()?.values().sum())
    }

    /// Where the service keeps its snapshots (for the engine's container snapshots).
    pub fn snapshot_root(&self) -> PathBuf {
        self.snapshots.root().to_path_buf()
    }
}

/// `image prune`'s filters (`until`, `label`, `label!`), as Docker takes them.
#[derive(Debug, Clone, Default)]
pub struct PruneFilters {
    /// Only images created before this Unix time are pruned.
    pub until: Option<i64>,
    /// `(label, wanted)`: `label=k[=v]` (wanted) and `label!=k[=v]` (unwanted).
    pub labels: Vec<(String, bool)>,
}

impl PruneFilters {
    /// Whether the filters keep the image (it is not pruned).
    pub fn keeps(&self, d: &ImageDetails) -> bool {
        if self.until.is_some_and(|u| config_created(&d.config) >= u) {
            return true;
        }
        let image_labels = d
            .config
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        self.labels
            .iter()
            .any(|(l, want)| label_matches(l, &image_labels) != *want)
    }
}

/// Docker's `until` filter value: a Unix timestamp (fractions allowed), an RFC 3339
/// time, or a Go duration (`24h`, `90m`, `1h30m`, `500ms`) before `now`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] `invalid filter 'until=<value>'`.
pub fn parse_until(value: &str, now: i64) -> Result<i64> {
    let bad = || Error::InvalidArgument(format!("invalid filter 'until={value}'"));
    if let Ok(secs) = value.parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(secs) = value.parse::<f64>() {
        return Ok(secs as i64);
    }
    if let Some((secs, _)) = parse_rfc3339(value) {
        return Ok(secs);
    }
    // A Go duration before `now`, unsigned here.
    let nanos = crate::time::parse_go_duration(value)
        .filter(|_| !value.starts_with(['-', '+']))
        .ok_or_else(bad)?;
    Ok(now - nanos / 1_000_000_000)
}

/// Seconds since the epoch of the config's `created`, 0 when absent or unparsable.
fn config_created(config: &ImageConfig) -> i64 {
    config
        .created
        .as_deref()
        .and_then(parse_rfc3339)
        .map_or(0, |(s, _)| s)
}

/// `RepoTags` and `RepoDigests` of a set of names, familiar forms, sorted.
fn repo_names(names: &[Reference]) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for n in names {
        if n.digest().is_some() {
            digests.push(n.familiar());
        } else {
            tags.push(n.familiar());
        }
    }
    tags.sort();
    digests.sort();
    (tags, digests)
}

/// The 12-hex short form Docker prints for image IDs.
pub fn short_id(id: &Digest) -> String {
    id.hex().chars().take(12).collect()
}

fn short_container(id: &str) -> String {
    id.chars().take(12).collect()
}

/// Docker's `reference` filter: the pattern is matched (path.Match-style glob) against
/// the familiar name, with and without its tag.
fn reference_matches(pattern: &str, name: &Reference) -> bool {
    let familiar = name.familiar();
    let repo = match name.tag() {
        Some(tag) => familiar
            .strip_suffix(&format!(":{tag}"))
            .unwrap_or(&familiar)
            .to_string(),
        None => familiar.clone(),
    };
    glob(pattern.as_bytes(), familiar.as_bytes()) || glob(pattern.as_bytes(), repo.as_bytes())
}

/// A `path.Match` subset: `*` (not crossing `/`), `?`, literal bytes.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len())
            .take_while(|&i| i == 0 || text[i - 1] != b'/')
            .any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => {
            matches!(text.split_first(), Some((c, t)) if *c != b'/' && glob(rest, t))
        }
        Some((p, rest)) => matches!(text.split_first(), Some((c, t)) if c == p && glob(rest, t)),
    }
}

/// `label=key` or `label=key=value`.
fn label_matches(filter: &str, labels: &BTreeMap<String, String>) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_like_path_match() {
        assert!(glob(b"busy*", b"busybox"));
        assert!(glob(b"*", b"busybox"));
        assert!(!glob(b"*", b"a/b"));
        assert!(glob(b"*/*", b"a/b"));
        assert!(glob(b"b?sybox", b"busybox"));
        assert!(!glob(b"busy", b"busybox"));
    }

    #[test]
    fn reference_filter_matches_with_and_without_tag() {
        let r = Reference::parse_with_default_tag("busybox:1.36").unwrap();
        assert!(reference_matches("busybox", &r));
        assert!(reference_matches("busybox:1.*", &r));
        assert!(!reference_matches("busybox:2*", &r));
        let r = Reference::parse_with_default_tag("localhost:5000/app/web").unwrap();
        assert!(reference_matches("localhost:5000/app/*", &r));
    }

    #[test]
    fn until_values() {
        assert_eq!(parse_until("100", 0).unwrap(), 100);
        assert_eq!(parse_until("1h30m", 10_000).unwrap(), 10_000 - 5400);
        assert_eq!(
            parse_until("2024-01-01T00:00:00Z", 0).unwrap(),
            1_704_067_200
        );
        assert_eq!(
            parse_until("soon", 0).unwrap_err().to_string(),
            "invalid filter 'until=soon'"
        );
        assert!(parse_until("10x", 0).is_err());
    }

    #[test]
    fn labels() {
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(label_matches("a", &l));
        assert!(label_matches("a=1", &l));
        assert!(!label_matches("a=2", &l));
        assert!(!label_matches("b", &l));
    }
}
