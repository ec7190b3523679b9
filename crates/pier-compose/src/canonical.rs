//! From the merged compose document to compose's normalized form: short syntaxes
//! expanded (ports, volumes, devices, secrets, configs, depends_on, environment,
//! labels, extra_hosts, commands), defaults set (build context and Dockerfile,
//! port mode and protocol, default network, resource names), relative paths resolved
//! against the project directory, and scalars cast to the types the model wants.
//! The result is JSON shaped like [`crate::model::Project`].

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

/// What normalization needs from the loader.
pub struct Context<'a> {
    pub project_name: &'a str,
    pub working_dir: &'a Path,
    /// Variables `environment`/`build.args` entries without a value read.
    pub environment: &'a BTreeMap<String, String>,
    /// The home directory `~` expands to.
    pub home: Option<&'a str>,
}

/// A service volume parsed from the short syntax.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShortVolume {
    pub source: String,
    pub target: String,
    pub options: Vec<String>,
}

/// Parses `[SOURCE:]TARGET[:OPTIONS]`.
pub fn parse_volume(spec: &str) -> Result<ShortVolume, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let volume = match parts.as_slice() {
        [target] => ShortVolume {
            target: target.to_string(),
            ..Default::default()
        },
        [source, target] => ShortVolume {
            source: source.to_string(),
            target: target.to_string(),
            options: vec![],
        },
        [source, target, options] => ShortVolume {
            source: source.to_string(),
            target: target.to_string(),
            options: options.split(',').map(str::to_string).collect(),
        },
        _ => return Err(format!("invalid spec: {spec}: too many colons")),
    };
    if volume.target.is_empty() {
        return Err(format!(
            "invalid spec: {spec}: empty section between colons"
        ));
    }
    Ok(volume)
}

/// A device mapping `SOURCE[:TARGET[:PERMISSIONS]]`.
pub fn parse_device(spec: &str) -> crate::model::Device {
    let parts: Vec<&str> = spec.split(':').collect();
    let source = parts[0].to_string();
    let (target, permissions) = match parts.as_slice() {
        [_] => (source.clone(), "rwm".to_string()),
        [_, t] if matches!(*t, "r" | "w" | "m" | "rw" | "rm" | "wm" | "rwm") => {
            (source.clone(), t.to_string())
        }
        [_, t] => (t.to_string(), "rwm".to_string()),
        [_, t, p, ..] => (t.to_string(), p.to_string()),
        [] => (String::new(), String::new()),
    };
    crate::model::Device {
        source,
        target,
        permissions,
    }
}

/// The whole project.
pub fn normalize(doc: &mut Value, cx: &Context<'_>) -> Result<(), String> {
    let root = doc
        .as_object_mut()
        .ok_or("Top-level object must be a mapping")?;
    root.remove("version");
    root.remove("include");
    if let Some(Value::Object(services)) = root.get_mut("services") {
        for (name, service) in services.iter_mut() {
            if service.is_null() {
                *service = json!({});
            }
            normalize_service(service, cx).map_err(|e| format!("services.{name}.{e}"))?;
        }
    }
    // The implicit default network, when a service uses it.
    let uses_default = root
        .get("services")
        .and_then(Value::as_object)
        .is_some_and(|services| {
            services.values().any(|s| {
                s.get("networks")
                    .and_then(Value::as_object)
                    .is_some_and(|n| n.contains_key("default"))
            })
        });
    if uses_default {
        let networks = root.entry("networks").or_insert_with(|| json!({}));
        if let Some(n) = networks.as_object_mut() {
            n.entry("default").or_insert(Value::Null);
        }
    }
    for kind in ["networks", "volumes", "secrets", "configs"] {
        let Some(Value::Object(resources)) = root.get_mut(kind) else {
            continue;
        };
        for (key, resource) in resources.iter_mut() {
            if resource.is_null() {
                *resource = json!({});
            }
            let Some(r) = resource.as_object_mut() else {
                continue;
            };
            normalize_external(r);
            cast_bools(r, &["external", "internal", "attachable", "enable_ipv6"]);
            if r.get("name").is_none_or(Value::is_null) {
                let external = r.get("external").and_then(Value::as_bool).unwrap_or(false);
                let name = if external {
                    key.clone()
                } else {
                    format!("{}_{key}", cx.project_name)
                };
                r.insert("name".into(), Value::String(name));
            }
            for k in ["labels", "driver_opts"] {
                if let Some(v) = r.get_mut(k) {
                    *v = to_string_map(v, false);
                }
            }
            if let Some(file) = r.get("file").and_then(Value::as_str) {
                let resolved = resolve_path(file, cx);
                r.insert("file".into(), Value::String(resolved));
            }
            if let Some(Value::Object(ipam)) = r.get_mut("ipam") {
                if let Some(Value::Array(pools)) = ipam.get_mut("config") {
                    for pool in pools {
                        if let Some(aux) = pool.get_mut("aux_addresses") {
                            *aux = to_string_map(aux, false);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// `external: {name: x}` (the old form) as `external: true` and `name: x`.
fn normalize_external(r: &mut Map<String, Value>) {
    if let Some(Value::Object(ext)) = r.get("external").cloned() {
        if let Some(name) = ext.get("name") {
            r.insert("name".into(), name.clone());
        }
        r.insert("external".into(), Value::Bool(true));
    }
}

fn cast_bools(r: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if let Some(Value::String(s)) = r.get(*k) {
            if let Some(b) = parse_go_bool(s) {
                r.insert(k.to_string(), Value::Bool(b));
            }
        }
    }
}

fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" | "y" | "Y" | "yes" | "YES" | "Yes" | "on"
        | "ON" | "On" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "n" | "N" | "no" | "NO" | "No" | "off"
        | "OFF" | "Off" => Some(false),
        _ => None,
    }
}

fn cast_numbers(r: &mut Map<String, Value>, keys: &[&str], float: bool) -> Result<(), String> {
    for k in keys {
        if let Some(Value::String(s)) = r.get(*k) {
            let v = if float {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            } else {
                s.trim().parse::<i64>().ok().map(Value::from)
            };
            let v = v.ok_or_else(|| {
                format!("{k}: failed to cast to expected type: invalid syntax {s:?}")
            })?;
            r.insert(k.to_string(), v);
        }
    }
    Ok(())
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => crate::yaml::format_float(f),
            _ => n.to_string(),
        }),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A list of `K=V` (or a map) as a map of strings; `keep_null` keeps `K` without a value
/// as null (environment) instead of an empty string (labels).
fn to_string_map(v: &Value, keep_null: bool) -> Value {
    let mut out = Map::new();
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let s = scalar_string(v);
                out.insert(
                    k.clone(),
                    match s {
                        Some(s) => Value::String(s),
                        None if keep_null => Value::Null,
                        None => Value::String(String::new()),
                    },
                );
            }
        }
        Value::Array(items) => {
            for item in items {
                let Some(s) = scalar_string(item) else {
                    continue;
                };
                match s.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Value::String(v.to_string())),
                    None if keep_null => out.insert(s, Value::Null),
                    None => out.insert(s, Value::String(String::new())),
                };
            }
        }
        _ => {}
    }
    Value::Object(out)
}

fn string_list(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter_map(scalar_string)
                .map(Value::String)
                .collect(),
        ),
        Value::Null => Value::Array(vec![]),
        other => Value::Array(
            scalar_string(other)
                .into_iter()
                .map(Value::String)
                .collect(),
        ),
    }
}

/// Resolves a relative path against the project directory, `~` against home.
pub fn resolve_path(path: &str, cx: &Context<'_>) -> String {
    if let Some(rest) = path.strip_prefix('~') {
        if rest.is_empty() || rest.starts_with('/') {
            if let Some(home) = cx.home {
                return format!("{home}{rest}");
            }
        }
    }
    if path.starts_with('/') {
        return clean(Path::new(path));
    }
    clean(&cx.working_dir.join(path))
}

/// Lexical path cleaning, as Go's `filepath.Clean`.
pub fn clean(path: &Path) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let text = path.to_string_lossy();
    let absolute = text.starts_with('/');
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn is_remote_context(context: &str) -> bool {
    context.contains("://") || context.starts_with("git@") || context.starts_with("github.com/")
}

fn shell_split(text: &str) -> Result<Vec<String>, String> {
    shlex::split(text).ok_or_else(|| format!("invalid command line {text:?}"))
}

fn command(v: &Value) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::Array(shell_split(s)?.into_iter().map(Value::String).collect()),
        Value::Array(_) => string_list(v),
        _ => Value::Null,
    })
}

fn normalize_service(service: &mut Value, cx: &Context<'_>) -> Result<(), String> {
    let s = service.as_object_mut().ok_or("must be a mapping")?;
    cast_bools(
        s,
        &[
            "attach",
            "init",
            "oom_kill_disable",
            "privileged",
            "read_only",
            "stdin_open",
            "tty",
        ],
    );
    cast_numbers(
        s,
        &[
            "cpu_count",
            "cpu_period",
            "cpu_quota",
            "cpu_rt_period",
            "cpu_rt_runtime",
            "cpu_shares",
            "oom_score_adj",
            "pids_limit",
            "scale",
        ],
        false,
    )?;
    cast_numbers(s, &["cpus", "cpu_percent"], true)?;
    for key in ["command", "entrypoint"] {
        if let Some(v) = s.get(key) {
            let c = command(v).map_err(|e| format!("{key}: {e}"))?;
            if c.is_null() {
                s.remove(key);
            } else {
                s.insert(key.into(), c);
            }
        }
    }
    if s.get("pull_policy").and_then(Value::as_str) == Some("if_not_present") {
        s.insert("pull_policy".into(), json!("missing"));
    }
    for key in [
        "dns",
        "dns_search",
        "tmpfs",
        "expose",
        "profiles",
        "cap_add",
        "cap_drop",
        "dns_opt",
        "external_links",
        "group_add",
        "security_opt",
        "device_cgroup_rules",
        "links",
        "volumes_from",
    ] {
        if let Some(v) = s.get(key) {
            let list = string_list(v);
            s.insert(key.into(), list);
        }
    }
    for key in ["labels", "annotations", "sysctls", "storage_opt"] {
        if let Some(v) = s.get(key) {
            let m = to_string_map(v, false);
            s.insert(key.into(), m);
        }
    }
    if let Some(v) = s.get("environment") {
        let mut env = to_string_map(v, true);
        resolve_missing(&mut env, cx, true);
        s.insert("environment".into(), env);
    }
    if let Some(v) = s.get("extra_hosts") {
        let hosts = extra_hosts(v);
        s.insert("extra_hosts".into(), hosts);
    }
    if let Some(build) = s.get_mut("build") {
        normalize_build(build, cx).map_err(|e| format!("build.{e}"))?;
    }
    if let Some(v) = s.get("depends_on") {
        let deps = depends_on(v)?;
        s.insert("depends_on".into(), deps);
    }
    // Implied dependencies: links, shared namespaces, volumes_from.
    let mut implied: Vec<(String, bool)> = Vec::new();
    if let Some(Value::Array(links)) = s.get("links") {
        for l in links.iter().filter_map(Value::as_str) {
            let name = l.split(':').next().unwrap_or(l);
            implied.push((name.to_string(), true));
        }
    }
    for ns in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
        if let Some(shared) = s
            .get(ns)
            .and_then(Value::as_str)
            .and_then(|v| v.strip_prefix("service:"))
        {
            implied.push((shared.to_string(), true));
        }
    }
    if let Some(Value::Array(from)) = s.get("volumes_from") {
        for v in from.iter().filter_map(Value::as_str) {
            if !v.starts_with("container:") {
                implied.push((v.split(':').next().unwrap_or(v).to_string(), false));
            }
        }
    }
    if !implied.is_empty() {
        let deps = s.entry("depends_on").or_insert_with(|| json!({}));
        if let Some(d) = deps.as_object_mut() {
            for (name, restart) in implied {
                d.entry(name).or_insert(
                    json!({"condition": "service_started", "restart": restart, "required": true}),
                );
            }
        }
    }
    if let Some(v) = s.get("env_file") {
        let files = env_files(v, cx);
        s.insert("env_file".into(), files);
    }
    // Networks: a list is a map of names; none means the default network.
    if !s.contains_key("network_mode") {
        let networks = match s.get("networks") {
            Some(Value::Array(names)) => Value::Object(
                names
                    .iter()
                    .filter_map(scalar_string)
                    .map(|n| (n, Value::Null))
                    .collect(),
            ),
            Some(Value::Object(m)) if !m.is_empty() => {
                let mut out = Map::new();
                for (k, v) in m {
                    let mut v = v.clone();
                    if let Some(o) = v.as_object_mut() {
                        cast_numbers(o, &["priority"], false)?;
                        if let Some(opts) = o.get("driver_opts") {
                            let m = to_string_map(opts, false);
                            o.insert("driver_opts".into(), m);
                        }
                    }
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            _ => json!({"default": null}),
        };
        s.insert("networks".into(), networks);
    } else if let Some(Value::Array(names)) = s.get("networks") {
        let m: Map<String, Value> = names
            .iter()
            .filter_map(scalar_string)
            .map(|n| (n, Value::Null))
            .collect();
        s.insert("networks".into(), Value::Object(m));
    }
    if let Some(Value::Array(ports)) = s.get("ports") {
        let mut out = Vec::new();
        for p in ports {
            out.extend(port(p)?);
        }
        s.insert("ports".into(), Value::Array(out));
    }
    if let Some(Value::Array(volumes)) = s.get("volumes") {
        let mut out = Vec::new();
        for v in volumes {
            out.push(service_volume(v, cx)?);
        }
        s.insert("volumes".into(), Value::Array(out));
    }
    if let Some(Value::Array(devices)) = s.get("devices") {
        let out: Vec<Value> = devices
            .iter()
            .map(|d| match d {
                Value::String(spec) => {
                    serde_json::to_value(parse_device(spec)).unwrap_or(Value::Null)
                }
                other => other.clone(),
            })
            .collect();
        s.insert("devices".into(), Value::Array(out));
    }
    for (key, default_dir) in [("secrets", Some("/run/secrets")), ("configs", None)] {
        if let Some(Value::Array(mounts)) = s.get(key) {
            let out = mounts
                .iter()
                .map(|m| file_mount(m, default_dir))
                .collect::<Result<Vec<_>, _>>()?;
            s.insert(key.into(), Value::Array(out));
        }
    }
    if let Some(Value::Object(ulimits)) = s.get_mut("ulimits") {
        for v in ulimits.values_mut() {
            ulimit(v)?;
        }
    }
    if let Some(Value::Object(h)) = s.get_mut("healthcheck") {
        cast_bools(h, &["disable"]);
        cast_numbers(h, &["retries"], false)?;
        match h.get("test") {
            Some(Value::String(t)) => {
                let t = t.clone();
                h.insert("test".into(), json!(["CMD-SHELL", t]));
            }
            Some(Value::Array(_)) => {
                let list = string_list(&h["test"]);
                h.insert("test".into(), list);
            }
            _ => {}
        }
    }
    if let Some(Value::Object(deploy)) = s.get_mut("deploy") {
        cast_numbers(deploy, &["replicas"], false)?;
        if let Some(l) = deploy.get("labels") {
            let m = to_string_map(l, false);
            deploy.insert("labels".into(), m);
        }
        if let Some(Value::Object(res)) = deploy.get_mut("resources") {
            for kind in ["limits", "reservations"] {
                if let Some(Value::Object(r)) = res.get_mut(kind) {
                    cast_numbers(r, &["cpus"], true)?;
                    cast_numbers(r, &["pids"], false)?;
                    if let Some(Value::Array(devices)) = r.get_mut("devices") {
                        for d in devices.iter_mut().filter_map(Value::as_object_mut) {
                            if let Some(Value::String(c)) = d.get("count") {
                                if let Ok(n) = c.parse::<i64>() {
                                    d.insert("count".into(), Value::from(n));
                                }
                            }
                            if let Some(o) = d.get("options") {
                                let m = to_string_map(o, false);
                                d.insert("options".into(), m);
                            }
                        }
                    }
                }
            }
        }
        if let Some(Value::Object(rp)) = deploy.get_mut("restart_policy") {
            cast_numbers(rp, &["max_attempts"], false)?;
        }
        for k in ["update_config", "rollback_config"] {
            if let Some(Value::Object(u)) = deploy.get_mut(k) {
                cast_numbers(u, &["parallelism"], false)?;
                cast_numbers(u, &["max_failure_ratio"], true)?;
            }
        }
    }
    if let Some(Value::Object(logging)) = s.get_mut("logging") {
        if let Some(o) = logging.get("options") {
            let m = to_string_map(o, false);
            logging.insert("options".into(), m);
        }
    }
    if let Some(Value::Object(develop)) = s.get_mut("develop") {
        if let Some(Value::Array(rules)) = develop.get_mut("watch") {
            for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(p) = rule.get("path").and_then(Value::as_str) {
                    let resolved = resolve_path(p, cx);
                    rule.insert("path".into(), Value::String(resolved));
                }
                if let Some(i) = rule.get("ignore") {
                    let l = string_list(i);
                    rule.insert("ignore".into(), l);
                }
            }
        }
    }
    for hook_key in ["post_start", "pre_stop"] {
        if let Some(Value::Array(hooks)) = s.get_mut(hook_key) {
            for hook in hooks.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(c) = hook.get("command") {
                    let c = command(c)?;
                    hook.insert("command".into(), c);
                }
                if let Some(e) = hook.get("environment") {
                    let m = to_string_map(e, true);
                    hook.insert("environment".into(), m);
                }
            }
        }
    }
    if let Some(Value::Object(ext)) = s.get_mut("extends") {
        ext.remove("file");
    }
    s.remove("extends");
    Ok(())
}

/// Fills `K` entries without a value from the environment; drops them when
/// `keep_missing` is false and the variable is not set.
fn resolve_missing(map: &mut Value, cx: &Context<'_>, keep_missing: bool) {
    let Some(m) = map.as_object_mut() else { return };
    let keys: Vec<String> = m
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    for k in keys {
        match cx.environment.get(&k) {
            Some(v) => {
                m.insert(k, Value::String(v.clone()));
            }
            None if keep_missing => {}
            None => {
                m.remove(&k);
            }
        }
    }
}

fn extra_hosts(v: &Value) -> Value {
    let mut entries: Vec<String> = Vec::new();
    match v {
        Value::Object(m) => {
            for (host, ips) in m {
                match ips {
                    Value::Array(list) => entries.extend(
                        list.iter()
                            .filter_map(scalar_string)
                            .map(|ip| format!("{host}={ip}")),
                    ),
                    other => entries.push(format!(
                        "{host}={}",
                        scalar_string(other).unwrap_or_default()
                    )),
                }
            }
        }
        _ => {
            for item in string_list(v)
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let entry = match item.split_once('=') {
                    Some((h, ip)) => format!("{h}={ip}"),
                    None => match item.split_once(':') {
                        Some((h, ip)) => format!("{h}={ip}"),
                        None => item.to_string(),
                    },
                };
                entries.push(entry);
            }
        }
    }
    entries.sort();
    Value::Array(entries.into_iter().map(Value::String).collect())
}

fn normalize_build(build: &mut Value, cx: &Context<'_>) -> Result<(), String> {
    if let Value::String(context) = build {
        *build = json!({ "context": context.clone() });
    }
    let b = build.as_object_mut().ok_or("must be a mapping")?;
    cast_bools(b, &["no_cache", "pull", "privileged"]);
    let context = b
        .get("context")
        .and_then(scalar_string)
        .unwrap_or_else(|| ".".into());
    let context = if is_remote_context(&context) {
        context
    } else {
        resolve_path(&context, cx)
    };
    b.insert("context".into(), Value::String(context));
    if b.get("dockerfile").is_none() && b.get("dockerfile_inline").is_none() {
        b.insert("dockerfile".into(), json!("Dockerfile"));
    }
    if let Some(a) = b.get("args") {
        let mut args = to_string_map(a, true);
        resolve_missing(&mut args, cx, false);
        b.insert("args".into(), args);
    }
    if let Some(v) = b.get("labels") {
        let m = to_string_map(v, false);
        b.insert("labels".into(), m);
    }
    if let Some(v) = b.get("additional_contexts") {
        let mut m = to_string_map(v, false);
        for value in m.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
            if let Some(path) = value.as_str().filter(|p| !p.contains("://")) {
                *value = Value::String(resolve_path(path, cx));
            }
        }
        b.insert("additional_contexts".into(), m);
    }
    for k in [
        "cache_from",
        "cache_to",
        "tags",
        "platforms",
        "entitlements",
    ] {
        if let Some(v) = b.get(k) {
            let l = string_list(v);
            b.insert(k.into(), l);
        }
    }
    if let Some(v) = b.get("extra_hosts") {
        let h = extra_hosts(v);
        b.insert("extra_hosts".into(), h);
    }
    if let Some(Value::Array(ssh)) = b.get("ssh") {
        let keys: Vec<Value> = ssh
            .iter()
            .filter_map(scalar_string)
            .map(|k| match k.split_once('=') {
                Some((id, path)) => json!({"id": id, "path": path}),
                None => json!({"id": k, "path": ""}),
            })
            .collect();
        b.insert("ssh".into(), Value::Array(keys));
    } else if let Some(Value::Object(ssh)) = b.get("ssh") {
        let keys: Vec<Value> = ssh
            .iter()
            .map(|(id, p)| json!({"id": id, "path": scalar_string(p).unwrap_or_default()}))
            .collect();
        b.insert("ssh".into(), Value::Array(keys));
    }
    if let Some(Value::Array(secrets)) = b.get("secrets") {
        let out = secrets
            .iter()
            .map(|m| file_mount(m, None))
            .collect::<Result<Vec<_>, _>>()?;
        b.insert("secrets".into(), Value::Array(out));
    }
    if let Some(Value::Object(ulimits)) = b.get_mut("ulimits") {
        for v in ulimits.values_mut() {
            ulimit(v)?;
        }
    }
    Ok(())
}

fn ulimit(v: &mut Value) -> Result<(), String> {
    match v {
        Value::String(s) => {
            *v = Value::from(
                s.parse::<i64>()
                    .map_err(|_| format!("ulimits: invalid value {s:?}"))?,
            );
        }
        Value::Object(o) => cast_numbers(o, &["soft", "hard"], false)?,
        _ => {}
    }
    Ok(())
}

fn depends_on(v: &Value) -> Result<Value, String> {
    let mut out = Map::new();
    match v {
        Value::Array(names) => {
            for n in names.iter().filter_map(scalar_string) {
                out.insert(n, json!({"condition": "service_started", "required": true}));
            }
        }
        Value::Object(m) => {
            for (name, dep) in m {
                let mut d = dep.as_object().cloned().unwrap_or_default();
                cast_bools(&mut d, &["restart", "required"]);
                d.entry("condition").or_insert(json!("service_started"));
                d.entry("required").or_insert(json!(true));
                out.insert(name.clone(), Value::Object(d));
            }
        }
        _ => return Err("depends_on: must be a list or a mapping".into()),
    }
    Ok(Value::Object(out))
}

fn env_files(v: &Value, cx: &Context<'_>) -> Value {
    let items = match v {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    Value::Array(
        items
            .iter()
            .filter_map(|item| {
                let (path, required) = match item {
                    Value::Object(o) => (
                        o.get("path").and_then(scalar_string)?,
                        match o.get("required") {
                            Some(Value::Bool(b)) => *b,
                            Some(Value::String(s)) => parse_go_bool(s).unwrap_or(true),
                            _ => true,
                        },
                    ),
                    other => (scalar_string(other)?, true),
                };
                Some(json!({"path": resolve_path(&path, cx), "required": required}))
            })
            .collect(),
    )
}

fn file_mount(m: &Value, default_dir: Option<&str>) -> Result<Value, String> {
    let mut mount = match m {
        Value::String(source) => {
            let mut o = Map::new();
            o.insert("source".into(), Value::String(source.clone()));
            if let Some(dir) = default_dir {
                o.insert("target".into(), Value::String(format!("{dir}/{source}")));
            }
            return Ok(Value::Object(o));
        }
        Value::Object(o) => o.clone(),
        _ => return Err("secrets/configs entries must be a string or a mapping".into()),
    };
    for k in ["uid", "gid"] {
        if let Some(v) = mount.get(k).and_then(scalar_string) {
            mount.insert(k.into(), Value::String(v));
        }
    }
    if let Some(Value::String(mode)) = mount.get("mode") {
        let parsed = u32::from_str_radix(mode.trim_start_matches("0o"), 8)
            .map_err(|_| format!("invalid file mode {mode:?}"))?;
        mount.insert("mode".into(), Value::from(parsed));
    }
    Ok(Value::Object(mount))
}

/// One `ports:` entry, as one or more long-form ports.
fn port(p: &Value) -> Result<Vec<Value>, String> {
    let spec = match p {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            let mut o = o.clone();
            if let Some(t) = o.get("target").and_then(scalar_string) {
                let target: u32 = t
                    .parse()
                    .map_err(|_| format!("ports: invalid target {t:?}"))?;
                o.insert("target".into(), Value::from(target));
            }
            if let Some(p) = o.get("published") {
                match scalar_string(p) {
                    Some(s) => o.insert("published".into(), Value::String(s)),
                    None => o.remove("published"),
                };
            }
            o.entry("mode").or_insert(json!("ingress"));
            o.entry("protocol").or_insert(json!("tcp"));
            return Ok(vec![Value::Object(o)]);
        }
        _ => return Err("ports: invalid entry".into()),
    };
    parse_port_spec(&spec)
}

fn parse_range(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("Invalid port: {text:?}");
    match text.split_once('-') {
        Some((a, b)) => Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)),
        None => {
            let v = text.parse().map_err(|_| bad())?;
            Ok((v, v))
        }
    }
}

/// `[[HOST_IP:][PUBLISHED]:]TARGET[/PROTOCOL]`, with ranges.
pub fn parse_port_spec(spec: &str) -> Result<Vec<Value>, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_string()),
        None => (spec, "tcp".to_string()),
    };
    let (host_ip, rest) = if let Some(stripped) = rest.strip_prefix('[') {
        let (ip, after) = stripped
            .split_once(']')
            .ok_or(format!("Invalid ip address: {spec}"))?;
        (
            ip.to_string(),
            after.strip_prefix(':').unwrap_or(after).to_string(),
        )
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() > 3 {
            // An unbracketed IPv6 host address: the last two parts are the ports.
            let n = parts.len();
            (parts[..n - 2].join(":"), parts[n - 2..].join(":"))
        } else if parts.len() == 3 {
            (parts[0].to_string(), parts[1..].join(":"))
        } else {
            (String::new(), rest.to_string())
        }
    };
    let (published, target) = match rest.split_once(':') {
        Some((p, t)) => (p.to_string(), t.to_string()),
        None => (String::new(), rest.clone()),
    };
    let (t_start, t_end) = parse_range(&target)?;
    if t_end < t_start {
        return Err(format!(
            "Invalid range specified for container port: {target}"
        ));
    }
    let published_range = if published.is_empty() {
        None
    } else {
        Some(parse_range(&published)?)
    };
    let count = t_end - t_start + 1;
    let mut out = Vec::new();
    for i in 0..count {
        let mut o = Map::new();
        o.insert("mode".into(), json!("ingress"));
        if !host_ip.is_empty() {
            o.insert("host_ip".into(), Value::String(host_ip.clone()));
        }
        o.insert("target".into(), Value::from(t_start + i));
        if let Some((p_start, p_end)) = published_range {
            let published = if count == 1 {
                if p_start == p_end {
                    p_start.to_string()
                } else {
                    format!("{p_start}-{p_end}")
                }
            } else if p_end - p_start + 1 == count {
                (p_start + i).to_string()
            } else {
                return Err(format!(
                    "Invalid ranges specified for container and host Ports: {spec}"
                ));
            };
            o.insert("published".into(), Value::String(published));
        }
        o.insert("protocol".into(), Value::String(protocol.clone()));
        out.push(Value::Object(o));
    }
    Ok(out)
}

fn is_bind_source(source: &str) -> bool {
    source.starts_with('/') || source.starts_with('.') || source.starts_with('~')
}

fn service_volume(v: &Value, cx: &Context<'_>) -> Result<Value, String> {
    match v {
        // compose reads a spec of one or two characters as a bare target.
        Value::String(spec) if spec.chars().count() <= 2 => {
            Ok(json!({"type": "volume", "target": spec}))
        }
        Value::String(spec) => {
            let short = parse_volume(spec).map_err(|e| format!("volumes: {e}"))?;
            let mut o = Map::new();
            let bind_kind = is_bind_source(&short.source);
            o.insert(
                "type".into(),
                json!(if bind_kind { "bind" } else { "volume" }),
            );
            if !short.source.is_empty() {
                let source = if bind_kind {
                    resolve_path(&short.source, cx)
                } else {
                    short.source.clone()
                };
                o.insert("source".into(), Value::String(source));
            }
            o.insert("target".into(), Value::String(short.target.clone()));
            let mut bind = Map::new();
            let mut volume = Map::new();
            // Unknown options are ignored, as compose ignores them.
            for opt in &short.options {
                match opt.as_str() {
                    "ro" => {
                        o.insert("read_only".into(), json!(true));
                    }
                    "rw" => {
                        o.remove("read_only");
                    }
                    "z" | "Z" => {
                        bind.insert("selinux".into(), json!(opt));
                    }
                    "nocopy" => {
                        volume.insert("nocopy".into(), json!(true));
                    }
                    "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                        bind.insert("propagation".into(), json!(opt));
                    }
                    _ => {}
                }
            }
            if bind_kind {
                bind.insert("create_host_path".into(), json!(true));
                o.insert("bind".into(), Value::Object(bind));
            } else {
                o.insert("volume".into(), Value::Object(volume));
            }
            Ok(Value::Object(o))
        }
        Value::Object(o) => {
            let mut o = o.clone();
            cast_bools(&mut o, &["read_only"]);
            let kind = o
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("volume")
                .to_string();
            if kind == "bind" {
                if let Some(source) = o.get("source").and_then(Value::as_str) {
                    let resolved = resolve_path(source, cx);
                    o.insert("source".into(), Value::String(resolved));
                }
            }
            if let Some(Value::Object(b)) = o.get_mut("bind") {
                cast_bools(b, &["create_host_path"]);
            }
            if let Some(Value::Object(v)) = o.get_mut("volume") {
                cast_bools(v, &["nocopy"]);
            }
            if let Some(Value::Object(t)) = o.get_mut("tmpfs") {
                if let Some(Value::String(mode)) = t.get("mode") {
                    if let Ok(m) = u32::from_str_radix(mode, 8) {
                        t.insert("mode".into(), Value::from(m));
                    }
                }
            }
            Ok(Value::Object(o))
        }
        _ => Err("volumes: invalid entry".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_short_syntax() {
        let p = parse_port_spec("127.0.0.1:9000-9001:9000-9001/udp").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1]["published"], "9001");
        assert_eq!(p[1]["host_ip"], "127.0.0.1");
        assert_eq!(p[1]["protocol"], "udp");
        let p = parse_port_spec("8000-8010:80").unwrap();
        assert_eq!(p[0]["published"], "8000-8010");
        let p = parse_port_spec("[::1]:80:81").unwrap();
        assert_eq!(p[0]["host_ip"], "::1");
        assert_eq!(p[0]["target"], 81);
        assert!(parse_port_spec("1-2:3-5").is_err());
        assert!(parse_port_spec("x").is_err());
    }

    #[test]
    fn volume_and_device_short_syntax() {
        let v = parse_volume("./a:/b:ro,z").unwrap();
        assert_eq!((v.source.as_str(), v.target.as_str()), ("./a", "/b"));
        assert_eq!(v.options, ["ro", "z"]);
        assert!(parse_volume("a:b:c:d").is_err());
        let d = parse_device("/dev/a:/dev/b");
        assert_eq!(
            (d.target.as_str(), d.permissions.as_str()),
            ("/dev/b", "rwm")
        );
    }

    #[test]
    fn paths_clean_as_go() {
        assert_eq!(clean(Path::new("/a/./b/../c/")), "/a/c");
        assert_eq!(clean(Path::new("a/../..")), "..");
    }
}
