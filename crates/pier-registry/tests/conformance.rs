//! Pier's conformance suite for the OCI distribution spec 1.1, written from the spec,
//! grouped as the spec groups it: pull, push, content discovery, content management.
//! Every test runs against pier-registry and, when installed, Debian's
//! `docker-registry` (distribution 2.8). Where distribution deviates from the spec the
//! deviation is asserted explicitly (`Impl::Distribution` arms) and listed in
//! docs/REGISTRY.md.

mod common;

use common::*;

fn manifest_path(repo: &str, reference: &str) -> String {
    format!("/v2/{repo}/manifests/{reference}")
}

// ---------------------------------------------------------------- base

#[test]
fn base_endpoint_answers_200_with_api_version() {
    for r in Registry::both("base_endpoint_answers_200_with_api_version") {
        let resp = r.call("GET", "/v2/", &[], b"");
        resp.expect(200, None);
        assert_eq!(
            resp.header("docker-distribution-api-version"),
            Some("registry/2.0"),
            "{:?}",
            r.kind
        );
    }
}

// ---------------------------------------------------------------- pull

#[test]
fn pull_blob_head_get_and_ranges() {
    for r in Registry::both("pull_blob_head_get_and_ranges") {
        let data = b"0123456789abcdef";
        let digest = r.push_blob("pull/blob", data);
        let path = format!("/v2/pull/blob/blobs/{digest}");

        let head = r.call("HEAD", &path, &[], b"");
        head.expect(200, None);
        assert_eq!(head.header("content-length"), Some("16"));
        assert_eq!(head.header("docker-content-digest"), Some(digest.as_str()));
        assert!(head.body.is_empty());

        let get = r.call("GET", &path, &[], b"");
        get.expect(200, None);
        assert_eq!(get.body, data);
        assert_eq!(get.header("docker-content-digest"), Some(digest.as_str()));

        let part = r.call("GET", &path, &[("Range", "bytes=2-5")], b"");
        part.expect(206, None);
        assert_eq!(part.body, b"2345");
        assert_eq!(part.header("content-range"), Some("bytes 2-5/16"));
        let suffix = r.call("GET", &path, &[("Range", "bytes=-3")], b"");
        suffix.expect(206, None);
        assert_eq!(suffix.body, b"def");
        let open = r.call("GET", &path, &[("Range", "bytes=14-")], b"");
        open.expect(206, None);
        assert_eq!(open.body, b"ef");

        let beyond = r.call("GET", &path, &[("Range", "bytes=100-200")], b"");
        assert_eq!(beyond.status, 416, "{:?}", r.kind);
        assert_eq!(
            beyond.header("content-range"),
            Some("bytes */16"),
            "{:?}",
            r.kind
        );

        let unknown = format!("/v2/pull/blob/blobs/{}", sha256(b"nothing"));
        r.call("GET", &unknown, &[], b"")
            .expect(404, Some("BLOB_UNKNOWN"));
        let head_unknown = r.call("HEAD", &unknown, &[], b"");
        assert_eq!(head_unknown.status, 404);
        // Blobs are repository-scoped: the same content is unknown to another repository.
        r.call("GET", &format!("/v2/pull/other/blobs/{digest}"), &[], b"")
            .expect(404, Some("BLOB_UNKNOWN"));
        r.call("GET", "/v2/pull/blob/blobs/sha256:nothex", &[], b"")
            .expect(400, Some("DIGEST_INVALID"));
    }
}

#[test]
fn pull_manifest_by_tag_and_by_digest() {
    for r in Registry::both("pull_manifest_by_tag_and_by_digest") {
        let (manifest, digest) = r.push_image("pull/man", "v1", "a");
        for reference in ["v1", digest.as_str()] {
            let get = r.call(
                "GET",
                &manifest_path("pull/man", reference),
                &[("Accept", OCI_MANIFEST)],
                b"",
            );
            get.expect(200, None);
            assert_eq!(get.body, manifest);
            assert_eq!(get.header("content-type"), Some(OCI_MANIFEST));
            assert_eq!(get.header("docker-content-digest"), Some(digest.as_str()));
            let head = r.call(
                "HEAD",
                &manifest_path("pull/man", reference),
                &[("Accept", OCI_MANIFEST)],
                b"",
            );
            head.expect(200, None);
            assert_eq!(
                head.header("content-length"),
                Some(manifest.len().to_string().as_str())
            );
            assert_eq!(head.header("docker-content-digest"), Some(digest.as_str()));
        }
        r.call("GET", &manifest_path("pull/man", "nope"), &[], b"")
            .expect(404, Some("MANIFEST_UNKNOWN"));
        r.call("GET", &manifest_path("pull/man", &sha256(b"x")), &[], b"")
            .expect(404, Some("MANIFEST_UNKNOWN"));
        assert_eq!(
            r.call("HEAD", &manifest_path("pull/man", "nope"), &[], b"")
                .status,
            404
        );
        r.call("GET", &manifest_path("pull/never", "v1"), &[], b"")
            .expect(404, Some("MANIFEST_UNKNOWN"));
    }
}

#[test]
fn pull_docker_schema2_and_manifest_list() {
    for r in Registry::both("pull_docker_schema2_and_manifest_list") {
        let config = br#"{"architecture":"arm64","os":"linux"}"#;
        let layer = b"docker layer";
        let c = r.push_blob("pull/docker", config);
        let l = r.push_blob("pull/docker", layer);
        let m = image_manifest(
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            (&c, config.len()),
            &[(&l, layer.len())],
            None,
        );
        let md = sha256(&m);
        r.put_manifest("pull/docker", "arm", DOCKER_MANIFEST, &m)
            .expect(201, None);
        let list = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": md, "size": m.len(),
                           "platform": {"architecture": "arm64", "os": "linux"}}],
        }))
        .unwrap();
        let put = r.put_manifest("pull/docker", "multi", DOCKER_LIST, &list);
        put.expect(201, None);
        assert_eq!(
            put.header("docker-content-digest"),
            Some(sha256(&list).as_str())
        );
        let accept = [("Accept", DOCKER_MANIFEST), ("Accept", DOCKER_LIST)];
        let got = r.call("GET", &manifest_path("pull/docker", "multi"), &accept, b"");
        got.expect(200, None);
        assert_eq!(got.header("content-type"), Some(DOCKER_LIST));
        assert_eq!(got.body, list);
        let got = r.call("GET", &manifest_path("pull/docker", "arm"), &accept, b"");
        assert_eq!(got.header("content-type"), Some(DOCKER_MANIFEST));
    }
}

// ---------------------------------------------------------------- push

#[test]
fn push_monolithic_post_then_put() {
    for r in Registry::both("push_monolithic_post_then_put") {
        let data = b"monolithic";
        let digest = sha256(data);
        let start = r.call("POST", "/v2/push/mono/blobs/uploads/", &[], b"");
        start.expect(202, None);
        assert!(start.header("docker-upload-uuid").is_some());
        let location = start.header("location").expect("Location").to_string();
        let put = r.call(
            "PUT",
            &with_query(&location, &format!("digest={digest}")),
            &[],
            data,
        );
        put.expect(201, None);
        assert_eq!(put.header("docker-content-digest"), Some(digest.as_str()));
        assert_eq!(
            path_of(put.header("location").unwrap()),
            format!("/v2/push/mono/blobs/{digest}")
        );
        assert_eq!(
            r.call("GET", &format!("/v2/push/mono/blobs/{digest}"), &[], b"")
                .body,
            data
        );
    }
}

#[test]
fn push_single_post_with_digest() {
    for r in Registry::both("push_single_post_with_digest") {
        let data = b"single post";
        let digest = sha256(data);
        let resp = r.call(
            "POST",
            &format!("/v2/push/single/blobs/uploads/?digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            data,
        );
        match r.kind {
            Impl::Pier => {
                resp.expect(201, None);
                assert_eq!(resp.header("docker-content-digest"), Some(digest.as_str()));
                assert_eq!(
                    r.call("GET", &format!("/v2/push/single/blobs/{digest}"), &[], b"")
                        .body,
                    data
                );
            }
            // Deviation: distribution ignores `digest` on POST and opens a session.
            Impl::Distribution => {
                resp.expect(202, None);
                assert_eq!(
                    r.call("HEAD", &format!("/v2/push/single/blobs/{digest}"), &[], b"")
                        .status,
                    404
                );
            }
        }
    }
}

#[test]
fn push_chunked_with_status_and_out_of_order_416() {
    for r in Registry::both("push_chunked_with_status_and_out_of_order_416") {
        let data = b"chunk-one|chunk-two|three";
        let digest = sha256(data);
        let start = r.call("POST", "/v2/push/chunked/blobs/uploads/", &[], b"");
        start.expect(202, None);
        let mut location = start.header("location").unwrap().to_string();
        let mut offset = 0;
        for chunk in [&data[..10], &data[10..20]] {
            let range = format!("{}-{}", offset, offset + chunk.len() - 1);
            let resp = r.call(
                "PATCH",
                &path_of(&location),
                &[
                    ("Content-Range", &range),
                    ("Content-Type", "application/octet-stream"),
                ],
                chunk,
            );
            resp.expect(202, None);
            offset += chunk.len();
            assert_eq!(
                resp.header("range"),
                Some(format!("0-{}", offset - 1).as_str())
            );
            assert!(resp.header("docker-upload-uuid").is_some());
            location = resp.header("location").unwrap().to_string();
        }
        let status = r.call("GET", &path_of(&location), &[], b"");
        status.expect(204, None);
        assert_eq!(status.header("range"), Some("0-19"));
        assert!(status.header("location").is_some());

        // A chunk that does not start where the data ends.
        let bad = r.call(
            "PATCH",
            &path_of(&location),
            &[
                ("Content-Range", "25-29"),
                ("Content-Type", "application/octet-stream"),
            ],
            b"xxxxx",
        );
        match r.kind {
            Impl::Pier => {
                bad.expect(416, Some("RANGE_INVALID"));
                assert_eq!(bad.header("range"), Some("0-19"));
                assert!(bad.header("location").is_some());
            }
            // Deviation: distribution 2.8 ignores Content-Range on PATCH and appends
            // the chunk wherever the data ends.
            Impl::Distribution => {
                bad.expect(202, None);
                assert_eq!(bad.header("range"), Some("0-24"));
                continue;
            }
        }
        // The upload is intact: the last chunk completes it.
        let status = r.call("GET", &path_of(&location), &[], b"");
        status.expect(204, None);
        assert_eq!(status.header("range"), Some("0-19"));
        let last = &data[20..];
        let put = r.call(
            "PUT",
            &with_query(&location, &format!("digest={digest}")),
            &[
                ("Content-Range", "20-24"),
                ("Content-Type", "application/octet-stream"),
            ],
            last,
        );
        put.expect(201, None);
        assert_eq!(
            r.call("GET", &format!("/v2/push/chunked/blobs/{digest}"), &[], b"")
                .body,
            data
        );
    }
}

#[test]
fn push_streamed_patch_without_range() {
    for r in Registry::both("push_streamed_patch_without_range") {
        let parts: [&[u8]; 3] = [b"streamed ", b"in three ", b"chunks"];
        let data = parts.concat();
        let digest = sha256(&data);
        let start = r.call("POST", "/v2/push/stream/blobs/uploads/", &[], b"");
        let location = start.header("location").unwrap().to_string();
        let patch = r.call_chunked(
            "PATCH",
            &path_of(&location),
            &[("Content-Type", "application/octet-stream")],
            &parts,
        );
        patch.expect(202, None);
        assert_eq!(
            patch.header("range"),
            Some(format!("0-{}", data.len() - 1).as_str())
        );
        let location = patch.header("location").unwrap().to_string();
        r.call(
            "PUT",
            &with_query(&location, &format!("digest={digest}")),
            &[],
            b"",
        )
        .expect(201, None);
        assert_eq!(
            r.call("GET", &format!("/v2/push/stream/blobs/{digest}"), &[], b"")
                .body,
            data
        );
    }
}

#[test]
fn push_with_wrong_or_missing_digest_is_digest_invalid() {
    for r in Registry::both("push_with_wrong_or_missing_digest_is_digest_invalid") {
        let start = r.call("POST", "/v2/push/bad/blobs/uploads/", &[], b"");
        let location = start.header("location").unwrap().to_string();
        let wrong = sha256(b"something else");
        r.call(
            "PUT",
            &with_query(&location, &format!("digest={wrong}")),
            &[],
            b"payload",
        )
        .expect(400, Some("DIGEST_INVALID"));
        assert_eq!(
            r.call("HEAD", &format!("/v2/push/bad/blobs/{wrong}"), &[], b"")
                .status,
            404
        );

        let start = r.call("POST", "/v2/push/bad/blobs/uploads/", &[], b"");
        let location = start.header("location").unwrap().to_string();
        let missing = r.call("PUT", &path_of(&location), &[], b"payload");
        missing.expect(400, Some("DIGEST_INVALID"));
    }
}

#[test]
fn upload_cancel_then_unknown() {
    for r in Registry::both("upload_cancel_then_unknown") {
        let start = r.call("POST", "/v2/push/cancel/blobs/uploads/", &[], b"");
        let location = start.header("location").unwrap().to_string();
        let patch = r.call(
            "PATCH",
            &path_of(&location),
            &[("Content-Type", "application/octet-stream")],
            b"data",
        );
        patch.expect(202, None);
        let location = patch.header("location").unwrap().to_string();
        r.call("DELETE", &path_of(&location), &[], b"")
            .expect(204, None);
        r.call("GET", &path_of(&location), &[], b"")
            .expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
        let unknown = "/v2/push/cancel/blobs/uploads/3f1b1d59-47a4-4b9e-8f53-2f0a5c8c9d11";
        // Deviation: distribution 2.8 wants its `_state` parameter on upload URLs and
        // calls an id without one BLOB_UPLOAD_INVALID (still 404).
        let code = match r.kind {
            Impl::Pier => "BLOB_UPLOAD_UNKNOWN",
            Impl::Distribution => "BLOB_UPLOAD_INVALID",
        };
        r.call("GET", unknown, &[], b"").expect(404, Some(code));
        r.call("PATCH", unknown, &[], b"x").expect(404, Some(code));
    }
}

#[test]
fn cross_repository_mount() {
    for r in Registry::both("cross_repository_mount") {
        let data = b"shared layer";
        let digest = r.push_blob("mount/source", data);
        let mounted = r.call(
            "POST",
            &format!("/v2/mount/target/blobs/uploads/?mount={digest}&from=mount/source"),
            &[],
            b"",
        );
        mounted.expect(201, None);
        assert_eq!(
            path_of(mounted.header("location").unwrap()),
            format!("/v2/mount/target/blobs/{digest}")
        );
        assert_eq!(
            mounted.header("docker-content-digest"),
            Some(digest.as_str())
        );
        assert_eq!(
            r.call("GET", &format!("/v2/mount/target/blobs/{digest}"), &[], b"")
                .body,
            data
        );

        // The source lacks the blob: an ordinary upload session instead.
        let other = sha256(b"not there");
        let fallback = r.call(
            "POST",
            &format!("/v2/mount/target/blobs/uploads/?mount={other}&from=mount/source"),
            &[],
            b"",
        );
        fallback.expect(202, None);
        assert!(fallback.header("location").is_some());

        // Without `from` (OCI 1.1): the registry may mount from anywhere.
        let no_from = r.call(
            "POST",
            &format!("/v2/mount/third/blobs/uploads/?mount={digest}"),
            &[],
            b"",
        );
        match r.kind {
            Impl::Pier => {
                no_from.expect(201, None);
                assert_eq!(
                    r.call("GET", &format!("/v2/mount/third/blobs/{digest}"), &[], b"")
                        .body,
                    data
                );
            }
            // Deviation: distribution 2.8 needs `from`; it opens an upload session.
            Impl::Distribution => {
                no_from.expect(202, None);
            }
        }
    }
}

#[test]
fn sha512_blobs_and_manifests() {
    for r in Registry::both("sha512_blobs_and_manifests") {
        let data = b"hashed with sha512";
        let digest = sha512(data);
        let start = r.call("POST", "/v2/push/sha512/blobs/uploads/", &[], b"");
        let location = start.header("location").unwrap().to_string();
        let put = r.call(
            "PUT",
            &with_query(&location, &format!("digest={digest}")),
            &[],
            data,
        );
        if r.kind == Impl::Distribution {
            // Deviation: distribution 2.8 takes a sha512 upload but stores and names
            // it by its sha256 digest.
            put.expect(201, None);
            assert_eq!(
                put.header("docker-content-digest"),
                Some(sha256(data).as_str())
            );
            continue;
        }
        put.expect(201, None);
        let get = r.call("GET", &format!("/v2/push/sha512/blobs/{digest}"), &[], b"");
        get.expect(200, None);
        assert_eq!(get.body, data);

        let (config, layer) = (r.push_blob("push/sha512", b"{}"), digest.clone());
        let m = image_manifest(
            OCI_MANIFEST,
            OCI_CONFIG,
            (&config, 2),
            &[(&layer, data.len())],
            None,
        );
        let md = sha512(&m);
        let put = r.put_manifest("push/sha512", &md, OCI_MANIFEST, &m);
        put.expect(201, None);
        assert_eq!(put.header("docker-content-digest"), Some(md.as_str()));
        let get = r.call(
            "GET",
            &manifest_path("push/sha512", &md),
            &[("Accept", OCI_MANIFEST)],
            b"",
        );
        get.expect(200, None);
        assert_eq!(get.body, m);
    }
}

#[test]
fn manifest_push_validation() {
    for r in Registry::both("manifest_push_validation") {
        let config = r.push_blob("push/valid", b"{}");
        let missing = sha256(b"missing layer");
        let m = image_manifest(
            OCI_MANIFEST,
            OCI_CONFIG,
            (&config, 2),
            &[(&missing, 13)],
            None,
        );
        r.put_manifest("push/valid", "v1", OCI_MANIFEST, &m)
            .expect(400, Some("MANIFEST_BLOB_UNKNOWN"));
        r.call("GET", &manifest_path("push/valid", "v1"), &[], b"")
            .expect(404, Some("MANIFEST_UNKNOWN"));

        r.put_manifest("push/valid", "v1", OCI_MANIFEST, b"{not json")
            .expect(400, Some("MANIFEST_INVALID"));

        let layer = r.push_blob("push/valid", b"layer");
        let good = image_manifest(OCI_MANIFEST, OCI_CONFIG, (&config, 2), &[(&layer, 5)], None);
        let wrong_digest = sha256(b"other");
        r.put_manifest("push/valid", &wrong_digest, OCI_MANIFEST, &good)
            .expect(400, Some("DIGEST_INVALID"));
        let put = r.put_manifest("push/valid", &sha256(&good), OCI_MANIFEST, &good);
        put.expect(201, None);
        assert_eq!(
            path_of(put.header("location").unwrap()),
            manifest_path("push/valid", &sha256(&good))
        );

        // An index whose child manifest is not in the repository.
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"no such manifest"), "size": 10}],
        }))
        .unwrap();
        let resp = r.put_manifest("push/valid", "idx", OCI_INDEX, &index);
        resp.expect(400, Some("MANIFEST_BLOB_UNKNOWN"));
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(&good), "size": good.len()}],
        }))
        .unwrap();
        r.put_manifest("push/valid", "idx", OCI_INDEX, &index)
            .expect(201, None);

        let invalid_name = r.put_manifest("push/Invalid", "v1", OCI_MANIFEST, &good);
        match r.kind {
            Impl::Pier => invalid_name.expect(400, Some("NAME_INVALID")),
            // Deviation: distribution's router does not match the name at all.
            Impl::Distribution => invalid_name.expect(404, None),
        };
        let invalid_tag = r.put_manifest("push/valid", "-bad", OCI_MANIFEST, &good);
        match r.kind {
            Impl::Pier => invalid_tag.expect(400, Some("TAG_INVALID")),
            Impl::Distribution => invalid_tag.expect(404, None),
        };
    }
}

#[test]
fn names_with_several_components() {
    for r in Registry::both("names_with_several_components") {
        let (m, d) = r.push_image("a/b/c/d", "latest", "deep");
        let get = r.call(
            "GET",
            &manifest_path("a/b/c/d", "latest"),
            &[("Accept", OCI_MANIFEST)],
            b"",
        );
        get.expect(200, None);
        assert_eq!(get.body, m);
        assert_eq!(get.header("docker-content-digest"), Some(d.as_str()));
        let tags = r.call("GET", "/v2/a/b/c/d/tags/list", &[], b"");
        assert_eq!(tags.json()["name"], "a/b/c/d");
    }
}

// ---------------------------------------------------------------- content discovery

#[test]
fn tags_list_with_pagination() {
    for r in Registry::both("tags_list_with_pagination") {
        for tag in ["v3", "v1", "latest", "v2"] {
            r.push_image("disc/tags", tag, "same");
        }
        let all = r.call("GET", "/v2/disc/tags/tags/list", &[], b"");
        all.expect(200, None);
        assert_eq!(
            all.json(),
            serde_json::json!({"name": "disc/tags", "tags": ["latest", "v1", "v2", "v3"]})
        );

        let page = r.call("GET", "/v2/disc/tags/tags/list?n=2", &[], b"");
        page.expect(200, None);
        if r.kind == Impl::Distribution {
            // Deviation: distribution 2.8 ignores `n` and `last` on tags lists.
            assert_eq!(
                page.json()["tags"],
                serde_json::json!(["latest", "v1", "v2", "v3"])
            );
            assert_eq!(page.header("link"), None);
            continue;
        }
        assert_eq!(page.json()["tags"], serde_json::json!(["latest", "v1"]));
        let link = page.header("link").expect("Link header on a partial page");
        assert!(link.contains("rel=\"next\""), "{link}");
        let next = link.trim_start_matches('<').split('>').next().unwrap();
        let page2 = r.call("GET", next, &[], b"");
        assert_eq!(page2.json()["tags"], serde_json::json!(["v2", "v3"]));
        let last = r.call("GET", "/v2/disc/tags/tags/list?n=2&last=v1", &[], b"");
        assert_eq!(last.json()["tags"], serde_json::json!(["v2", "v3"]));
        let after = r.call("GET", "/v2/disc/tags/tags/list?last=v2", &[], b"");
        assert_eq!(after.json()["tags"], serde_json::json!(["v3"]));

        r.call("GET", "/v2/disc/none/tags/list", &[], b"")
            .expect(404, Some("NAME_UNKNOWN"));
    }
}

#[test]
fn catalog_with_pagination() {
    for r in Registry::both("catalog_with_pagination") {
        for repo in ["cat/b", "cat/a", "cat/c/d"] {
            r.push_image(repo, "t", repo);
        }
        let all = r.call("GET", "/v2/_catalog", &[], b"");
        all.expect(200, None);
        assert_eq!(
            all.json()["repositories"],
            serde_json::json!(["cat/a", "cat/b", "cat/c/d"])
        );
        let page = r.call("GET", "/v2/_catalog?n=2", &[], b"");
        assert_eq!(
            page.json()["repositories"],
            serde_json::json!(["cat/a", "cat/b"])
        );
        let link = page.header("link").expect("Link");
        let next = link.trim_start_matches('<').split('>').next().unwrap();
        assert_eq!(
            r.call("GET", next, &[], b"").json()["repositories"],
            serde_json::json!(["cat/c/d"])
        );
    }
}

#[test]
fn referrers_api_with_subject_and_artifact_type_filter() {
    for r in Registry::both("referrers_api_with_subject_and_artifact_type_filter") {
        let (subject_bytes, subject) = r.push_image("disc/ref", "v1", "subject");
        let empty = r.push_blob("disc/ref", b"{}");
        let mut referrers = Vec::new();
        for (artifact_type, note) in [
            ("application/vnd.example.sbom", "sbom"),
            ("application/vnd.example.sig", "sig"),
        ] {
            let m = image_manifest(
                OCI_MANIFEST,
                "application/vnd.oci.empty.v1+json",
                (&empty, 2),
                &[],
                Some(serde_json::json!({
                    "artifactType": artifact_type,
                    "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_bytes.len()},
                    "annotations": {"note": note},
                })),
            );
            let d = sha256(&m);
            let put = r.put_manifest("disc/ref", &d, OCI_MANIFEST, &m);
            put.expect(201, None);
            match r.kind {
                Impl::Pier => assert_eq!(put.header("oci-subject"), Some(subject.as_str())),
                // Deviation: distribution 2.8 predates OCI 1.1 and knows no subject.
                Impl::Distribution => assert_eq!(put.header("oci-subject"), None),
            }
            referrers.push((d, artifact_type));
        }
        // A referrer of a subject that is not (yet) pushed is accepted too.
        let dangling = sha256(b"future subject");
        let m = image_manifest(
            OCI_MANIFEST,
            "application/vnd.oci.empty.v1+json",
            (&empty, 2),
            &[],
            Some(
                serde_json::json!({"artifactType": "application/vnd.example.sig",
                "subject": {"mediaType": OCI_MANIFEST, "digest": dangling, "size": 1}}),
            ),
        );
        r.put_manifest("disc/ref", &sha256(&m), OCI_MANIFEST, &m)
            .expect(201, None);

        let all = r.call(
            "GET",
            &format!("/v2/disc/ref/referrers/{subject}"),
            &[],
            b"",
        );
        let filtered = r.call(
            "GET",
            &format!("/v2/disc/ref/referrers/{subject}?artifactType=application%2Fvnd.example.sig"),
            &[],
            b"",
        );
        let none = r.call(
            "GET",
            &format!("/v2/disc/ref/referrers/{}", sha256(b"no referrers")),
            &[],
            b"",
        );
        match r.kind {
            Impl::Pier => {
                all.expect(200, None);
                assert_eq!(all.header("content-type"), Some(OCI_INDEX));
                let index = all.json();
                assert_eq!(index["mediaType"], OCI_INDEX);
                let listed = index["manifests"].as_array().unwrap();
                assert_eq!(listed.len(), 2, "{index}");
                for (d, artifact_type) in &referrers {
                    let entry = listed
                        .iter()
                        .find(|e| e["digest"] == d.as_str())
                        .expect("referrer listed");
                    assert_eq!(entry["artifactType"], *artifact_type);
                    assert_eq!(entry["mediaType"], OCI_MANIFEST);
                    assert!(entry["size"].as_u64().unwrap() > 0);
                    assert!(entry["annotations"]["note"].is_string());
                }
                assert_eq!(all.header("oci-filters-applied"), None);
                filtered.expect(200, None);
                assert_eq!(filtered.header("oci-filters-applied"), Some("artifactType"));
                let listed = filtered.json()["manifests"].as_array().unwrap().clone();
                assert_eq!(listed.len(), 1);
                assert_eq!(listed[0]["digest"], referrers[1].0.as_str());
                none.expect(200, None);
                assert_eq!(none.json()["manifests"], serde_json::json!([]));
                r.call("GET", "/v2/disc/ref/referrers/sha256:bad", &[], b"")
                    .expect(400, Some("DIGEST_INVALID"));
                let dangling_list = r.call(
                    "GET",
                    &format!("/v2/disc/ref/referrers/{dangling}"),
                    &[],
                    b"",
                );
                assert_eq!(
                    dangling_list.json()["manifests"].as_array().unwrap().len(),
                    1
                );
            }
            // Deviation: distribution 2.8 has no referrers API.
            Impl::Distribution => {
                assert_eq!(all.status, 404);
                assert_eq!(filtered.status, 404);
            }
        }
    }
}

// ---------------------------------------------------------------- content management

#[test]
fn delete_tag_and_manifest() {
    for r in Registry::both("delete_tag_and_manifest") {
        let (_, digest) = r.push_image("mgmt/man", "keep", "x");
        r.put_manifest(
            "mgmt/man",
            "drop",
            OCI_MANIFEST,
            &r.call(
                "GET",
                &manifest_path("mgmt/man", "keep"),
                &[("Accept", OCI_MANIFEST)],
                b"",
            )
            .body,
        )
        .expect(201, None);
        let tag_delete = r.call("DELETE", &manifest_path("mgmt/man", "drop"), &[], b"");
        match r.kind {
            Impl::Pier => {
                tag_delete.expect(202, None);
                r.call("GET", &manifest_path("mgmt/man", "drop"), &[], b"")
                    .expect(404, Some("MANIFEST_UNKNOWN"));
                r.call("GET", &manifest_path("mgmt/man", "keep"), &[], b"")
                    .expect(200, None);
                r.call("DELETE", &manifest_path("mgmt/man", "drop"), &[], b"")
                    .expect(404, Some("MANIFEST_UNKNOWN"));
            }
            // Deviation: distribution 2.8 deletes manifests only by digest and
            // answers a tag with DIGEST_INVALID.
            Impl::Distribution => {
                tag_delete.expect(400, Some("DIGEST_INVALID"));
            }
        }
        r.call("DELETE", &manifest_path("mgmt/man", &digest), &[], b"")
            .expect(202, None);
        r.call("GET", &manifest_path("mgmt/man", &digest), &[], b"")
            .expect(404, Some("MANIFEST_UNKNOWN"));
        r.call("GET", &manifest_path("mgmt/man", "keep"), &[], b"")
            .expect(404, Some("MANIFEST_UNKNOWN"));
        r.call("DELETE", &manifest_path("mgmt/man", &digest), &[], b"")
            .expect(404, Some("MANIFEST_UNKNOWN"));
        let tags = r.call("GET", "/v2/mgmt/man/tags/list", &[], b"");
        match r.kind {
            Impl::Pier => assert_eq!(tags.json()["tags"], serde_json::json!([])),
            Impl::Distribution => {
                tags.expect(200, None);
            }
        }
    }
}

#[test]
fn delete_blob() {
    for r in Registry::both("delete_blob") {
        let digest = r.push_blob("mgmt/blob", b"to delete");
        let path = format!("/v2/mgmt/blob/blobs/{digest}");
        r.call("DELETE", &path, &[], b"").expect(202, None);
        assert_eq!(r.call("HEAD", &path, &[], b"").status, 404);
        r.call("GET", &path, &[], b"")
            .expect(404, Some("BLOB_UNKNOWN"));
        r.call("DELETE", &path, &[], b"")
            .expect(404, Some("BLOB_UNKNOWN"));
    }
}

#[test]
fn error_bodies_have_code_message_detail() {
    for r in Registry::both("error_bodies_have_code_message_detail") {
        let resp = r.call(
            "GET",
            &format!("/v2/err/x/blobs/{}", sha256(b"e")),
            &[],
            b"",
        );
        resp.expect(404, Some("BLOB_UNKNOWN"));
        let body = resp.json();
        let e = &body["errors"][0];
        assert!(e["message"].is_string(), "{body}");
        assert!(e.as_object().unwrap().contains_key("detail"), "{body}");
        assert!(resp
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
    }
}

#[test]
fn corners_paths_methods_pagination_and_sizes() {
    for r in Registry::both("corners_paths_methods_pagination_and_sizes") {
        let unknown_path = r.call("GET", "/v2/a/b/unknown/thing", &[], b"");
        assert_eq!(unknown_path.status, 404, "{:?}", r.kind);
        let wrong_method = r.call("POST", "/v2/corner/x/tags/list", &[], b"");
        match r.kind {
            Impl::Pier => {
                wrong_method.expect(405, Some("UNSUPPORTED"));
            }
            // distribution answers a method its route lacks with 405 and no OCI body.
            Impl::Distribution => {
                wrong_method.expect(405, None);
            }
        }

        r.push_image("corner/x", "t", "corner");
        let bad_n = r.call("GET", "/v2/corner/x/tags/list?n=abc", &[], b"");
        match r.kind {
            Impl::Pier => {
                bad_n.expect(400, Some("PAGINATION_NUMBER_INVALID"));
            }
            // Deviation (with tags pagination ignored): any `n` is accepted.
            Impl::Distribution => {
                bad_n.expect(200, None);
            }
        }
        let bad_catalog_n = r.call("GET", "/v2/_catalog?n=abc", &[], b"");
        match r.kind {
            Impl::Pier => {
                bad_catalog_n.expect(400, Some("PAGINATION_NUMBER_INVALID"));
            }
            // Deviation: distribution 2.8 ignores an `n` that is no number.
            Impl::Distribution => {
                bad_catalog_n.expect(200, None);
            }
        }

        // A manifest over 4 MiB.
        let big = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST}\",\"annotations\":{{\"pad\":\"{}\"}}}}",
            "x".repeat(4 << 20)
        );
        let too_big = r.put_manifest("corner/x", "big", OCI_MANIFEST, big.as_bytes());
        match r.kind {
            Impl::Pier => {
                too_big.expect(413, Some("SIZE_INVALID"));
            }
            // Deviation: distribution reads it and rejects it as invalid.
            Impl::Distribution => {
                too_big.expect(400, Some("MANIFEST_INVALID"));
            }
        }

        // A manifest whose mediaType disagrees with the Content-Type it is pushed with.
        let m = r.call(
            "GET",
            "/v2/corner/x/manifests/t",
            &[("Accept", OCI_MANIFEST)],
            b"",
        );
        r.put_manifest("corner/x", "mismatch", DOCKER_MANIFEST, &m.body)
            .expect(400, Some("MANIFEST_INVALID"));

        // A chunk whose Content-Length disagrees with its Content-Range.
        let start = r.call("POST", "/v2/corner/x/blobs/uploads/", &[], b"");
        let location = start.header("location").unwrap().to_string();
        let mismatch = r.call(
            "PATCH",
            &path_of(&location),
            &[
                ("Content-Range", "0-9"),
                ("Content-Type", "application/octet-stream"),
            ],
            b"short",
        );
        match r.kind {
            Impl::Pier => {
                mismatch.expect(416, Some("RANGE_INVALID"));
            }
            Impl::Distribution => {
                mismatch.expect(202, None);
            }
        }

        // A mount of a malformed digest.
        r.call(
            "POST",
            "/v2/corner/x/blobs/uploads/?mount=sha256:zz&from=corner/x",
            &[],
            b"",
        )
        .expect(if r.kind == Impl::Pier { 400 } else { 202 }, None);
    }
}
