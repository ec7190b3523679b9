//! Loading a project as docker compose v2 does: find the files, read the environment
//! (`.env`, `--env-file`), then for each file in order: parse, interpolate, resolve
//! `extends` and `include`, merge into what the earlier files gave, and validate;
//! then name the project, normalize, apply profiles, check references and resolve
//! each service's environment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::canonical;
use crate::interpolate::{InterpolationError, Interpolator};
use crate::merge;
use crate::model::Project;
use crate::yaml::{Node, NodeValue};
use crate::{ComposeError, LoadOptions};

/// File names compose looks for, in order of preference.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];
/// Override files read after the first found file.
pub const OVERRIDE_FILES: &[&str] = &[
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// Warnings gathered while loading (unset variables, several candidate files).
#[derive(Debug, Default, Clone)]
pub struct Warnings(pub Vec<String>);

/// Loads the project `options` describe.
pub fn load(options: &LoadOptions) -> Result<Project, ComposeError> {
    load_with_warnings(options).map(|(p, _)| p)
}

/// The files and environment a load starts from.
struct Setup {
    files: Vec<PathBuf>,
    working_dir: PathBuf,
    environment: BTreeMap<String, String>,
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    PathBuf::from(canonical::clean(&cwd.join(p)))
}

/// Finds the compose files in `dir` or its parents (and the override next to them).
pub fn discover(dir: &Path) -> Result<(Vec<PathBuf>, Vec<String>), ComposeError> {
    let mut warnings = Vec::new();
    let mut current = Some(dir);
    while let Some(d) = current {
        let found: Vec<PathBuf> = DEFAULT_FILES
            .iter()
            .map(|n| d.join(n))
            .filter(|p| p.is_file())
            .collect();
        if let Some(first) = found.first() {
            if found.len() > 1 {
                warnings.push(format!(
                    "Found multiple config files with supported names: {}\nUsing {}",
                    found
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    first.display()
                ));
            }
            let mut files = vec![first.clone()];
            if let Some(o) = OVERRIDE_FILES
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.is_file())
            {
                files.push(o);
            }
            return Ok((files, warnings));
        }
        current = d.parent();
    }
    Err(ComposeError::NoConfigFile)
}

fn setup(options: &LoadOptions, warnings: &mut Warnings) -> Result<Setup, ComposeError> {
    let cwd = &options.cwd;
    let os_env = &options.environment;
    let project_dir_opt = options.project_directory.as_ref().map(|d| absolute(cwd, d));
    let mut files: Vec<PathBuf> = options.files.iter().map(|f| absolute(cwd, f)).collect();
    if files.is_empty() {
        if let Some(list) = os_env.get("COMPOSE_FILE").filter(|v| !v.is_empty()) {
            let sep = os_env
                .get("COMPOSE_PATH_SEPARATOR")
                .map(String::as_str)
                .unwrap_or(":");
            let base = project_dir_opt.as_deref().unwrap_or(cwd);
            files = list
                .split(sep)
                .filter(|f| !f.is_empty())
                .map(|f| absolute(base, Path::new(f)))
                .collect();
        }
    }
    if files.is_empty() {
        let (found, w) = discover(project_dir_opt.as_deref().unwrap_or(cwd))?;
        warnings.0.extend(w);
        files = found;
    }
    let working_dir = project_dir_opt.clone().unwrap_or_else(|| {
        files[0]
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cwd.clone())
    });
    // The environment: --env-file (or the project directory's .env), under the process env.
    let env_files: Vec<PathBuf> = if options.env_files.is_empty() {
        let dot = working_dir.join(".env");
        if dot.is_file() {
            vec![dot]
        } else {
            Vec::new()
        }
    } else {
        options.env_files.iter().map(|f| absolute(cwd, f)).collect()
    };
    let mut environment = BTreeMap::new();
    for f in &env_files {
        if !f.exists() {
            return Err(ComposeError::EnvFileNotFound { path: f.clone() });
        }
        let mut lookup = os_env.clone();
        lookup.extend(environment.clone());
        let pairs =
            crate::dotenv::read(f, &lookup).map_err(|message| ComposeError::Project { message })?;
        for (k, v) in pairs {
            if let Some(v) = v {
                environment.insert(k, v);
            }
        }
    }
    environment.extend(os_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(Setup {
        files,
        working_dir,
        environment,
    })
}

/// Finds, reads and merges the files, and names the project.
fn load_merged(options: &LoadOptions) -> Result<(Setup, Node, String, Warnings), ComposeError> {
    let mut warnings = Warnings::default();
    let setup = setup(options, &mut warnings)?;
    let mut state = FileLoader {
        environment: &setup.environment,
        interpolate: options.interpolate,
        unset: Vec::new(),
        include_stack: Vec::new(),
    };
    let mut dict = Node::map(Vec::new());
    for file in &setup.files {
        dict = state.load_file(file, &setup.working_dir, dict)?;
    }
    for name in &state.unset {
        warnings.0.push(format!(
            "The \"{name}\" variable is not set. Defaulting to a blank string."
        ));
    }
    if dict.as_map().is_none_or(Vec::is_empty) {
        return Err(ComposeError::Project {
            message: "empty compose file".into(),
        });
    }
    let file_name = dict
        .get("name")
        .and_then(Node::scalar_text)
        .filter(|n| !n.is_empty());
    let name = project_name(options, &setup, file_name)?;
    Ok((setup, dict, name, warnings))
}

/// Loads the project and returns the warnings compose would print.
pub fn load_with_warnings(options: &LoadOptions) -> Result<(Project, Warnings), ComposeError> {
    let (setup, dict, name, warnings) = load_merged(options)?;

    let mut json = dict.to_json();
    let home = setup.environment.get("HOME").cloned();
    let cx = canonical::Context {
        project_name: &name,
        working_dir: &setup.working_dir,
        environment: &setup.environment,
        home: home.as_deref(),
    };
    canonical::normalize(&mut json, &cx).map_err(|message| ComposeError::Project { message })?;
    if let Some(o) = json.as_object_mut() {
        o.insert("name".into(), serde_json::Value::String(name.clone()));
    }
    let mut project: Project = serde_json::from_value(json).map_err(|e| ComposeError::Project {
        message: e.to_string(),
    })?;
    for (n, s) in project.services.iter_mut() {
        s.name = n.clone();
    }
    project.working_dir = setup.working_dir.clone();
    project.compose_files = setup.files.clone();
    project.environment = setup.environment.clone();

    let profiles = if options.profiles.is_empty() {
        setup
            .environment
            .get("COMPOSE_PROFILES")
            .map(|p| {
                p.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        options.profiles.clone()
    };
    apply_profiles(&mut project, &profiles);
    check_consistency(&project)?;
    resolve_service_environment(&mut project)?;
    remove_unused_resources(&mut project);
    Ok((project, warnings))
}

/// The merged model before normalization into a typed [`Project`]: what
/// `config --no-interpolate` prints, since values may still hold `${VAR}`. Only the
/// project name, the implicit default network and resource names are added; short
/// syntaxes stay as written (compose converts some of them here; see the report in
/// the tests), and there are no profiles, reference checks or env_file merging.
pub fn load_model(options: &LoadOptions) -> Result<(serde_json::Value, Warnings), ComposeError> {
    let (_, dict, name, warnings) = load_merged(options)?;
    let mut json = dict.to_json();
    let Some(root) = json.as_object_mut() else {
        return Ok((json, warnings));
    };
    root.remove("version");
    root.insert("name".into(), serde_json::Value::String(name.clone()));
    let mut uses_default = false;
    if let Some(serde_json::Value::Object(services)) = root.get_mut("services") {
        for service in services
            .values_mut()
            .filter_map(serde_json::Value::as_object_mut)
        {
            if service.contains_key("network_mode") {
                continue;
            }
            let empty = match service.get("networks") {
                None => true,
                Some(serde_json::Value::Object(m)) => m.is_empty(),
                Some(serde_json::Value::Array(a)) => a.is_empty(),
                Some(_) => false,
            };
            if empty {
                service.insert("networks".into(), serde_json::json!({"default": null}));
            }
            uses_default |= match service.get("networks") {
                Some(serde_json::Value::Object(m)) => m.contains_key("default"),
                Some(serde_json::Value::Array(a)) => a.iter().any(|n| n == "default"),
                _ => false,
            };
        }
    }
    if uses_default {
        let networks = root
            .entry("networks")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(n) = networks.as_object_mut() {
            n.entry("default").or_insert(serde_json::Value::Null);
        }
    }
    for kind in ["networks", "volumes", "secrets", "configs"] {
        let Some(serde_json::Value::Object(resources)) = root.get_mut(kind) else {
            continue;
        };
        for (key, resource) in resources.iter_mut() {
            if resource.is_null() {
                *resource = serde_json::json!({});
            }
            let Some(r) = resource.as_object_mut() else {
                continue;
            };
            if r.get("name").is_none_or(serde_json::Value::is_null) {
                let external = r.get("external").and_then(serde_json::Value::as_bool) == Some(true);
                let resource_name = if external {
                    key.clone()
                } else {
                    format!("{name}_{key}")
                };
                r.insert("name".into(), serde_json::Value::String(resource_name));
            }
        }
    }
    Ok((json, warnings))
}

fn project_name(
    options: &LoadOptions,
    setup: &Setup,
    from_file: Option<String>,
) -> Result<String, ComposeError> {
    let explicit = options
        .project_name
        .clone()
        .or_else(|| {
            setup
                .environment
                .get("COMPOSE_PROJECT_NAME")
                .filter(|v| !v.is_empty())
                .cloned()
        })
        .or(from_file);
    if let Some(name) = explicit {
        if !is_valid_project_name(&name) {
            return Err(ComposeError::InvalidProjectName { name });
        }
        return Ok(name);
    }
    let base = setup
        .working_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    Ok(normalize_project_name(&base))
}

/// Lowercase letters, digits, `-` and `_`, starting with a letter or digit.
pub fn is_valid_project_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// A directory name made into a project name: lowercased, other characters dropped.
pub fn normalize_project_name(name: &str) -> String {
    let lowered: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .collect();
    lowered.trim_start_matches(['-', '_']).to_string()
}

struct FileLoader<'a> {
    environment: &'a BTreeMap<String, String>,
    interpolate: bool,
    unset: Vec<String>,
    include_stack: Vec<PathBuf>,
}

fn read_documents(file: &Path) -> Result<Vec<Node>, ComposeError> {
    let text = std::fs::read_to_string(file).map_err(|source| ComposeError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    crate::yaml::parse(&text).map_err(|e| ComposeError::Yaml {
        file: file.to_path_buf(),
        line: e.line,
        message: e.message,
    })
}

impl FileLoader<'_> {
    fn interpolate(
        &mut self,
        file: &Path,
        doc: &mut Node,
        env: &BTreeMap<String, String>,
    ) -> Result<(), ComposeError> {
        if !self.interpolate {
            return Ok(());
        }
        let mut interpolator = Interpolator::new(env);
        let result = interpolator.node(doc, "");
        for n in interpolator.unset {
            if !self.unset.contains(&n) {
                self.unset.push(n);
            }
        }
        result.map_err(|(key, e)| match e {
            InterpolationError::Required { variable, message } => ComposeError::RequiredVariable {
                file: file.to_path_buf(),
                key,
                variable,
                message,
            },
            InterpolationError::InvalidFormat { text } => ComposeError::InterpolationFormat {
                file: file.to_path_buf(),
                key,
                text,
            },
        })
    }

    /// Loads one file and merges it over `dict`.
    fn load_file(
        &mut self,
        file: &Path,
        working_dir: &Path,
        dict: Node,
    ) -> Result<Node, ComposeError> {
        let env = self.environment.clone();
        self.load_file_with_env(file, working_dir, dict, &env)
    }

    fn load_file_with_env(
        &mut self,
        file: &Path,
        working_dir: &Path,
        mut dict: Node,
        env: &BTreeMap<String, String>,
    ) -> Result<Node, ComposeError> {
        for mut doc in read_documents(file)? {
            if doc.as_map().is_none() {
                if doc.is_null() {
                    continue;
                }
                return Err(ComposeError::Invalid {
                    file: file.to_path_buf(),
                    line: Some(doc.line),
                    key: "(root)".into(),
                    message: "Top-level object must be a mapping".into(),
                });
            }
            self.interpolate(file, &mut doc, env)?;
            self.apply_extends(file, &mut doc, env, &mut Vec::new())?;
            if let Some(include) = doc.remove("include") {
                self.apply_include(file, working_dir, &mut doc, include, env)?;
            }
            merge::apply_reset_tags(&mut dict, &mut doc);
            let mut merged = merge::merge(dict, doc, &mut Vec::new())
                .map_err(|message| ComposeError::Project { message })?;
            merge::enforce_unicity(&mut merged, &mut Vec::new());
            crate::schema::validate(&merged).map_err(|v| ComposeError::Invalid {
                file: file.to_path_buf(),
                line: (v.line > 0).then_some(v.line),
                key: v.key,
                message: v.message,
            })?;
            dict = merged;
        }
        Ok(dict)
    }

    /// Resolves `extends` for every service of `doc` (a file's document).
    fn apply_extends(
        &mut self,
        file: &Path,
        doc: &mut Node,
        env: &BTreeMap<String, String>,
        chain: &mut Vec<(PathBuf, String)>,
    ) -> Result<(), ComposeError> {
        let Some(services) = doc.get("services").and_then(Node::as_map) else {
            return Ok(());
        };
        let names: Vec<String> = services.iter().map(|(k, _)| k.clone()).collect();
        for name in names {
            let resolved = self.extend_service(file, doc, &name, env, chain)?;
            if let Some(services) = doc.get_mut("services") {
                services.set(&name, resolved);
            }
        }
        Ok(())
    }

    fn extend_service(
        &mut self,
        file: &Path,
        doc: &Node,
        name: &str,
        env: &BTreeMap<String, String>,
        chain: &mut Vec<(PathBuf, String)>,
    ) -> Result<Node, ComposeError> {
        let extends_err = |message: String| ComposeError::Extends {
            file: file.to_path_buf(),
            service: name.to_string(),
            message,
        };
        let service = doc
            .get("services")
            .and_then(|s| s.get(name))
            .cloned()
            .unwrap_or(Node::new(NodeValue::Null));
        let Some(extends) = service.get("extends") else {
            return Ok(service);
        };
        let (base_name, base_file) = match &extends.value {
            NodeValue::Str(s) => (s.clone(), None),
            NodeValue::Map(_) => (
                extends
                    .get("service")
                    .and_then(Node::scalar_text)
                    .ok_or_else(|| extends_err("service is required".into()))?,
                extends.get("file").and_then(Node::scalar_text),
            ),
            _ => return Err(extends_err("must be a string or a mapping".into())),
        };
        let key = (file.to_path_buf(), name.to_string());
        if chain.contains(&key) {
            let mut names: Vec<String> = chain.iter().map(|(_, n)| n.clone()).collect();
            names.push(name.to_string());
            return Err(extends_err(format!(
                "circular reference: {}",
                names.join(" -> ")
            )));
        }
        chain.push(key);
        let base = match base_file {
            None => {
                if doc
                    .get("services")
                    .and_then(|s| s.get(&base_name))
                    .is_none()
                {
                    return Err(extends_err(format!(
                        "cannot extend service {name:?} in {}: service {base_name:?} not found",
                        file.display()
                    )));
                }
                self.extend_service(file, doc, &base_name, env, chain)?
            }
            Some(other) => {
                let dir = file.parent().unwrap_or(Path::new("/"));
                let other_path = absolute(dir, Path::new(&other));
                let mut other_doc = read_documents(&other_path)?
                    .into_iter()
                    .next()
                    .unwrap_or(Node::map(Vec::new()));
                self.interpolate(&other_path, &mut other_doc, env)?;
                if other_doc
                    .get("services")
                    .and_then(|s| s.get(&base_name))
                    .is_none()
                {
                    return Err(extends_err(format!(
                        "cannot extend service {name:?} in {}: service {base_name:?} not found",
                        other_path.display()
                    )));
                }
                let mut base =
                    self.extend_service(&other_path, &other_doc, &base_name, env, chain)?;
                // Relative paths of the base service are relative to its own file.
                if other_path.parent() != file.parent() {
                    resolve_service_paths(&mut base, other_path.parent().unwrap_or(Path::new("/")));
                }
                base
            }
        };
        chain.pop();
        let mut over = service.clone();
        over.remove("extends");
        let mut base = base;
        base.remove("extends");
        let mut path = vec!["services".to_string(), name.to_string()];
        let mut base_doc = base;
        merge::apply_reset_tags(&mut base_doc, &mut over);
        merge::merge(base_doc, over, &mut path).map_err(extends_err)
    }

    fn apply_include(
        &mut self,
        file: &Path,
        working_dir: &Path,
        doc: &mut Node,
        include: Node,
        env: &BTreeMap<String, String>,
    ) -> Result<(), ComposeError> {
        let include_err = |message: String| ComposeError::Include {
            file: file.to_path_buf(),
            message,
        };
        let NodeValue::Seq(entries) = include.value else {
            return Err(include_err("must be a list".into()));
        };
        self.include_stack.push(file.to_path_buf());
        for entry in entries {
            let (paths, project_dir, env_files) = match &entry.value {
                NodeValue::Str(p) => (vec![p.clone()], None, Vec::new()),
                NodeValue::Map(_) => {
                    let list = |n: Option<&Node>| -> Vec<String> {
                        match n.map(|n| &n.value) {
                            Some(NodeValue::Seq(items)) => {
                                items.iter().filter_map(Node::scalar_text).collect()
                            }
                            Some(_) => n.and_then(Node::scalar_text).into_iter().collect(),
                            None => Vec::new(),
                        }
                    };
                    (
                        list(entry.get("path")),
                        entry.get("project_directory").and_then(Node::scalar_text),
                        list(entry.get("env_file")),
                    )
                }
                _ => return Err(include_err("entries must be a string or a mapping".into())),
            };
            let paths: Vec<PathBuf> = paths
                .iter()
                .map(|p| absolute(working_dir, Path::new(p)))
                .collect();
            let Some(main) = paths.first() else {
                return Err(include_err("path is required".into()));
            };
            if self.include_stack.contains(main) {
                let mut cycle: Vec<String> = self
                    .include_stack
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                cycle.push(main.display().to_string());
                return Err(include_err(format!(
                    "include cycle detected:\n{}",
                    cycle.join("\n include ")
                )));
            }
            let included_dir = match &project_dir {
                Some(d) => absolute(working_dir, Path::new(d)),
                None => main.parent().map(Path::to_path_buf).unwrap_or_default(),
            };
            let env_files: Vec<PathBuf> = if env_files.is_empty() {
                let dot = included_dir.join(".env");
                if dot.is_file() {
                    vec![dot]
                } else {
                    Vec::new()
                }
            } else {
                env_files
                    .iter()
                    .map(|f| absolute(working_dir, Path::new(f)))
                    .collect()
            };
            let mut included_env = env.clone();
            for f in &env_files {
                let pairs = crate::dotenv::read(f, env).map_err(include_err)?;
                included_env.extend(pairs.into_iter().filter_map(|(k, v)| Some((k, v?))));
            }
            let mut imported = Node::map(Vec::new());
            for p in &paths {
                imported = self.load_file_with_env(p, &included_dir, imported, &included_env)?;
            }
            if let Some(services) = imported.get_mut("services").and_then(Node::as_map_mut) {
                for (_, s) in services.iter_mut() {
                    resolve_service_paths(s, &included_dir);
                }
            }
            for kind in ["secrets", "configs"] {
                if let Some(items) = imported.get_mut(kind).and_then(Node::as_map_mut) {
                    for (_, item) in items.iter_mut() {
                        resolve_key_path(item, "file", &included_dir);
                    }
                }
            }
            for kind in ["services", "volumes", "networks", "secrets", "configs"] {
                let Some(NodeValue::Map(entries)) = imported.remove(kind).map(|n| n.value) else {
                    continue;
                };
                if doc.get(kind).is_none() {
                    doc.set(kind, Node::map(Vec::new()));
                }
                let target = doc
                    .get_mut(kind)
                    .and_then(Node::as_map_mut)
                    .ok_or_else(|| include_err(format!("{kind} must be a mapping")))?;
                for (k, v) in entries {
                    match target.iter().find(|(e, _)| *e == k) {
                        Some((_, existing)) if existing.to_json() != v.to_json() => {
                            return Err(include_err(format!(
                                "imported compose file {} defines conflicting {} {k}",
                                main.display(),
                                kind.trim_end_matches('s')
                            )));
                        }
                        Some(_) => {}
                        None => target.push((k, v)),
                    }
                }
            }
        }
        self.include_stack.pop();
        Ok(())
    }
}

fn resolve_key_path(node: &mut Node, key: &str, dir: &Path) {
    if let Some(NodeValue::Str(p)) = node.get(key).map(|n| &n.value) {
        if !p.starts_with('/') && !p.starts_with('~') {
            let resolved = canonical::clean(&dir.join(p));
            node.set(key, Node::str(resolved));
        }
    }
}

/// Makes a service's relative paths absolute against `dir` (for services read from
/// another directory's file: `extends.file`, `include`).
fn resolve_service_paths(service: &mut Node, dir: &Path) {
    match service.get("build").map(|b| b.value.clone()) {
        Some(NodeValue::Str(context)) if !context.contains("://") => {
            service.set("build", Node::str(canonical::clean(&dir.join(context))));
        }
        Some(NodeValue::Map(_)) => {
            if let Some(build) = service.get_mut("build") {
                if build.get("context").is_none() {
                    build.set("context", Node::str("."));
                }
                if !build
                    .get("context")
                    .and_then(Node::as_str)
                    .unwrap_or_default()
                    .contains("://")
                {
                    resolve_key_path(build, "context", dir);
                }
            }
        }
        _ => {}
    }
    match service.get_mut("env_file").map(|n| &mut n.value) {
        Some(NodeValue::Str(p)) if !p.starts_with('/') => {
            *p = canonical::clean(&dir.join(&*p));
        }
        Some(NodeValue::Seq(items)) => {
            for item in items {
                if let NodeValue::Str(p) = &mut item.value {
                    if !p.starts_with('/') {
                        *p = canonical::clean(&dir.join(&*p));
                    }
                } else {
                    resolve_key_path(item, "path", dir);
                }
            }
        }
        _ => {}
    }
    if let Some(NodeValue::Seq(volumes)) = service.get_mut("volumes").map(|n| &mut n.value) {
        for v in volumes {
            let relative_bind = v.get("type").and_then(Node::as_str) == Some("bind")
                && v.get("source")
                    .and_then(Node::as_str)
                    .is_some_and(|s| s.starts_with('.'));
            match &mut v.value {
                NodeValue::Str(spec) if spec.starts_with('.') => {
                    let (source, rest) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
                    let resolved = canonical::clean(&dir.join(source));
                    *spec = if rest.is_empty() {
                        resolved
                    } else {
                        format!("{resolved}:{rest}")
                    };
                }
                NodeValue::Map(_) if relative_bind => resolve_key_path(v, "source", dir),
                _ => {}
            }
        }
    }
}

/// Moves services none of whose profiles is active to `disabled_services`.
fn apply_profiles(project: &mut Project, profiles: &[String]) {
    project.profiles = profiles.to_vec();
    let all = profiles.iter().any(|p| p == "*");
    let names: Vec<String> = project.services.keys().cloned().collect();
    for name in names {
        let service = &project.services[&name];
        let enabled = service.profiles.is_empty()
            || all
            || service.profiles.iter().any(|p| profiles.contains(p));
        if !enabled {
            if let Some(s) = project.services.remove(&name) {
                project.disabled_services.insert(name, s);
            }
        }
    }
}

/// Every reference names something that exists, and `depends_on` has no cycle.
fn check_consistency(project: &Project) -> Result<(), ComposeError> {
    for (name, service) in &project.services {
        let replicas = service.deploy.as_ref().and_then(|d| d.replicas);
        if !service.container_name.is_empty() {
            for (key, count) in [("scale", service.scale), ("deploy.replicas", replicas)] {
                if count.is_some_and(|c| c > 1) {
                    return Err(ComposeError::Project {
                        message: format!(
                            "services.{key}: can't set container_name and {name} as container name must be unique: invalid compose project"
                        ),
                    });
                }
            }
        }
        for dep in service.depends_on.keys() {
            if !project.services.contains_key(dep) && service.depends_on[dep].required {
                return Err(ComposeError::UndefinedDependency {
                    service: name.clone(),
                    dependency: dep.clone(),
                });
            }
        }
        for net in service.networks.keys() {
            if !project.networks.contains_key(net) {
                return Err(ComposeError::UndefinedResource {
                    service: name.clone(),
                    kind: "network",
                    name: net.clone(),
                });
            }
        }
        for v in &service.volumes {
            if v.kind == "volume"
                && !v.source.is_empty()
                && !project.volumes.contains_key(&v.source)
            {
                return Err(ComposeError::UndefinedResource {
                    service: name.clone(),
                    kind: "volume",
                    name: v.source.clone(),
                });
            }
        }
        for s in &service.secrets {
            if !project.secrets.contains_key(&s.source) {
                return Err(ComposeError::UndefinedResource {
                    service: name.clone(),
                    kind: "secret",
                    name: s.source.clone(),
                });
            }
        }
        for c in &service.configs {
            if !project.configs.contains_key(&c.source) {
                return Err(ComposeError::UndefinedResource {
                    service: name.clone(),
                    kind: "config",
                    name: c.source.clone(),
                });
            }
        }
    }
    // Cycles: depth-first search over depends_on.
    fn visit<'a>(
        project: &'a Project,
        name: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Result<(), ComposeError> {
        if let Some(pos) = path.iter().position(|n| *n == name) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.to_string());
            return Err(ComposeError::DependencyCycle { cycle });
        }
        if done.contains(name) {
            return Ok(());
        }
        path.push(name);
        if let Some(service) = project.services.get(name) {
            for dep in service.depends_on.keys() {
                visit(project, dep, path, done)?;
            }
        }
        path.pop();
        done.insert(name);
        Ok(())
    }
    let mut done = BTreeSet::new();
    for name in project.services.keys() {
        visit(project, name, &mut Vec::new(), &mut done)?;
    }
    Ok(())
}

/// Merges each service's `env_file`s under its `environment`, as compose does before
/// printing or running; `env_file` is emptied.
fn resolve_service_environment(project: &mut Project) -> Result<(), ComposeError> {
    for service in project.services.values_mut() {
        if service.env_file.is_empty() {
            continue;
        }
        let mut env: BTreeMap<String, Option<String>> = BTreeMap::new();
        for f in std::mem::take(&mut service.env_file) {
            let path = PathBuf::from(&f.path);
            if !path.exists() {
                if f.required {
                    return Err(ComposeError::EnvFileNotFound { path });
                }
                continue;
            }
            let mut lookup = project.environment.clone();
            lookup.extend(
                env.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.clone()?))),
            );
            let pairs = crate::dotenv::read(&path, &lookup)
                .map_err(|message| ComposeError::Project { message })?;
            for (k, v) in pairs {
                if v.is_some() || !env.contains_key(&k) {
                    env.insert(k, v);
                }
            }
        }
        for (k, v) in std::mem::take(&mut service.environment) {
            env.insert(k, v);
        }
        service.environment = env;
    }
    Ok(())
}

/// Drops networks, volumes, secrets and configs no enabled service uses, as
/// `docker compose config` does.
fn remove_unused_resources(project: &mut Project) {
    let mut networks = BTreeSet::new();
    let mut volumes = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let mut configs = BTreeSet::new();
    for s in project.services.values() {
        networks.extend(s.networks.keys().cloned());
        volumes.extend(
            s.volumes
                .iter()
                .filter(|v| v.kind == "volume")
                .map(|v| v.source.clone()),
        );
        secrets.extend(s.secrets.iter().map(|m| m.source.clone()));
        if let Some(b) = &s.build {
            secrets.extend(b.secrets.iter().map(|m| m.source.clone()));
        }
        configs.extend(s.configs.iter().map(|m| m.source.clone()));
    }
    project.networks.retain(|k, _| networks.contains(k));
    project.volumes.retain(|k, _| volumes.contains(k));
    project.secrets.retain(|k, _| secrets.contains(k));
    project.configs.retain(|k, _| configs.contains(k));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        assert_eq!(normalize_project_name("My App.v2"), "myappv2");
        assert_eq!(normalize_project_name("_x"), "x");
        assert!(is_valid_project_name("a-b_1"));
        assert!(!is_valid_project_name("Ab"));
        assert!(!is_valid_project_name("-a"));
    }
}
