//! Integration tests against the real cgroup filesystems of this machine. They need
//! root and are skipped otherwise. Every test cleans up through a Drop guard, even when
//! an assertion fails halfway: children are thawed and killed, cgroups removed, and
//! cgroup.subtree_control of the cgroup2 root restored.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;

/// The tests share cgroup roots (and the cgroup2 root's subtree_control).
static SERIAL: Mutex<()> = Mutex::new(());

const UNIFIED_HYBRID: &str = "/sys/fs/cgroup/unified";

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .unwrap_or_else(|e| panic!("read {}: {e}", path.as_ref().display()))
        .trim()
        .to_string()
}

fn subtree_control(root: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(root.join("cgroup.subtree_control"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Cleans up whatever a test left, in the right order.
struct Guard {
    cgroup: Box<dyn Cgroup>,
    children: Vec<Child>,
    /// Parents we created above the cgroup (removed deepest first).
    parents: Vec<PathBuf>,
    /// cgroup2 roots and the controllers they had enabled before the test.
    subtree: Vec<(PathBuf, BTreeSet<String>)>,
}

impl Guard {
    fn new(cgroup: Box<dyn Cgroup>, parent_levels: usize) -> Guard {
        let mut parents = Vec::new();
        for dir in cgroup.dirs() {
            let mut d = dir.as_path();
            for _ in 0..parent_levels {
                if let Some(p) = d.parent() {
                    parents.push(p.to_path_buf());
                    d = p;
                }
            }
        }
        let subtree = [PathBuf::from(CGROUP_ROOT), PathBuf::from(UNIFIED_HYBRID)]
            .into_iter()
            .filter(|p| p.join("cgroup.subtree_control").exists())
            .map(|p| {
                let s = subtree_control(&p);
                (p, s)
            })
            .collect();
        Guard {
            cgroup,
            children: Vec::new(),
            parents,
            subtree,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // A frozen v1 task cannot even die: thaw first.
        let _ = self.cgroup.thaw();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.cgroup.destroy();
        for p in &self.parents {
            let _ = std::fs::remove_dir(p);
        }
        for (root, before) in &self.subtree {
            // Disabling a controller takes it away from every child cgroup: only undo
            // our change when no other cgroup (someone else's) lives under the root.
            let others = std::fs::read_dir(root)
                .map(|entries| entries.filter_map(|e| e.ok()).any(|e| e.path().is_dir()))
                .unwrap_or(true);
            if others {
                continue;
            }
            for c in subtree_control(root).difference(before) {
                let _ = std::fs::write(root.join("cgroup.subtree_control"), format!("-{c}"));
            }
        }
    }
}

/// A shell that waits for a line on stdin (so it can be moved into the cgroup first),
/// then probes devices, burns some CPU, and sleeps.
fn spawn_gated() -> (Child, BufReader<ChildStdout>) {
    let script = "read x
true 2>/dev/null </dev/kmsg && echo kmsg-open || echo kmsg-denied
true 2>/dev/null </dev/null && echo null-open || echo null-denied
i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done
echo busy-done
exec sleep 60";
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    (child, out)
}

fn release_and_read(child: &mut Child, out: &mut BufReader<ChildStdout>) -> Vec<String> {
    child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("write stdin");
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        out.read_line(&mut line).expect("read child output");
        lines.push(line.trim().to_string());
    }
    lines
}

fn spawn_sleep() -> Child {
    Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep")
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn proc_cgroup(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default()
}

fn hybrid_hugetlb() -> bool {
    Path::new(UNIFIED_HYBRID)
        .join("cgroup.controllers")
        .exists()
        && read(Path::new(UNIFIED_HYBRID).join("cgroup.controllers"))
            .split_whitespace()
            .any(|c| c == "hugetlb")
        && hugepage_sizes().iter().any(|s| s == "2MB")
}

#[test]
fn v1_lifecycle_on_this_host() {
    if !is_root() || host_version().ok() != Some(Version::V1) {
        eprintln!("skipped: needs root on a cgroup v1 host");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let top = unique("/pier-test");
    let path = format!("{top}/c1");
    let cg = open(Some(&path), "ignored", false).expect("open");
    let mut guard = Guard::new(cg, 1);
    let cg = &guard.cgroup;
    assert_eq!(cg.version(), Version::V1);
    assert_eq!(cg.path(), path);

    cg.create().expect("create");
    cg.create().expect("create is idempotent");
    for dir in cg.dirs() {
        assert!(dir.is_dir(), "{} missing", dir.display());
    }
    let dir_of = |controller: &str| {
        cg.dirs()
            .into_iter()
            .find(|d| {
                d.strip_prefix(CGROUP_ROOT)
                    .ok()
                    .and_then(|r| r.components().next())
                    .and_then(|c| {
                        c.as_os_str()
                            .to_str()
                            .map(|s| s.split(',').any(|x| x == controller))
                    })
                    .unwrap_or(false)
            })
            .unwrap_or_else(|| panic!("no {controller} hierarchy"))
    };
    // cpuset got cpus/mems at every level.
    let cpuset = dir_of("cpuset");
    assert!(!read(cpuset.join("cpuset.cpus")).is_empty());
    assert!(!read(cpuset.parent().expect("parent").join("cpuset.mems")).is_empty());

    let vda = std::fs::read_to_string("/sys/block/vda/dev").ok();
    // A blkio weight needs BFQ (or CFQ) on some disk of the host; without it the
    // weight is refused, as runc refuses it.
    let blkio_dir = dir_of("blkio");
    let has_weight = ["blkio.bfq.weight", "blkio.weight"]
        .iter()
        .any(|f| blkio_dir.join(f).exists());
    if !has_weight {
        eprintln!("v1_lifecycle_on_this_host: no blkio weight file (no BFQ here): weight checked as refused");
        let weighted: spec::Resources =
            serde_json::from_value(serde_json::json!({"blockIO": {"weight": 300}}))
                .expect("resources");
        let err = cg
            .apply(&weighted)
            .expect_err("a weight without BFQ is refused");
        assert!(err.to_string().contains("blockIO.weight"), "{err}");
    }
    let mut resources: spec::Resources = serde_json::from_value(serde_json::json!({
        "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 7, "access": "r"}],
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728, "swappiness": 10, "kernel": 1000000},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
        "blockIO": if has_weight { serde_json::json!({"weight": 300}) } else { serde_json::json!({}) },
    }))
    .expect("resources");
    if let Some(dev) = &vda {
        let (major, minor) = dev.trim().split_once(':').expect("major:minor");
        resources
            .block_io
            .as_mut()
            .expect("blockIO")
            .throttle_read_bps_device = vec![spec::ThrottleDevice {
            major: major.parse().expect("major"),
            minor: minor.parse().expect("minor"),
            rate: 1_048_576,
        }];
    }
    if hybrid_hugetlb() {
        resources.hugepage_limits = vec![spec::HugepageLimit {
            page_size: "2MB".into(),
            limit: 4_194_304,
        }];
    }
    cg.apply(&resources).expect("apply");
    // Applying again is harmless (update passes the full set).
    cg.apply(&resources).expect("apply again");

    let mem = dir_of("memory");
    assert_eq!(read(mem.join("memory.limit_in_bytes")), "67108864");
    assert_eq!(read(mem.join("memory.soft_limit_in_bytes")), "33554432");
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(read(mem.join("memory.memsw.limit_in_bytes")), "134217728");
    }
    assert_eq!(read(mem.join("memory.swappiness")), "10");
    if mem.join("memory.kmem.limit_in_bytes").exists() {
        // Ignored, as runc 1.1 does, with a warning.
        assert_ne!(read(mem.join("memory.kmem.limit_in_bytes")), "1000000");
    }
    assert!(cg.warnings(&resources).iter().any(|w| w.contains("kernel")));
    let cpu = dir_of("cpu");
    assert_eq!(read(cpu.join("cpu.shares")), "512");
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(cpuset.join("cpuset.cpus")), "0");
    assert_eq!(read(dir_of("pids").join("pids.max")), "42");
    let blkio = dir_of("blkio");
    if blkio.join("blkio.bfq.weight").exists() {
        assert!(read(blkio.join("blkio.bfq.weight")).ends_with("300"));
    }
    if let Some(dev) = &vda {
        assert_eq!(
            read(blkio.join("blkio.throttle.read_bps_device")),
            format!("{} 1048576", dev.trim())
        );
    }
    let list = read(dir_of("devices").join("devices.list"));
    assert!(list.contains("c 1:3 rwm"), "{list}");
    assert!(list.contains("b 7:* r"), "{list}");
    assert!(!list.contains("a *:* rwm"), "{list}");
    if !resources.hugepage_limits.is_empty() {
        let u = cg
            .dirs()
            .into_iter()
            .find(|d| d.starts_with(UNIFIED_HYBRID))
            .expect("unified dir");
        assert_eq!(read(u.join("hugetlb.2MB.max")), "4194304");
    }

    // A process in it, restricted by the device rules.
    let (child, mut out) = spawn_gated();
    let pid = child.id();
    guard.children.push(child);
    let cg = &guard.cgroup;
    cg.add_process(pid as i32).expect("add_process");
    assert!(cg.pids().expect("pids").contains(&(pid as i32)));
    let own = proc_cgroup(pid);
    assert!(own.contains(&format!(":memory:{path}\n")), "{own}");
    assert!(own.contains(&format!("name=systemd:{path}\n")), "{own}");
    if Path::new(UNIFIED_HYBRID).exists() {
        assert!(own.contains(&format!("0::{path}\n")), "{own}");
    }
    let child = guard.children.last_mut().expect("child");
    let lines = release_and_read(child, &mut out);
    assert_eq!(lines, ["kmsg-denied", "null-open", "busy-done"]);

    let cg = &guard.cgroup;
    let stats = cg.stats().expect("stats");
    assert_eq!(stats["pids"]["current"], 1, "{stats}");
    assert_eq!(stats["pids"]["limit"], 42);
    assert!(
        stats["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert!(stats["cpu"]["usage"]["percpu"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    assert!(stats["cpu"]["usage"]["kernel"].is_u64());
    assert_eq!(stats["memory"]["usage"]["limit"], 67_108_864u64);
    assert!(
        stats["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert!(stats["memory"]["raw"]["rss"].is_u64(), "{stats}");
    assert_eq!(stats["cpuset"]["cpus"], serde_json::json!([0]));
    if !resources.hugepage_limits.is_empty() {
        assert!(stats["hugetlb"]["2MB"]["failcnt"].is_u64(), "{stats}");
    }

    // Freeze and thaw.
    assert!(!cg.is_frozen().expect("is_frozen"));
    cg.freeze().expect("freeze");
    assert!(cg.is_frozen().expect("is_frozen"));
    assert_eq!(read(dir_of("freezer").join("freezer.state")), "FROZEN");
    cg.thaw().expect("thaw");
    assert!(!cg.is_frozen().expect("is_frozen"));

    // The same cgroup, reopened from stored state.
    let again = open_existing(cg.path()).expect("open_existing");
    assert_eq!(again.dirs(), cg.dirs());
    let exact = open_existing_paths(&cg.paths()).expect("open_existing_paths");
    assert_eq!(exact.dirs(), cg.dirs());
    assert_eq!(exact.pids().expect("pids"), vec![pid as i32]);

    // destroy needs the processes gone; with one inside it fails and says where.
    assert!(cg.destroy().is_err());
    for c in &mut guard.children {
        c.kill().expect("kill");
        c.wait().expect("wait");
    }
    guard.children.clear();
    let cg = &guard.cgroup;
    wait_until("empty cgroup", || {
        cg.pids().map(|p| p.is_empty()).unwrap_or(false)
    });
    cg.destroy().expect("destroy");
    cg.destroy().expect("destroy is idempotent");
    assert!(cg.stats().is_err(), "stats of a removed cgroup");
    assert_eq!(
        cg.pids().expect("pids of a removed cgroup"),
        Vec::<i32>::new()
    );
    for dir in cg.dirs() {
        assert!(!dir.exists(), "{} still exists", dir.display());
    }
    let parents = guard.parents.clone();
    drop(guard);
    for p in parents {
        assert!(!p.exists(), "{} still exists", p.display());
    }
}

#[test]
fn v1_errors_name_the_field() {
    if !is_root() || host_version().ok() != Some(Version::V1) {
        eprintln!("skipped: needs root on a cgroup v1 host");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = unique("/pier-test");
    let guard = Guard::new(open(Some(&path), "x", false).expect("open"), 0);
    let cg = &guard.cgroup;
    cg.create().expect("create");

    let mut r = spec::Resources::default();
    r.unified.insert("memory.high".into(), "1".into());
    let e = cg.apply(&r).unwrap_err().to_string();
    assert!(
        e.contains("linux.resources.unified") && e.contains("memory.high"),
        "{e}"
    );

    let r: spec::Resources = serde_json::from_value(
        serde_json::json!({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}),
    )
    .expect("resources");
    let e = cg.apply(&r).unwrap_err().to_string();
    assert!(
        e.contains("hugepageLimits[0].pageSize") && e.contains("3MB"),
        "{e}"
    );

    let r: spec::Resources = serde_json::from_value(
        serde_json::json!({"devices": [{"allow": true, "type": "x", "access": "r"}]}),
    )
    .expect("resources");
    let e = cg.apply(&r).unwrap_err().to_string();
    assert!(e.contains("linux.resources.devices[0]"), "{e}");

    let r: spec::Resources =
        serde_json::from_value(serde_json::json!({"cpu": {"shares": 1}})).expect("resources");
    let e = cg.apply(&r).unwrap_err().to_string();
    assert!(e.contains("minimum allowed cpu-shares is 2"), "{e}");

    // A memory limit the kernel refuses: the message names file and value.
    let r: spec::Resources =
        serde_json::from_value(serde_json::json!({"memory": {"limit": -5}})).expect("resources");
    let e = cg.apply(&r).unwrap_err().to_string();
    assert!(
        e.starts_with("cgroup: write -5 to /sys/fs/cgroup/memory"),
        "{e}"
    );
    assert!(e.contains("memory.limit_in_bytes: "), "{e}");
}

#[test]
fn v1_relative_path_follows_own_cgroups() {
    if !is_root() || host_version().ok() != Some(Version::V1) {
        eprintln!("skipped: needs root on a cgroup v1 host");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = unique("pier-test-rel");
    let guard = Guard::new(open(Some(&name), "x", false).expect("open"), 0);
    let cg = &guard.cgroup;
    let own = mountinfo::read_own_cgroups().expect("own cgroups");
    for (hierarchy, path) in cg.paths() {
        let controllers: Vec<String> = if hierarchy == "unified" {
            Vec::new()
        } else {
            hierarchy.split(',').map(str::to_string).collect()
        };
        let mine = own
            .iter()
            .find(|m| {
                let a: BTreeSet<_> = m.controllers.iter().collect();
                let b: BTreeSet<_> = controllers.iter().collect();
                a == b
            })
            .map(|m| m.path.clone())
            .unwrap_or_else(|| "/".into());
        assert_eq!(path, clean_path(&format!("{mine}/{name}")), "{hierarchy}");
    }
    // Stored and reopened by path() alone, whether or not the hierarchies agree.
    let paths = cg.paths();
    let uniform = paths.values().all(|p| Some(p) == paths.values().next());
    assert_eq!(cg.path().starts_with('{'), !uniform, "{}", cg.path());
    let reopened = open_existing(cg.path()).expect("open_existing");
    assert_eq!(reopened.dirs(), cg.dirs());
    assert_eq!(reopened.path(), cg.path());
    cg.create().expect("create");
    let mut sleeper = spawn_sleep();
    let pid = sleeper.id() as i32;
    let added = cg.add_process(pid);
    let listed = cg.pids();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    added.expect("add_process");
    assert!(listed.expect("pids").contains(&pid));
    wait_until("empty cgroup", || {
        cg.pids().map(|p| p.is_empty()).unwrap_or(false)
    });
    cg.destroy().expect("destroy");
    assert!(cg.dirs().iter().all(|d| !d.exists()));
}

/// The v2 code against a cgroup2 mount: /sys/fs/cgroup on a v2 host, the hybrid
/// host's /sys/fs/cgroup/unified otherwise (only hugetlb there, but membership, freeze
/// and the BPF device filter work on any cgroup2 mount).
#[test]
fn v2_lifecycle_on_a_cgroup2_mount() {
    let mount = match host_version() {
        Ok(Version::V2) => PathBuf::from(CGROUP_ROOT),
        _ => PathBuf::from(UNIFIED_HYBRID),
    };
    if !is_root() || !mount.join("cgroup.controllers").exists() {
        eprintln!("skipped: needs root and a cgroup2 mount");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let top = unique("/pier-test-v2");
    let path = format!("{top}/c1");
    let v2 = V2::new(&mount, &path).expect("V2::new");
    let dir = v2.dir().to_path_buf();
    let mut guard = Guard::new(Box::new(v2), 1);
    let cg = &guard.cgroup;
    assert_eq!(cg.version(), Version::V2);
    cg.create().expect("create");
    cg.create().expect("create is idempotent");
    assert!(dir.is_dir());

    let mut resources: spec::Resources = serde_json::from_value(serde_json::json!({
        "devices": [{"allow": false, "access": "rwm"}]
    }))
    .expect("resources");
    let root_controllers = read(mount.join("cgroup.controllers"));
    let hugetlb = root_controllers.split_whitespace().any(|c| c == "hugetlb")
        && hugepage_sizes().iter().any(|s| s == "2MB");
    if hugetlb {
        resources.hugepage_limits = vec![spec::HugepageLimit {
            page_size: "2MB".into(),
            limit: 4_194_304,
        }];
        resources
            .unified
            .insert("hugetlb.1GB.max".into(), "0".into());
    }
    let has = |c: &str| root_controllers.split_whitespace().any(|x| x == c);
    if has("pids") {
        resources.pids = Some(spec::Pids { limit: 42 });
    }
    if has("memory") {
        resources.memory = Some(spec::Memory {
            limit: Some(67_108_864),
            ..Default::default()
        });
    }
    if has("cpu") {
        resources.cpu = Some(spec::Cpu {
            shares: Some(1024),
            quota: Some(50_000),
            ..Default::default()
        });
    }
    cg.apply(&resources).expect("apply");
    assert_eq!(devices::attached_device_programs(&dir).expect("query"), 1);
    // update replaces the filter instead of stacking another one.
    cg.apply(&resources).expect("apply again");
    assert_eq!(devices::attached_device_programs(&dir).expect("query"), 1);
    if hugetlb {
        assert_eq!(read(dir.join("hugetlb.2MB.max")), "4194304");
    }
    if has("pids") {
        assert_eq!(read(dir.join("pids.max")), "42");
    }
    if has("memory") {
        assert_eq!(read(dir.join("memory.max")), "67108864");
    }
    if has("cpu") {
        assert_eq!(read(dir.join("cpu.weight")), "39");
        assert_eq!(read(dir.join("cpu.max")), "50000 100000");
    }
    // A controller this mount lacks: the error names the field.
    if !has("memory") {
        let r = spec::Resources {
            memory: Some(spec::Memory {
                limit: Some(1 << 26),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = cg.apply(&r).unwrap_err().to_string();
        assert!(
            e.contains("linux.resources.memory") && e.contains("not available"),
            "{e}"
        );
    }

    let (child, mut out) = spawn_gated();
    let pid = child.id();
    guard.children.push(child);
    let cg = &guard.cgroup;
    cg.add_process(pid as i32).expect("add_process");
    assert_eq!(cg.pids().expect("pids"), vec![pid as i32]);
    assert!(proc_cgroup(pid).contains(&format!("0::{path}\n")));
    let child = guard.children.last_mut().expect("child");
    // The eBPF filter denies /dev/kmsg and allows /dev/null.
    assert_eq!(
        release_and_read(child, &mut out),
        ["kmsg-denied", "null-open", "busy-done"]
    );

    let cg = &guard.cgroup;
    let stats = cg.stats().expect("stats");
    assert!(
        stats["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert!(stats["cpu"]["usage"]["user"].is_u64());
    if hugetlb {
        assert!(stats["hugetlb"]["2MB"]["failcnt"].is_u64(), "{stats}");
    }

    assert!(!cg.is_frozen().expect("is_frozen"));
    cg.freeze().expect("freeze");
    assert!(cg.is_frozen().expect("is_frozen"));
    assert!(read(dir.join("cgroup.events")).contains("frozen 1"));
    cg.thaw().expect("thaw");
    assert!(!cg.is_frozen().expect("is_frozen"));
    wait_until("thawed", || {
        read(dir.join("cgroup.events")).contains("frozen 0")
    });

    for c in &mut guard.children {
        c.kill().expect("kill");
        c.wait().expect("wait");
    }
    guard.children.clear();
    let cg = &guard.cgroup;
    wait_until("empty cgroup", || {
        cg.pids().map(|p| p.is_empty()).unwrap_or(false)
    });
    cg.destroy().expect("destroy");
    assert!(!dir.exists());
    let parents = guard.parents.clone();
    drop(guard);
    for p in parents {
        assert!(!p.exists(), "{} still exists", p.display());
    }
}

#[test]
fn bpf_filter_loads_in_the_kernel() {
    // The verifier accepts programs of every shape we generate.
    let mount = match host_version() {
        Ok(Version::V2) => PathBuf::from(CGROUP_ROOT),
        _ => PathBuf::from(UNIFIED_HYBRID),
    };
    if !is_root() || !mount.join("cgroup.controllers").exists() {
        eprintln!("skipped: needs root and a cgroup2 mount");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let v2 = V2::new(&mount, &unique("/pier-test-bpf")).expect("V2::new");
    let dir = v2.dir().to_path_buf();
    let guard = Guard::new(Box::new(v2), 0);
    guard.cgroup.create().expect("create");
    let rule = |allow: bool, kind: &str, major: Option<i64>, minor: Option<i64>, access: &str| {
        spec::DeviceRule {
            allow,
            kind: Some(kind.into()),
            major,
            minor,
            access: Some(access.into()),
        }
    };
    let sets = [
        vec![],
        vec![rule(true, "a", None, None, "rwm")],
        vec![
            rule(true, "a", None, None, "rwm"),
            rule(false, "c", Some(1), Some(3), "w"),
        ],
        vec![
            rule(false, "a", None, None, "rwm"),
            rule(true, "b", Some(8), None, "r"),
            rule(false, "c", None, Some(5), "m"),
            rule(true, "c", Some(4095), Some(1_048_575), "rw"),
        ],
    ];
    for set in sets {
        let r = spec::Resources {
            devices: set,
            ..Default::default()
        };
        guard.cgroup.apply(&r).expect("apply");
        assert_eq!(devices::attached_device_programs(&dir).expect("query"), 1);
    }
}
