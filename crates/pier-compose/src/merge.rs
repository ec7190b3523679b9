//! Merging compose files (`-f a -f b`, `extends`): the later file's values go over the
//! earlier's, per key as docker compose merges them. Mappings merge recursively,
//! scalars are replaced, sequences are appended; `command`, `entrypoint` and
//! `healthcheck.test` are replaced whole; environment/labels-like keys merge as
//! `KEY=VALUE` lists; `networks` merge as maps; lists keyed by their target (ports,
//! volumes, secrets, ...) keep one entry per key. `!reset` drops a key and
//! `!override` replaces a value instead of merging into it.

use crate::yaml::{Node, NodeValue};

/// Does `path` match `pattern` (`services.*.ports`, `*` matching one element)?
pub fn path_matches(path: &[String], pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    parts.len() == path.len() && parts.iter().zip(path).all(|(p, e)| *p == "*" || p == e)
}

fn any_match(path: &[String], patterns: &[&str]) -> bool {
    patterns.iter().any(|p| path_matches(path, p))
}

/// Keys whose values merge as `KEY=VALUE` sequences.
const TO_SEQUENCE: &[&str] = &[
    "networks.*.labels",
    "volumes.*.labels",
    "services.*.annotations",
    "services.*.build.args",
    "services.*.build.additional_contexts",
    "services.*.build.extra_hosts",
    "services.*.build.labels",
    "services.*.deploy.labels",
    "services.*.dns",
    "services.*.dns_opt",
    "services.*.dns_search",
    "services.*.env_file",
    "services.*.environment",
    "services.*.extra_hosts",
    "services.*.labels",
    "services.*.sysctls",
    "services.*.tmpfs",
];

/// Keys replaced whole.
const REPLACED: &[&str] = &[
    "services.*.command",
    "services.*.entrypoint",
    "services.*.healthcheck.test",
];

/// Merges `over` into `base`. `path` is `base`'s key path.
pub fn merge(base: Node, over: Node, path: &mut Vec<String>) -> Result<Node, String> {
    if any_match(path, REPLACED) {
        return Ok(over);
    }
    if any_match(path, TO_SEQUENCE) {
        let mut seq = into_sequence(base);
        seq.extend(into_sequence(over));
        return Ok(Node::new(NodeValue::Seq(seq)));
    }
    if path_matches(path, "services.*.build") {
        return merge_maps(build_as_map(base), build_as_map(over), path);
    }
    if path_matches(path, "services.*.depends_on") || path_matches(path, "services.*.networks") {
        return merge_maps(list_as_map(base), list_as_map(over), path);
    }
    if path_matches(path, "services.*.logging") {
        let (Some(b), Some(o)) = (base.as_map(), over.as_map()) else {
            return Ok(over);
        };
        let bd = b
            .iter()
            .find(|(k, _)| k == "driver")
            .map(|(_, v)| v.value.clone());
        let od = o
            .iter()
            .find(|(k, _)| k == "driver")
            .map(|(_, v)| v.value.clone());
        if bd.is_none() || od.is_none() || bd == od {
            return merge_maps(base, over, path);
        }
        return Ok(over);
    }
    if path_matches(path, "services.*.ulimits.*") {
        if over.as_map().is_some() && base.as_map().is_some() {
            return merge_maps(base, over, path);
        }
        return Ok(over);
    }
    if path_matches(path, "networks.*.ipam.config") {
        return Ok(merge_ipam_config(base, over));
    }
    if over.is_null() {
        return Ok(base);
    }
    match (&base.value, &over.value) {
        (NodeValue::Map(_), NodeValue::Map(_)) => merge_maps(base, over, path),
        (NodeValue::Seq(_), NodeValue::Seq(_)) => {
            let (NodeValue::Seq(mut items), NodeValue::Seq(more)) = (base.value, over.value) else {
                unreachable!("matched as sequences above")
            };
            items.extend(more);
            Ok(Node {
                value: NodeValue::Seq(items),
                tag: base.tag,
                line: base.line,
            })
        }
        (NodeValue::Map(_), _) | (NodeValue::Seq(_), _) => {
            Err(format!("cannot override {}", path.join(".")))
        }
        _ => Ok(over),
    }
}

fn merge_maps(base: Node, over: Node, path: &mut Vec<String>) -> Result<Node, String> {
    let line = base.line;
    let NodeValue::Map(mut entries) = base.value else {
        return Ok(over);
    };
    let NodeValue::Map(more) = over.value else {
        return Ok(Node {
            value: NodeValue::Map(entries),
            tag: None,
            line,
        });
    };
    for (k, v) in more {
        match entries.iter().position(|(e, _)| *e == k) {
            Some(i) if !k.starts_with("x-") && v.tag.as_deref() != Some("!override") => {
                let existing = std::mem::replace(&mut entries[i].1, Node::new(NodeValue::Null));
                path.push(k);
                let merged = merge(existing, v, path);
                path.pop();
                entries[i].1 = merged?;
            }
            Some(i) => entries[i].1 = v,
            None => entries.push((k, v)),
        }
    }
    Ok(Node {
        value: NodeValue::Map(entries),
        tag: None,
        line,
    })
}

/// A map (`K: V`) as compose turns it into a `K=V` sequence (sorted), or a sequence as is.
fn into_sequence(node: Node) -> Vec<Node> {
    match node.value {
        NodeValue::Map(entries) => {
            let mut seq: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| match v.scalar_text() {
                    Some(t) if !v.is_null() => format!("{k}={t}"),
                    _ => k,
                })
                .collect();
            seq.sort();
            seq.into_iter().map(Node::str).collect()
        }
        NodeValue::Seq(items) => items,
        NodeValue::Str(_) => vec![node],
        _ => Vec::new(),
    }
}

fn build_as_map(node: Node) -> Node {
    match &node.value {
        NodeValue::Str(_) => Node::map(vec![("context".into(), node)]),
        _ => node,
    }
}

/// `[a, b]` as `{a: null, b: null}`.
fn list_as_map(node: Node) -> Node {
    match node.value {
        NodeValue::Seq(items) => Node::map(
            items
                .into_iter()
                .filter_map(|i| i.scalar_text())
                .map(|k| (k, Node::new(NodeValue::Null)))
                .collect(),
        ),
        _ => node,
    }
}

fn merge_ipam_config(base: Node, over: Node) -> Node {
    let NodeValue::Seq(mut pools) = base.value else {
        return over;
    };
    let NodeValue::Seq(more) = over.value else {
        return Node::new(NodeValue::Seq(pools));
    };
    for pool in more {
        // Compared by value: nodes also carry their line.
        let subnet = pool.get("subnet").and_then(Node::scalar_text);
        match pools
            .iter()
            .position(|p| p.get("subnet").and_then(Node::scalar_text) == subnet)
        {
            Some(i) => {
                let existing = std::mem::replace(&mut pools[i], Node::new(NodeValue::Null));
                pools[i] = merge_maps(existing, pool, &mut Vec::new())
                    .unwrap_or_else(|_| Node::new(NodeValue::Null));
            }
            None => pools.push(pool),
        }
    }
    Node::new(NodeValue::Seq(pools))
}

/// How an entry of a list is identified for de-duplication (later entries win).
fn unicity_key(path: &[String], entry: &Node) -> Option<Option<String>> {
    let key_value = |e: &Node| {
        e.scalar_text()
            .map(|t| t.split_once('=').map_or(t.clone(), |(k, _)| k.to_string()))
    };
    let patterns_kv = [
        "networks.*.labels",
        "services.*.annotations",
        "services.*.build.args",
        "services.*.build.additional_contexts",
        "services.*.build.tags",
        "services.*.build.labels",
        "services.*.cap_add",
        "services.*.cap_drop",
        "services.*.deploy.labels",
        "services.*.dns",
        "services.*.dns_opt",
        "services.*.dns_search",
        "services.*.environment",
        "services.*.labels",
        "services.*.links",
        "services.*.networks.*.aliases",
        "services.*.networks.*.link_local_ips",
        "services.*.profiles",
        "services.*.sysctls",
        "services.*.tmpfs",
    ];
    if any_match(path, &patterns_kv) {
        return Some(key_value(entry));
    }
    if path_matches(path, "services.*.volumes") {
        return Some(match &entry.value {
            NodeValue::Map(_) => entry.get("target").and_then(Node::scalar_text),
            NodeValue::Str(s) => crate::canonical::parse_volume(s).ok().map(|v| v.target),
            _ => None,
        });
    }
    if path_matches(path, "services.*.devices") {
        return Some(match &entry.value {
            NodeValue::Map(_) => entry.get("target").and_then(Node::scalar_text),
            NodeValue::Str(s) => Some(crate::canonical::parse_device(s).target),
            _ => None,
        });
    }
    for (pattern, default_dir) in [
        ("services.*.secrets", "/run/secrets"),
        ("services.*.configs", ""),
    ] {
        if path_matches(path, pattern) {
            return Some(match &entry.value {
                NodeValue::Str(s) => Some(format!("{default_dir}/{s}")),
                NodeValue::Map(_) => {
                    entry.get("target").and_then(Node::scalar_text).or_else(|| {
                        entry
                            .get("source")
                            .and_then(Node::scalar_text)
                            .map(|s| format!("{default_dir}/{s}"))
                    })
                }
                _ => None,
            });
        }
    }
    if path_matches(path, "services.*.ports") {
        return Some(match &entry.value {
            NodeValue::Map(_) => Some(format!(
                "{}:{}:{}/{}",
                entry
                    .get("host_ip")
                    .and_then(Node::scalar_text)
                    .unwrap_or_else(|| "0.0.0.0".into()),
                entry
                    .get("published")
                    .and_then(Node::scalar_text)
                    .unwrap_or_default(),
                entry
                    .get("target")
                    .and_then(Node::scalar_text)
                    .unwrap_or_default(),
                entry
                    .get("protocol")
                    .and_then(Node::scalar_text)
                    .unwrap_or_else(|| "tcp".into()),
            )),
            _ => entry.scalar_text(),
        });
    }
    if path_matches(path, "services.*.env_file") {
        return Some(match &entry.value {
            NodeValue::Map(_) => entry.get("path").and_then(Node::scalar_text),
            _ => entry.scalar_text(),
        });
    }
    None
}

/// Keeps one entry per key in lists compose de-duplicates; a later entry replaces an
/// earlier one in place.
pub fn enforce_unicity(node: &mut Node, path: &mut Vec<String>) {
    match &mut node.value {
        NodeValue::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                path.push(k.clone());
                enforce_unicity(v, path);
                path.pop();
            }
        }
        NodeValue::Seq(items) => {
            if unicity_key(path, &Node::new(NodeValue::Null)).is_none() {
                return;
            }
            let mut kept: Vec<(Option<String>, Node)> = Vec::new();
            for item in std::mem::take(items) {
                let key = unicity_key(path, &item).flatten();
                match kept.iter().position(|(k, _)| key.is_some() && *k == key) {
                    Some(i) => kept[i].1 = item,
                    None => kept.push((key, item)),
                }
            }
            *items = kept.into_iter().map(|(_, n)| n).collect();
        }
        _ => {}
    }
}

/// Applies the `!reset`/`!override` tags of `over` to `base` before merging: both
/// remove the key from `base`; `!reset` also removes it from `over`.
pub fn apply_reset_tags(base: &mut Node, over: &mut Node) {
    let NodeValue::Map(entries) = &mut over.value else {
        return;
    };
    entries.retain_mut(|(k, v)| {
        match v.tag.as_deref() {
            Some("!reset") => {
                base.remove(k);
                return false;
            }
            Some("!override") => {
                base.remove(k);
            }
            _ => {
                if let Some(b) = base.get_mut(k) {
                    apply_reset_tags(b, v);
                }
            }
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    fn merged(a: &str, b: &str) -> serde_json::Value {
        let mut base = parse(a).unwrap().remove(0);
        let mut over = parse(b).unwrap().remove(0);
        apply_reset_tags(&mut base, &mut over);
        let mut out = merge(base, over, &mut Vec::new()).unwrap();
        enforce_unicity(&mut out, &mut Vec::new());
        out.to_json()
    }

    #[test]
    fn per_key_rules() {
        let out = merged(
            "services:\n  a:\n    image: x\n    command: [a, b]\n    environment: {A: 1, B: 2}\n    ports: ['80:80']\n    volumes: ['/a:/data']\n    cap_add: [X]\n",
            "services:\n  a:\n    image: y\n    command: [c]\n    environment: [B=3, C]\n    ports: ['81:81', '80:80']\n    volumes: ['/b:/data']\n    cap_add: [Y, X]\n",
        );
        let a = &out["services"]["a"];
        assert_eq!(a["image"], "y");
        assert_eq!(a["command"], serde_json::json!(["c"]));
        assert_eq!(a["environment"], serde_json::json!(["A=1", "B=3", "C"]));
        assert_eq!(a["ports"], serde_json::json!(["80:80", "81:81"]));
        assert_eq!(a["volumes"], serde_json::json!(["/b:/data"]));
        assert_eq!(a["cap_add"], serde_json::json!(["X", "Y"]));
    }

    #[test]
    fn reset_and_override() {
        let out = merged(
            "services:\n  a:\n    ports: ['80:80']\n    labels: {a: b}\n    deploy: {replicas: 2, labels: [x=y]}\n",
            "services:\n  a:\n    ports: !reset []\n    labels: !override {c: d}\n",
        );
        let a = &out["services"]["a"];
        assert!(a.get("ports").is_none());
        assert_eq!(a["labels"], serde_json::json!({"c": "d"}));
        assert_eq!(a["deploy"]["replicas"], 2);
    }

    #[test]
    fn ipam_pools_merge_by_subnet() {
        let out = merged(
            "networks:\n  n:\n    ipam:\n      driver: default\n      config:\n        - subnet: 10.1.0.0/24\n",
            "networks:\n  n:\n    ipam:\n      config:\n        - subnet: 10.1.0.0/24\n          gateway: 10.1.0.1\n        - subnet: 10.2.0.0/24\n",
        );
        assert_eq!(
            out["networks"]["n"]["ipam"]["config"],
            serde_json::json!([{"subnet": "10.1.0.0/24", "gateway": "10.1.0.1"}, {"subnet": "10.2.0.0/24"}])
        );
    }

    #[test]
    fn mismatched_types_are_refused() {
        let base = parse("services: {a: {build: {context: .}}}")
            .unwrap()
            .remove(0);
        let over = parse("services: [a]").unwrap().remove(0);
        assert!(merge(base, over, &mut Vec::new()).is_err());
    }
}
