//! The daemon's event log (`GET /events`, `docker events`).
//!
//! Every lifecycle change of a container or an image is published as one [`Event`].
//! The last [`KEPT_EVENTS`] stay in memory so `since` can replay them (as dockerd keeps
//! 256); subscribers get the rest live. Publishing and subscribing take the same lock,
//! so a subscriber's replay and its live stream neither overlap nor leave a gap.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use super::Container;

/// How many past events `since` can reach.
pub const KEPT_EVENTS: usize = 256;
/// How far a live subscriber may fall behind before it misses events.
const SUBSCRIBER_BACKLOG: usize = 1024;

/// One event, in Docker's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `container`, `image`, ...
    pub kind: &'static str,
    /// `start`, `die`, `health_status: healthy`, `exec_start: sh -c ...`.
    pub action: String,
    /// The object's ID (a container ID, an image ID or name).
    pub actor_id: String,
    pub attributes: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub time_nano: i64,
}

impl Event {
    pub fn new(
        kind: &'static str,
        action: impl Into<String>,
        actor_id: impl Into<String>,
    ) -> Event {
        let time_nano = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Event {
            kind,
            action: action.into(),
            actor_id: actor_id.into(),
            attributes: BTreeMap::new(),
            time_nano,
        }
    }

    /// A container's event, with the attributes Docker gives every one: the
    /// container's labels, its image and its name.
    pub fn container(c: &Container, action: impl Into<String>) -> Event {
        let mut event = Event::new("container", action, c.id.clone());
        if let Some(labels) = c.config["Labels"].as_object() {
            for (k, v) in labels {
                if let Some(v) = v.as_str() {
                    event.attributes.insert(k.clone(), v.to_string());
                }
            }
        }
        event
            .attributes
            .insert("image".into(), c.image_name.clone());
        event.attributes.insert("name".into(), c.name.clone());
        event
    }

    /// An image's event; `name` is the reference the action was about (if any).
    pub fn image(id: &str, action: &str, name: Option<&str>) -> Event {
        let mut event = Event::new("image", action, id);
        if let Some(name) = name {
            event.attributes.insert("name".into(), name.to_string());
        }
        event
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Event {
        self.attributes.insert(key.to_string(), value.into());
        self
    }

    /// Docker's JSON; `legacy` adds the `status`/`id`/`from` fields that API versions
    /// before 1.52 carry.
    pub fn to_json(&self, legacy: bool) -> Value {
        let attributes: Map<String, Value> = self
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut out = Map::new();
        if legacy && matches!(self.kind, "container" | "image") {
            out.insert("status".into(), json!(self.action));
            out.insert("id".into(), json!(self.actor_id));
            if self.kind == "container" {
                if let Some(image) = self.attributes.get("image") {
                    out.insert("from".into(), json!(image));
                }
            }
        }
        out.insert("Type".into(), json!(self.kind));
        out.insert("Action".into(), json!(self.action));
        out.insert(
            "Actor".into(),
            json!({"ID": self.actor_id, "Attributes": attributes}),
        );
        out.insert("scope".into(), json!("local"));
        out.insert("time".into(), json!(self.time_nano / 1_000_000_000));
        out.insert("timeNano".into(), json!(self.time_nano));
        Value::Object(out)
    }
}

/// The event log: recent events and live subscribers.
#[derive(Debug)]
pub struct EventBus {
    recent: Mutex<VecDeque<Event>>,
    live: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> EventBus {
        EventBus {
            recent: Mutex::new(VecDeque::with_capacity(KEPT_EVENTS)),
            live: broadcast::channel(SUBSCRIBER_BACKLOG).0,
        }
    }
}

impl EventBus {
    pub fn publish(&self, event: Event) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == KEPT_EVENTS {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        // No subscribers is not an error.
        let _ = self.live.send(event);
    }

    /// The kept events and a receiver for every later one.
    pub fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        (recent.iter().cloned().collect(), self.live.subscribe())
    }
}

/// Docker's event filters (`type`, `event`, `container`, `image`, `label`, `scope`,
/// `daemon`): all keys must match, any value of a key may.
#[derive(Debug, Default)]
pub struct EventFilter {
    filters: HashMap<String, Vec<String>>,
}

/// The filter keys dockerd accepts for events.
const FILTER_KEYS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

impl EventFilter {
    /// Checks the keys as dockerd does: an unknown one is an error naming it.
    pub fn new(filters: HashMap<String, Vec<String>>) -> Result<EventFilter, String> {
        if let Some(bad) = filters.keys().find(|k| !FILTER_KEYS.contains(&k.as_str())) {
            return Err(format!("invalid filter '{bad}'"));
        }
        Ok(EventFilter { filters })
    }

    fn values(&self, key: &str) -> Option<&[String]> {
        self.filters
            .get(key)
            .map(Vec::as_slice)
            .filter(|v| !v.is_empty())
    }

    fn exact(&self, key: &str, candidates: &[&str]) -> bool {
        self.values(key)
            .is_none_or(|vs| vs.iter().any(|v| candidates.contains(&v.as_str())))
    }

    /// Whether the event passes.
    pub fn matches(&self, e: &Event) -> bool {
        let bare_action = e.action.split(": ").next().unwrap_or(&e.action);
        let name = e.attributes.get("name").map_or("", String::as_str);
        self.exact("type", &[e.kind])
            && self.exact("event", &[&e.action, bare_action])
            && self.exact("scope", &["local"])
            && self.matches_object("container", e, name)
            && self.matches_object("network", e, name)
            && self.matches_object("volume", e, name)
            && self.matches_image(e)
            && self.matches_labels(e)
            // Other kinds of object never happen here: a filter for them passes none.
            && ["config", "node", "plugin", "secret", "service", "daemon"]
                .iter()
                .all(|k| self.values(k).is_none())
    }

    /// `container=`: an event of that kind whose ID starts with, or whose name is, a
    /// value (dockerd matches both by prefix).
    fn matches_object(&self, kind: &str, e: &Event, name: &str) -> bool {
        let Some(values) = self.values(kind) else {
            return true;
        };
        e.kind == kind
            && values.iter().any(|v| {
                e.actor_id.starts_with(v.as_str()) || (!name.is_empty() && name.starts_with(v))
            })
    }

    /// `image=`: an image event about that image, or a container event whose container
    /// runs it; with or without the tag.
    fn matches_image(&self, e: &Event) -> bool {
        let Some(values) = self.values("image") else {
            return true;
        };
        let name_key = if e.kind == "image" { "name" } else { "image" };
        let name = e.attributes.get(name_key).map_or("", String::as_str);
        let id = if e.kind == "image" {
            e.actor_id.as_str()
        } else {
            ""
        };
        let candidates = [id, strip_tag(id), name, strip_tag(name)];
        values
            .iter()
            .any(|v| candidates.iter().any(|c| !c.is_empty() && c == v))
    }

    /// `label=KEY` or `label=KEY=VALUE`, against the attributes.
    fn matches_labels(&self, e: &Event) -> bool {
        let Some(values) = self.values("label") else {
            return true;
        };
        values.iter().all(|v| match v.split_once('=') {
            Some((k, want)) => e.attributes.get(k).is_some_and(|have| have == want),
            None => e.attributes.contains_key(v.as_str()),
        })
    }
}

/// `busybox:latest` → `busybox`; `localhost:5000/x` stays (the colon is a port).
fn strip_tag(reference: &str) -> &str {
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_start..].rfind(':') {
        Some(i) => &reference[..name_start + i],
        None => reference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(pairs: &[(&str, &str)]) -> EventFilter {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            map.entry(k.to_string()).or_default().push(v.to_string());
        }
        EventFilter::new(map).expect("valid filter")
    }

    fn container_event(action: &str) -> Event {
        Event::new("container", action, "abcdef0123")
            .with("name", "web")
            .with("image", "busybox:latest")
            .with("tier", "front")
    }

    #[test]
    fn filters_combine_like_dockerd() {
        let start = container_event("start");
        assert!(filter(&[]).matches(&start));
        assert!(filter(&[("type", "container"), ("event", "start")]).matches(&start));
        assert!(filter(&[("event", "stop"), ("event", "start")]).matches(&start));
        assert!(!filter(&[("type", "image")]).matches(&start));
        assert!(!filter(&[("event", "die")]).matches(&start));
        assert!(filter(&[("container", "abc")]).matches(&start));
        assert!(filter(&[("container", "web")]).matches(&start));
        assert!(!filter(&[("container", "db")]).matches(&start));
        assert!(filter(&[("image", "busybox")]).matches(&start));
        assert!(filter(&[("image", "busybox:latest")]).matches(&start));
        assert!(!filter(&[("image", "alpine")]).matches(&start));
        assert!(filter(&[("label", "tier")]).matches(&start));
        assert!(filter(&[("label", "tier=front")]).matches(&start));
        assert!(!filter(&[("label", "tier=back")]).matches(&start));
        assert!(!filter(&[("network", "x")]).matches(&start));
    }

    #[test]
    fn actions_with_details_match_their_bare_name() {
        let health = container_event("health_status: healthy");
        assert!(filter(&[("event", "health_status")]).matches(&health));
        assert!(filter(&[("event", "health_status: healthy")]).matches(&health));
        assert!(!filter(&[("event", "health_status: unhealthy")]).matches(&health));
    }

    #[test]
    fn image_events_match_by_id_and_name() {
        let tag = Event::image("sha256:1234", "tag", Some("localhost:5000/app:v1"));
        assert!(filter(&[("image", "sha256:1234")]).matches(&tag));
        assert!(filter(&[("image", "localhost:5000/app")]).matches(&tag));
        assert!(!filter(&[("image", "localhost")]).matches(&tag));
        assert!(!filter(&[("container", "sha")]).matches(&tag));
    }

    #[test]
    fn unknown_filter_keys_are_refused() {
        let map = HashMap::from([("colour".to_string(), vec!["red".to_string()])]);
        assert_eq!(
            EventFilter::new(map).unwrap_err(),
            "invalid filter 'colour'"
        );
    }

    #[test]
    fn replay_and_live_stream_neither_overlap_nor_gap() {
        let bus = EventBus::default();
        for i in 0..(KEPT_EVENTS + 10) {
            bus.publish(Event::new("container", "start", format!("c{i}")));
        }
        let (recent, mut live) = bus.subscribe();
        assert_eq!(recent.len(), KEPT_EVENTS);
        assert_eq!(recent[0].actor_id, "c10");
        bus.publish(Event::new("container", "die", "next"));
        assert_eq!(
            live.try_recv().map(|e| e.actor_id).ok().as_deref(),
            Some("next")
        );
    }

    #[test]
    fn json_has_dockers_shape() {
        let e = container_event("die").with("exitCode", "3");
        let v = e.to_json(true);
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "die");
        assert_eq!(v["status"], "die");
        assert_eq!(v["from"], "busybox:latest");
        assert_eq!(v["Actor"]["Attributes"]["exitCode"], "3");
        assert_eq!(v["scope"], "local");
        assert_eq!(v["time"].as_i64(), Some(e.time_nano / 1_000_000_000));
        assert!(e.to_json(false).get("status").is_none());
    }
}
