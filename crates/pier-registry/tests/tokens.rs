//! Docker-style bearer tokens served by pier-registry itself: the challenge, the token
//! endpoint with htpasswd users and anonymous access, per-repository pull/push/delete
//! scopes from the access file, 401 for missing, forged and expired tokens, 403 for a
//! missing scope (storing nothing), and a signing key that persists across restarts.

mod common;

use base64::Engine as _;
use common::*;

const ACCESS: &str = r#"{"rules": [
  {"account": "alice", "repository": "team/*", "actions": ["pull", "push", "delete"]},
  {"account": "alice", "repository": "registry:catalog", "actions": ["*"]},
  {"account": "bob", "repository": "team/*", "actions": ["pull"]},
  {"account": "*", "repository": "shared", "actions": ["pull", "push"]},
  {"account": "", "repository": "public/*", "actions": ["pull"]}
]}"#;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let users = format!(
            "alice:{}\nbob:{}\n",
            bcrypt::hash("alice-pw", 4).unwrap(),
            bcrypt::hash("bob-pw", 4).unwrap()
        );
        std::fs::write(dir.path().join("htpasswd"), users).unwrap();
        std::fs::write(dir.path().join("access.json"), ACCESS).unwrap();
        Setup { dir }
    }

    fn args(&self) -> Vec<String> {
        let p = |f: &str| self.dir.path().join(f).to_string_lossy().into_owned();
        vec![
            "--htpasswd".into(),
            p("htpasswd"),
            "--token-access".into(),
            p("access.json"),
        ]
    }
}

fn start(setup: &Setup, extra: &[&str]) -> Registry {
    let mut args = setup.args();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Registry::pier(&args)
}

/// A token from the registry's endpoint for `scope`, as `user` (or anonymously).
fn token(r: &Registry, user: Option<(&str, &str)>, scope: &str) -> String {
    let auth = user.map(|(u, p)| basic(u, p));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let resp = r.call(
        "GET",
        &format!("/token?service=pier-registry&scope={scope}"),
        &headers,
        b"",
    );
    resp.expect(200, None);
    let body = resp.json();
    assert_eq!(body["token"], body["access_token"]);
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    body["token"].as_str().unwrap().to_string()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn bearer_tokens_grant_per_repository_scopes() {
    let setup = Setup::new();
    let mut r = start(&setup, &[]);
    let origin = format!("http://{}", r.addr);

    let base = r.call("GET", "/v2/", &[], b"");
    base.expect(401, Some("UNAUTHORIZED"));
    assert_eq!(
        base.header("www-authenticate"),
        Some(format!("Bearer realm=\"{origin}/token\",service=\"pier-registry\"").as_str())
    );
    let upload = r.call("POST", "/v2/team/app/blobs/uploads/", &[], b"");
    upload.expect(401, Some("UNAUTHORIZED"));
    assert_eq!(
        upload.header("www-authenticate"),
        Some(format!("Bearer realm=\"{origin}/token\",service=\"pier-registry\",scope=\"repository:team/app:pull,push\"").as_str())
    );

    // A Host header that is no host[:port] does not shape the challenge.
    let odd = r.call("GET", "/v2/", &[("Host", "evil\",scope=\"x")], b"");
    assert_eq!(
        odd.header("www-authenticate"),
        Some("Bearer realm=\"http://localhost/token\",service=\"pier-registry\"")
    );

    // alice pushes to team/*.
    let alice = token(
        &r,
        Some(("alice", "alice-pw")),
        "repository:team/app:pull,push",
    );
    let c = claims(&alice);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["aud"], "pier-registry");
    assert_eq!(
        c["access"],
        serde_json::json!([{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}])
    );
    r.authorization = Some(bearer(&alice));
    let (_, digest) = r.push_image("team/app", "v1", "tokens");
    r.call("GET", "/v2/", &[], b"").expect(200, None);
    // Deleting needs the delete action, which this token lacks.
    r.call(
        "DELETE",
        &format!("/v2/team/app/manifests/{digest}"),
        &[],
        b"",
    )
    .expect(403, Some("DENIED"));
    // The token is for team/app only.
    r.call("POST", "/v2/team/other/blobs/uploads/", &[], b"")
        .expect(403, Some("DENIED"));

    // bob may only pull: his push is denied and leaves nothing behind.
    let bob = token(&r, Some(("bob", "bob-pw")), "repository:team/app:pull,push");
    assert_eq!(
        claims(&bob)["access"][0]["actions"],
        serde_json::json!(["pull"])
    );
    r.authorization = Some(bearer(&bob));
    r.call("GET", "/v2/team/app/manifests/v1", &[], b"")
        .expect(200, None);
    let data = b"bob's blob";
    r.call(
        "POST",
        &format!("/v2/team/app/blobs/uploads/?digest={}", sha256(data)),
        &[],
        data,
    )
    .expect(403, Some("DENIED"));
    r.put_manifest("team/app", "bob", OCI_MANIFEST, b"{}")
        .expect(403, Some("DENIED"));
    assert_eq!(
        std::fs::read_dir(r.root().join("uploads")).unwrap().count(),
        0
    );
    assert!(!r.root().join("repos/team/app/_manifests/tags/bob").exists());

    // Mounting needs pull on the source: a token for `shared` alone opens an upload.
    let layer_digest = r.call("GET", "/v2/team/app/manifests/v1", &[], b"").json()["layers"][0]
        ["digest"]
        .as_str()
        .unwrap()
        .to_string();
    r.authorization = Some(bearer(&token(
        &r,
        Some(("bob", "bob-pw")),
        "repository:shared:pull,push",
    )));
    let mount = r.call(
        "POST",
        &format!("/v2/shared/blobs/uploads/?mount={layer_digest}&from=team/app"),
        &[],
        b"",
    );
    mount.expect(202, None);
    let both = "repository:shared:pull,push&scope=repository:team/app:pull";
    r.authorization = Some(bearer(&token(&r, Some(("bob", "bob-pw")), both)));
    let mount = r.call(
        "POST",
        &format!("/v2/shared/blobs/uploads/?mount={layer_digest}&from=team/app"),
        &[],
        b"",
    );
    mount.expect(201, None);

    // Anonymous clients get what the "" rules give: public/* pulls, nothing else.
    let anonymous = token(&r, None, "repository:team/app:pull");
    assert_eq!(claims(&anonymous)["access"], serde_json::json!([]));
    r.authorization = Some(bearer(&anonymous));
    r.call("GET", "/v2/team/app/manifests/v1", &[], b"")
        .expect(403, Some("DENIED"));

    // Wrong credentials at the token endpoint.
    let wrong = r.call(
        "GET",
        "/token?service=pier-registry&scope=repository:team/app:pull",
        &[("Authorization", &basic("alice", "nope"))],
        b"",
    );
    wrong.expect(401, Some("UNAUTHORIZED"));

    // A token whose claims were changed no longer verifies.
    let mut parts: Vec<String> = bob.split('.').map(str::to_string).collect();
    let mut forged = claims(&bob);
    forged["access"][0]["actions"] = serde_json::json!(["pull", "push", "delete"]);
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    r.authorization = Some(bearer(&parts.join(".")));
    let resp = r.call("GET", "/v2/team/app/manifests/v1", &[], b"");
    resp.expect(401, Some("UNAUTHORIZED"));
    assert!(resp
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));

    // Catalog needs registry:catalog.
    r.authorization = Some(bearer(&token(
        &r,
        Some(("bob", "bob-pw")),
        "registry:catalog:*",
    )));
    r.call("GET", "/v2/_catalog", &[], b"")
        .expect(403, Some("DENIED"));
    r.authorization = Some(bearer(&token(
        &r,
        Some(("alice", "alice-pw")),
        "registry:catalog:*",
    )));
    assert_eq!(
        r.call("GET", "/v2/_catalog", &[], b"").json()["repositories"],
        serde_json::json!(["shared", "team/app"])
    );

    // The signing key is kept (0600) and tokens outlive a restart.
    let key = r.root().join("token-key.pem");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let alice_delete = token(
        &r,
        Some(("alice", "alice-pw")),
        "repository:team/app:delete",
    );
    let dir = r.into_dir();
    let args = setup.args();
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut r = Registry::pier_in(dir, &args_ref);
    r.authorization = Some(bearer(&alice_delete));
    r.call(
        "DELETE",
        &format!("/v2/team/app/manifests/{digest}"),
        &[],
        b"",
    )
    .expect(202, None);
}

#[test]
fn expired_tokens_are_refused() {
    let setup = Setup::new();
    let mut r = start(&setup, &["--token-expiry", "1"]);
    let t = token(
        &r,
        Some(("alice", "alice-pw")),
        "repository:team/app:pull,push",
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    r.authorization = Some(bearer(&t));
    let resp = r.call("POST", "/v2/team/app/blobs/uploads/", &[], b"");
    resp.expect(401, Some("UNAUTHORIZED"));
    assert!(resp
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
    assert_eq!(
        std::fs::read_dir(r.root().join("uploads")).unwrap().count(),
        0
    );
}
