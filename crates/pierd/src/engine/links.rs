//! The environment of legacy links (`--link db:alias` on the default bridge), as
//! dockerd writes it (moby `daemon/links`): `ALIAS_NAME`, `ALIAS_PORT` (the lowest
//! exposed port), `ALIAS_PORT_<port>_<PROTO>` with `_ADDR`, `_PORT` and `_PROTO`, the
//! `_START`/`_END` of runs of consecutive ports, and the linked container's own
//! environment as `ALIAS_ENV_<NAME>` (but its `HOME` and `PATH`).

use super::network::{parse_link, BRIDGE};
use super::{Container, Engine};

/// An exposed port: its number and protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    number: u16,
    proto: String,
}

impl Engine {
    /// The link variables of `c` (none unless it is on the default bridge).
    pub(super) fn link_env(&self, c: &Container) -> Vec<String> {
        if !c.networks.contains_key(BRIDGE) {
            return Vec::new();
        }
        let mut env = Vec::new();
        for link in super::spec::str_list(&c.host_config["Links"]) {
            let (target, alias) = parse_link(&link);
            let Ok(t) = self.get(&target) else { continue };
            let ip = t
                .networks
                .get(BRIDGE)
                .and_then(|ep| ep.ipv4)
                .map(|a| a.addr().to_string())
                .unwrap_or_default();
            let ports = t.config["ExposedPorts"]
                .as_object()
                .map(|m| m.keys().filter_map(|k| parse_port(k)).collect())
                .unwrap_or_default();
            let child_env = super::spec::str_list(&t.config["Env"]);
            let name = format!("/{}/{alias}", c.name);
            env.extend(link_vars(&name, &ip, ports, &child_env));
        }
        env
    }
}

/// `5432/tcp`, `53/udp`, `80` (tcp).
fn parse_port(key: &str) -> Option<Port> {
    let (number, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    Some(Port {
        number: number.parse().ok()?,
        proto: proto.to_string(),
    })
}

/// The variables of one link named `name` (`/<container>/<alias>`) to a container at
/// `ip` exposing `ports`, with environment `child_env`.
fn link_vars(name: &str, ip: &str, mut ports: Vec<Port>, child_env: &[String]) -> Vec<String> {
    let alias = name
        .rsplit('/')
        .next()
        .unwrap_or(name)
        .to_uppercase()
        .replace('-', "_");
    // By number, tcp before others of the same number (moby's order).
    ports.sort_by(|a, b| {
        a.number
            .cmp(&b.number)
            .then_with(|| (b.proto == "tcp").cmp(&(a.proto == "tcp")))
    });
    let mut env = Vec::new();
    if let Some(p) = ports.first() {
        env.push(format!("{alias}_PORT={}://{ip}:{}", p.proto, p.number));
    }
    let mut i = 0;
    while i < ports.len() {
        let p = &ports[i];
        let j = last_contiguous(&ports, i);
        if j > i + 1 {
            let (n, proto, upper) = (p.number, &p.proto, p.proto.to_uppercase());
            let q = &ports[j];
            let q_upper = q.proto.to_uppercase();
            env.push(format!("{alias}_PORT_{n}_{upper}_START={proto}://{ip}:{n}"));
            env.push(format!("{alias}_PORT_{n}_{upper}_ADDR={ip}"));
            env.push(format!("{alias}_PORT_{n}_{upper}_PROTO={proto}"));
            env.push(format!("{alias}_PORT_{n}_{upper}_PORT_START={n}"));
            env.push(format!(
                "{alias}_PORT_{n}_{q_upper}_END={}://{ip}:{}",
                q.proto, q.number
            ));
            env.push(format!("{alias}_PORT_{n}_{q_upper}_PORT_END={}", q.number));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    for p in &ports {
        let (n, proto, upper) = (p.number, &p.proto, p.proto.to_uppercase());
        env.push(format!("{alias}_PORT_{n}_{upper}={proto}://{ip}:{n}"));
        env.push(format!("{alias}_PORT_{n}_{upper}_ADDR={ip}"));
        env.push(format!("{alias}_PORT_{n}_{upper}_PORT={n}"));
        env.push(format!("{alias}_PORT_{n}_{upper}_PROTO={proto}"));
    }
    env.push(format!("{alias}_NAME={name}"));
    for var in child_env {
        let Some((key, value)) = var.split_once('=') else {
            continue;
        };
        if key != "HOME" && key != "PATH" {
            env.push(format!("{alias}_ENV_{key}={value}"));
        }
    }
    env
}

/// The index of the last port of the run of consecutive numbers that starts at
/// `index` (moby's `nextContiguous`).
fn last_contiguous(ports: &[Port], index: usize) -> usize {
    let first = u32::from(ports[index].number);
    for (value, (i, p)) in (first..).zip(ports.iter().enumerate().skip(index + 1)) {
        if u32::from(p.number) > value + 1 {
            return i - 1;
        }
    }
    ports.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_link_variables() {
        let ports = ["5432/tcp", "53/udp"]
            .iter()
            .filter_map(|k| parse_port(k))
            .collect();
        let env = link_vars(
            "/web/db-1",
            "172.17.0.2",
            ports,
            &["PATH=/bin".into(), "PASS=x".into()],
        );
        assert_eq!(
            env,
            [
                "DB_1_PORT=udp://172.17.0.2:53",
                "DB_1_PORT_53_UDP=udp://172.17.0.2:53",
                "DB_1_PORT_53_UDP_ADDR=172.17.0.2",
                "DB_1_PORT_53_UDP_PORT=53",
                "DB_1_PORT_53_UDP_PROTO=udp",
                "DB_1_PORT_5432_TCP=tcp://172.17.0.2:5432",
                "DB_1_PORT_5432_TCP_ADDR=172.17.0.2",
                "DB_1_PORT_5432_TCP_PORT=5432",
                "DB_1_PORT_5432_TCP_PROTO=tcp",
                "DB_1_NAME=/web/db-1",
                "DB_1_ENV_PASS=x",
            ]
        );
        let range: Vec<Port> = (8000..=8002)
            .map(|n| Port {
                number: n,
                proto: "tcp".into(),
            })
            .collect();
        let env = link_vars("/w/r", "10.0.0.2", range, &[]);
        assert!(env.contains(&"R_PORT_8000_TCP_START=tcp://10.0.0.2:8000".to_string()));
        assert!(env.contains(&"R_PORT_8000_TCP_END=tcp://10.0.0.2:8002".to_string()));
        assert!(env.contains(&"R_PORT_8000_TCP_PORT_END=8002".to_string()));
    }
}
