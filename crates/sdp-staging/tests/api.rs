//! The HTTP API end to end on a real filesystem and SQLite: the four routes, each local method, downloads with
//! ranges, the path-attack corpus, bearer auth, Rucio DIDs (against a small local Rucio stand-in) and the binary's
//! configuration from the environment.

#[path = "peers/service.rs"]
mod peers;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use peers::{get_json, post_stage, stage_url, start_service};
use serde_json::{json, Value};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every path under `root` with its type, mode, size and link target: a snapshot to compare.
fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let link = std::fs::read_link(&p).map(|l| l.display().to_string()).unwrap_or_default();
            out.insert(
                p.display().to_string(),
                format!("{:?} {:o} {} {link}", m.file_type(), m.permissions().mode(), m.len()),
            );
            if m.is_dir() {
                pending.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn local_copy_of_a_file_and_a_tree_is_read_only_and_the_source_untouched() {
    let s = start_service(|_| {}).await;
    std::fs::create_dir_all(s.storage.join("obs/tree/sub")).unwrap();
    std::fs::write(s.storage.join("obs/file.dat"), b"0123456789").unwrap();
    std::fs::write(s.storage.join("obs/tree/a"), b"a").unwrap();
    std::fs::write(s.storage.join("obs/tree/sub/b"), b"bb").unwrap();
    let source_before = listing(&s.storage);

    let (status, body) = s.stage("local_copy", "alice", "obs/file.dat", "project/file.dat").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("success")), "{body}");
    let copied = s.users.join("alice/project/file.dat");
    assert_eq!(std::fs::read(&copied).unwrap(), b"0123456789");
    assert_eq!(mode(&copied), 0o400);

    let (status, body) = s.stage("local_copy", "alice", "obs/tree", "").await;
    assert_eq!(status, 200, "{body}");
    let tree = s.users.join("alice/tree");
    assert_eq!(std::fs::read(tree.join("sub/b")).unwrap(), b"bb");
    assert_eq!((mode(&tree), mode(&tree.join("sub")), mode(&tree.join("a"))), (0o500, 0o500, 0o400));
    assert_eq!(listing(&s.storage), source_before, "the source must not change");

    // Staging again answers that the data is there, without touching it.
    let (status, body) = s.stage("local_copy", "alice", "obs/file.dat", "project/file.dat").await;
    assert_eq!(status, 200);
    assert!(body["message"].as_str().unwrap().contains("already available"), "{body}");

    let log = s.get("/logs/").await;
    assert_eq!(log["total"], 3);
    let newest = &log["entries"][0];
    assert_eq!((newest["status"].as_str(), newest["method"].as_str()), (Some("done"), Some("local_copy")));
    let tree_entry = &log["entries"][1];
    assert_eq!((tree_entry["bytes_done"].as_i64(), tree_entry["bytes_total"].as_i64()), (Some(3), Some(3)));
}

#[tokio::test]
async fn local_symlink_points_at_the_source_and_never_changes_its_permissions() {
    let s = start_service(|_| {}).await;
    let src = s.storage.join("shared.ms");
    std::fs::write(&src, b"visibilities").unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (status, body) = s.stage("local_symlink", "bob", "shared.ms", "links/shared.ms").await;
    assert_eq!(status, 200, "{body}");
    let link = s.users.join("bob/links/shared.ms");
    assert_eq!(std::fs::read_link(&link).unwrap(), src.canonicalize().unwrap());
    assert_eq!(std::fs::read(&link).unwrap(), b"visibilities");
    assert_eq!(mode(&src), 0o644);
}

#[tokio::test]
async fn direct_download_streams_with_ranges_type_and_length() {
    let s = start_service(|_| {}).await;
    std::fs::write(s.storage.join("notes.txt"), b"hello staging world").unwrap();
    let client = sdp_staging::http_client().build().unwrap();
    let req = |range: Option<&str>| {
        let mut r = client
            .post(s.stage_url("direct_download", "carol"))
            .json(&json!({"data": {"local_path_on_storage": "notes.txt", "relative_path": ""}}));
        if let Some(range) = range {
            r = r.header("Range", range);
        }
        r.send()
    };
    let full = req(None).await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-type"], "text/plain");
    assert_eq!(full.headers()["content-length"], "19");
    assert!(full.headers()["content-disposition"].to_str().unwrap().contains("notes.txt"));
    assert_eq!(full.bytes().await.unwrap().as_ref(), b"hello staging world");
    let part = req(Some("bytes=6-12")).await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 6-12/19");
    assert_eq!(part.bytes().await.unwrap().as_ref(), b"staging");
    assert_eq!(req(Some("bytes=100-200")).await.unwrap().status(), 416);
    // A folder is not downloadable.
    std::fs::create_dir(s.storage.join("dir")).unwrap();
    assert_eq!(s.stage("direct_download", "carol", "dir", "").await.0, 400);
}

#[tokio::test]
async fn path_attacks_are_refused_and_change_nothing() {
    let s = start_service(|_| {}).await;
    let outside_dir = tempfile::tempdir().unwrap();
    let outside = outside_dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    std::fs::write(s.storage.join("ok.dat"), b"ok").unwrap();
    std::fs::create_dir_all(s.storage.join("tree")).unwrap();
    std::fs::write(s.storage.join("tree/f"), b"f").unwrap();
    std::os::unix::fs::symlink(&outside, s.storage.join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), s.storage.join("tree/leak")).unwrap();
    std::fs::create_dir_all(s.users.join("mallory")).unwrap();
    std::os::unix::fs::symlink(&outside, s.users.join("mallory/out")).unwrap();
    std::os::unix::fs::symlink(&outside, s.users.join("eve")).unwrap();
    let snapshot =
        || (listing(&s.storage), listing(&s.users), listing(&outside), std::fs::read(outside.join("secret")).unwrap());
    let before = snapshot();

    let long = "d/".repeat(2100) + "f";
    let sources = [
        "../outside/secret",
        "tree/../../outside/secret",
        "/etc/passwd",
        &format!("{}/ok.dat", s.storage.display()),
        "escape/secret",
        "escape/../escape/secret",
        "escape/new",
        "tree",
        "%2e%2e/outside/secret",
        "..%2foutside%2fsecret",
        "%252e%252e/outside",
        "ok.dat%00.txt",
        "ok.dat\0",
        "..\\outside\\secret",
        "~/secret",
        &long,
        "",
    ];
    let targets = ["../../outside/pwned", "/tmp/pwned", "out/pwned", "out", "%2e%2e/pwned", "a/../../x", "a\0b", &long];
    let mut cases: Vec<(&str, &str, &str, &str)> = Vec::new();
    for method in ["local_copy", "local_symlink", "direct_download"] {
        for src in sources {
            cases.push((method, "mallory", src, "x"));
        }
    }
    for method in ["local_copy", "local_symlink"] {
        for t in targets {
            cases.push((method, "mallory", "ok.dat", t));
        }
        for user in ["../mallory", "eve", "", ".", "a/b", "-rf", "root\0"] {
            cases.push((method, user, "ok.dat", "x"));
        }
    }
    for (method, user, src, target) in &cases {
        let (status, body) = s.stage(method, user, src, target).await;
        assert_eq!(status, 400, "{method} user {user:?} source {src:?} target {target:?}: {body}");
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    }
    // The encoded and traversal forms through the file helper too.
    for name in ["../outside/new", "escape/new", "%2e%2e/new", "/tmp/new"] {
        let resp = sdp_staging::http_client()
            .build()
            .unwrap()
            .post(format!("{}/create-file/", s.base))
            .json(&json!({"filename": name, "content": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{name}");
    }
    assert_eq!(snapshot(), before);
    // Every refusal is in the log.
    let log = s.get("/logs/?limit=1000").await;
    assert_eq!(log["total"].as_u64(), Some(cases.len() as u64));
    assert!(log["entries"].as_array().unwrap().iter().all(|e| e["status"] == "rejected"));
    // The eve link (a user area pointing outside) is the only one whose message names a link.
    let msgs: Vec<&str> = log["entries"].as_array().unwrap().iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(msgs.iter().any(|m| m.contains("symbolic link")), "{msgs:?}");
}

#[tokio::test]
async fn methods_config_logs_and_helpers() {
    let s = start_service(|st| st.allowed_methods = vec![sdp_staging::method::Method::LocalCopy]).await;
    let health = sdp_staging::http_client().build().unwrap().get(format!("{}/health", s.base)).send().await.unwrap();
    assert_eq!((health.status().as_u16(), health.text().await.unwrap()), (200, "ok".to_string()));
    assert_eq!(s.get("/config/allowed-methods/").await, json!({"allowed_methods": ["local_copy"]}));
    assert_eq!(s.get("/config/allowed-methods").await, json!({"allowed_methods": ["local_copy"]}));
    let config = s.get("/config/").await;
    assert_eq!(config["source_storage_path"], json!(s.storage));
    assert_eq!(config["database"], "sqlite");
    let openapi = s.get("/openapi.json").await;
    assert!(openapi["paths"]["/stage-data/"]["post"].is_object());
    let page = sdp_staging::http_client().build().unwrap().get(&s.base).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<form id=\"stage\""));

    let created = sdp_staging::http_client()
        .build()
        .unwrap()
        .post(format!("{}/create-file/", s.base))
        .json(&json!({"filename": "made/by/helper.txt", "content": "made"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    assert_eq!(std::fs::read_to_string(s.storage.join("made/by/helper.txt")).unwrap(), "made");

    let (status, body) = s.stage("local_symlink", "alice", "made/by/helper.txt", "x").await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("not allowed"), "{body}");
    assert_eq!(s.stage("teleport", "alice", "made", "x").await.0, 400);
    let (status, body) = s.stage("local_copy", "alice", "no/such/file", "x").await;
    assert_eq!(status, 404);
    assert!(body["detail"].as_str().unwrap().contains("does not exist"), "{body}");
    for i in 0..5 {
        assert_eq!(s.stage("local_copy", "alice", "made/by/helper.txt", &format!("c{i}")).await.0, 200);
    }
    let all = s.get("/logs/?limit=100").await;
    assert_eq!(all["total"], 8);
    let page = s.get("/logs/?offset=2&limit=3").await;
    let ids: Vec<i64> = page["entries"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let all_ids: Vec<i64> = all["entries"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, all_ids[2..5]);
    let metrics = sdp_staging::http_client()
        .build()
        .unwrap()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sdp_staging_requests_total{method=\"local_copy\",outcome=\"done\"} 5"), "{metrics}");
}

#[tokio::test]
async fn jupyter_copy_explains_what_is_missing() {
    let s = start_service(|_| {}).await;
    std::fs::write(s.storage.join("f"), b"f").unwrap();
    let (status, body) = s.stage("jupyter_copy", "alice", "f", "f").await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("set JUPYTERHUB_URL"), "{body}");
    let no_token = start_service(|st| st.jupyterhub_url = Some("http://127.0.0.1:9".into())).await;
    std::fs::write(no_token.storage.join("f"), b"f").unwrap();
    let (status, body) = no_token.stage("jupyter_copy", "alice", "f", "f").await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("jupyter_token"), "{body}");
}

#[tokio::test]
async fn a_missing_storage_root_is_named() {
    let s = start_service(|st| st.source_root = "/nonexistent/storage".into()).await;
    let (status, body) = s.stage("local_copy", "alice", "f", "f").await;
    assert_eq!(status, 500);
    assert!(body["detail"].as_str().unwrap().contains("SOURCE_STORAGE_PATH"), "{body}");
}

#[tokio::test]
async fn bearer_token_guards_everything_but_health() {
    let s = start_service(|st| st.api_token = Some(sdp_staging::config::Secret("s3cret".into()))).await;
    let client = sdp_staging::http_client().build().unwrap();
    assert_eq!(client.get(format!("{}/health", s.base)).send().await.unwrap().status(), 200);
    for path in ["/config/", "/logs/", "/config/allowed-methods/", "/metrics", "/openapi.json"] {
        let url = format!("{}{path}", s.base);
        assert_eq!(client.get(&url).send().await.unwrap().status(), 401, "{path}");
        assert_eq!(client.get(&url).bearer_auth("wrong").send().await.unwrap().status(), 401, "{path}");
        assert_eq!(client.get(&url).bearer_auth("s3cret").send().await.unwrap().status(), 200, "{path}");
    }
    assert_eq!(s.stage("local_copy", "a", "x", "y").await.0, 401);
    // Nothing reached the log without the token.
    let log = client.get(format!("{}/logs/", s.base)).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(log.json::<Value>().await.unwrap()["total"], 0);
}

/// `create-file` replaces source data only where the operator allowed it: with an API token (its holders may)
/// or STAGING_ALLOW_OVERWRITE; otherwise 409 and the file is left as it was.
#[tokio::test]
async fn create_file_replaces_source_data_only_when_allowed() {
    async fn create(s: &peers::Service, token: Option<&str>, name: &str, content: &str) -> (u16, Value) {
        let mut req = sdp_staging::http_client()
            .build()
            .unwrap()
            .post(format!("{}/create-file/", s.base))
            .json(&json!({"filename": name, "content": content}));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }
    let by_default = start_service(|_| {}).await;
    std::fs::write(by_default.storage.join("obs.dat"), "visibilities").unwrap();
    let (status, body) = create(&by_default, None, "obs.dat", "replaced").await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("STAGING_ALLOW_OVERWRITE"), "{body}");
    assert_eq!(std::fs::read_to_string(by_default.storage.join("obs.dat")).unwrap(), "visibilities");
    assert_eq!(create(&by_default, None, "new.dat", "new").await.0, 200);
    assert_eq!(by_default.get("/config/").await["create_file_overwrites"], false);

    let allowed = start_service(|st| st.allow_overwrite = true).await;
    std::fs::write(allowed.storage.join("obs.dat"), "visibilities").unwrap();
    assert_eq!(create(&allowed, None, "obs.dat", "replaced").await.0, 200);
    assert_eq!(std::fs::read_to_string(allowed.storage.join("obs.dat")).unwrap(), "replaced");

    let guarded = start_service(|st| st.api_token = Some(sdp_staging::config::Secret("s3cret".into()))).await;
    std::fs::write(guarded.storage.join("obs.dat"), "visibilities").unwrap();
    assert_eq!(create(&guarded, None, "obs.dat", "replaced").await.0, 401);
    assert_eq!(create(&guarded, Some("s3cret"), "obs.dat", "replaced").await.0, 200);
    assert_eq!(std::fs::read_to_string(guarded.storage.join("obs.dat")).unwrap(), "replaced");
}

/// A stand-in for Rucio's replicas API (Rucio itself cannot run here): answers only with the right token.
async fn fake_rucio(storage: &Path) -> (String, tokio::task::JoinHandle<()>) {
    use axum::extract::Path as UrlPath;
    use axum::http::HeaderMap;
    let storage = storage.canonicalize().unwrap();
    let app = axum::Router::new().route(
        "/replicas/{scope}/{name}",
        axum::routing::get(move |UrlPath((scope, name)): UrlPath<(String, String)>, headers: HeaderMap| {
            let storage = storage.clone();
            async move {
                if headers.get("X-Rucio-Auth-Token").and_then(|v| v.to_str().ok()) != Some("rucio-token") {
                    return (axum::http::StatusCode::UNAUTHORIZED, "no auth".to_string());
                }
                if name == "missing" {
                    return (axum::http::StatusCode::NOT_FOUND, "DataIdentifierNotFound".to_string());
                }
                let pfn = format!("root://xrootd.example:1094/{}/{scope}/{name}", storage.display());
                let line = json!({"scope": scope, "name": name, "rses": {"SITE_DISK": [pfn, "davs://elsewhere/x"]}});
                (axum::http::StatusCode::OK, format!("{line}\n"))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), server)
}

#[tokio::test]
async fn rucio_dids_are_resolved_with_the_rucio_token_header() {
    let dir = tempfile::tempdir().unwrap();
    let (rucio, rucio_server) = fake_rucio(dir.path()).await;
    let s = start_service(|st| {
        st.source_root = dir.path().to_path_buf();
        st.rucio_base_url = Some(rucio.clone());
        st.rucio_token = Some(sdp_staging::config::Secret("rucio-token".into()));
    })
    .await;
    std::fs::create_dir_all(dir.path().join("ska")).unwrap();
    std::fs::write(dir.path().join("ska/obs1.ms"), b"measurement").unwrap();
    let (status, body) = s.stage("local_copy", "alice", "ska:obs1.ms", "from-rucio.ms").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::read(s.users.join("alice/from-rucio.ms")).unwrap(), b"measurement");
    let (status, body) = s.stage("local_copy", "alice", "ska:missing", "m").await;
    assert_eq!(status, 404, "{body}");

    let wrong = start_service(|st| {
        st.source_root = dir.path().to_path_buf();
        st.rucio_base_url = Some(rucio);
        st.rucio_token = Some(sdp_staging::config::Secret("wrong".into()));
    })
    .await;
    let (status, body) = wrong.stage("local_copy", "alice", "ska:obs1.ms", "x").await;
    assert_eq!(status, 502);
    assert!(body["detail"].as_str().unwrap().contains("RUCIO_AUTH_TOKEN"), "{body}");
    sdp_testkit::stop_task(rucio_server).await;
}

#[tokio::test]
async fn the_binary_takes_the_charts_environment_and_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = sdp_testkit::free_port();
    let file = dir.path().join("config.yaml");
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    std::fs::write(
        &file,
        format!("allowedMethods: [local_copy]\nsourceStoragePath: {}\nloggingLevel: WARNING\n", storage.display()),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sdp-staging"))
        .args(["up", "--config"])
        .arg(&file)
        .env("STAGING_LISTEN", format!("127.0.0.1:{port}"))
        .env("ALLOWED_METHODS", r#"["local_symlink", "jupyter_copy"]"#)
        .env("TARGET_STORAGE_PATH", dir.path().join("users"))
        .env("STAGING_DATA_DIR", dir.path().join("data"))
        .env("JUPYTERHUB_URL", "http://127.0.0.1:1/")
        .env("LOGGING_LEVEL", "DEBUG")
        .env("JUPYTERHUB_API_TOKEN", "hub-token-never-shown")
        .env("STAGING_ALLOW_OVERWRITE", "true")
        .env_remove("DATABASE_URL")
        .env_remove("MYSQL_HOST")
        .env_remove("SOURCE_STORAGE_PATH")
        .env_remove("STAGING_API_TOKEN")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = sdp_testkit::KillOnDrop(child);
    sdp_testkit::wait_for_port(port, Duration::from_secs(20), "sdp-staging up");
    let config = get_json(&format!("http://127.0.0.1:{port}/config/")).await;
    assert_eq!(config["allowed_methods"], json!(["local_symlink", "jupyter_copy"]));
    assert_eq!(config["source_storage_path"], json!(storage));
    assert_eq!(config["target_storage_path"], json!(dir.path().join("users")));
    assert_eq!(config["jupyterhub_url"], "http://127.0.0.1:1");
    assert_eq!(config["create_file_overwrites"], true);
    assert!(!config.to_string().contains("hub-token-never-shown"));
    assert!(dir.path().join("data/staging.db").exists());

    // At DEBUG (the environment wins over the file's WARNING) requests are logged, tokens never.
    let url = stage_url(
        &format!("http://127.0.0.1:{port}"),
        "/stage-data/",
        &[("method", "jupyter_copy"), ("username", "alice"), ("jupyter_token", "request-token-never-shown")],
    );
    let resp = post_stage(url, "nothing-here", "x").await;
    assert_eq!(resp.status(), 404);
    child.0.kill().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut out).unwrap();
    assert!(out.contains("staging request") && out.contains("DEBUG"), "{out}");
    for secret in ["request-token-never-shown", "hub-token-never-shown"] {
        assert!(!out.contains(secret), "a token was logged:\n{out}");
    }
}

/// A Rucio stand-in over HTTPS (Python's ssl module, a certificate from a private CA made with openssl): the
/// service resolves a DID through it when the CA is trusted (SSL_CERT_FILE) and refuses an unknown issuer.
#[tokio::test]
async fn rucio_over_https_checks_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(d).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=staging test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "req.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(d.join("ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
    let storage = d.join("storage");
    std::fs::create_dir_all(storage.join("ska")).unwrap();
    std::fs::write(storage.join("ska/obs2.ms"), b"over tls").unwrap();
    let server = r#"
import http.server, json, ssl, sys, urllib.parse
cert, key, root, token = sys.argv[1:5]
class Replicas(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("X-Rucio-Auth-Token") != token:
            self.send_response(401); self.end_headers(); return
        _, _, scope, name = map(urllib.parse.unquote, self.path.split("/"))
        body = (json.dumps({"scope": scope, "name": name, "rses": {"SITE": [f"root://xrd:1094/{root}/{scope}/{name}"]}}) + "\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", 0), Replicas)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;
    let mut rucio = sdp_testkit::KillOnDrop(
        std::process::Command::new("python3")
            .args(["-c", server, "cert.pem", "key.pem"])
            .arg(&storage)
            .arg("rucio-token")
            .current_dir(d)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(rucio.0.stdout.as_mut().unwrap()), &mut line).unwrap();
    let rucio_port: u16 = line.trim().parse().expect("the stand-in's port");

    let start = |trusted: bool| {
        let port = sdp_testkit::free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sdp-staging"));
        command
            .arg("up")
            .env("STAGING_LISTEN", format!("127.0.0.1:{port}"))
            .env("SOURCE_STORAGE_PATH", &storage)
            .env("TARGET_STORAGE_PATH", d.join("users"))
            .env("STAGING_DATA_DIR", d.join(format!("data-{trusted}")))
            .env("RUCIO_BASE_URL", format!("https://127.0.0.1:{rucio_port}"))
            .env("RUCIO_AUTH_TOKEN", "rucio-token")
            .env("ALLOWED_METHODS", "local_copy")
            .env_remove("DATABASE_URL")
            .env_remove("MYSQL_HOST")
            .env_remove("STAGING_API_TOKEN")
            .stdout(std::process::Stdio::null());
        if trusted {
            command.env("SSL_CERT_FILE", d.join("ca.pem"));
        }
        let child = sdp_testkit::KillOnDrop(command.spawn().unwrap());
        sdp_testkit::wait_for_port(port, Duration::from_secs(20), "sdp-staging up");
        (child, port)
    };
    let stage_did = |port: u16, target: &'static str| async move {
        let url = stage_url(
            &format!("http://127.0.0.1:{port}"),
            "/stage-data/",
            &[("method", "local_copy"), ("username", "alice")],
        );
        let resp = post_stage(url, "ska:obs2.ms", target).await;
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    let (_trusting, port) = start(true);
    let (status, body) = stage_did(port, "tls.ms").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::read(d.join("users/alice/tls.ms")).unwrap(), b"over tls");

    let (_untrusting, port) = start(false);
    let (status, body) = stage_did(port, "untrusted.ms").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("certificate"), "{body}");
    assert!(!d.join("users/alice/untrusted.ms").exists());
}

/// The chart's ingress path `/stage_data` (underscore, as the original chart routed it) stages too.
#[tokio::test]
async fn the_ingress_path_with_an_underscore_stages() {
    let s = start_service(|_| {}).await;
    std::fs::write(s.storage.join("obs.ms"), b"vis").unwrap();
    let url = stage_url(&s.base, "/stage_data", &[("method", "local_copy"), ("username", "dave")]);
    let resp = post_stage(url, "obs.ms", "obs.ms").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(std::fs::read(s.users.join("dave/obs.ms")).unwrap(), b"vis");
}
