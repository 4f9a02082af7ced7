//! jupyter_copy against a real JupyterHub: the service starts the user's server, uploads a small file and a
//! multi-chunk file (verified byte for byte in the server's folder) and a folder; a wrong token answers 403. A
//! server the service started is stopped again when the transfer ends, unless the request keeps it; one the
//! user ran stays; a user's server stops when asked.

#[path = "peers/jupyterhub.rs"]
mod hub;
#[path = "peers/service.rs"]
mod peers;

use serde_json::Value;

async fn jupyter_copy(base: &str, user: &str, token: Option<&str>, source: &str, target: &str) -> (u16, Value) {
    jupyter_copy_with(base, user, token, source, target, &[]).await
}

async fn jupyter_copy_with(
    base: &str,
    user: &str,
    token: Option<&str>,
    source: &str,
    target: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut params = vec![("method", "jupyter_copy"), ("username", user)];
    if let Some(t) = token {
        params.push(("jupyter_token", t));
    }
    params.extend_from_slice(extra);
    let resp = peers::post_stage(peers::stage_url(base, "/stage-data/", &params), source, target).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `POST /jupyter/stop-server/` for `user`.
async fn stop_server(base: &str, user: &str, token: Option<&str>) -> (u16, Value) {
    let mut params = vec![("username", user)];
    if let Some(t) = token {
        params.push(("jupyter_token", t));
    }
    let resp =
        sdp_staging::http_client().build().unwrap().post(peers::stage_url(base, "/jupyter/stop-server/", &params));
    let resp = resp.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The user's default server as the Hub reports it (null: none).
async fn hub_server(hub: &hub::JupyterHub, user: &str) -> Value {
    let info: Value = sdp_staging::http_client()
        .build()
        .unwrap()
        .get(format!("{}/hub/api/users/{user}", hub.url))
        .header("Authorization", format!("token {}", hub.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    info["servers"][""].clone()
}

/// The processes whose HOME is `home`: the single-user server of its user.
fn processes_with_home(home: &std::path::Path) -> Vec<String> {
    let home = format!("HOME={}", home.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| {
            let environ = std::fs::read(p.path().join("environ")).unwrap_or_default();
            environ.split(|b| *b == 0).any(|var| var == home.as_bytes())
        })
        .map(|p| p.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Waits until the user's server is gone, from the Hub and from the processes.
async fn server_stopped(hub: &hub::JupyterHub, user: &str) {
    sdp_testkit::eventually(&format!("the server of {user} stopped"), std::time::Duration::from_secs(30), || async {
        hub_server(hub, user).await.is_null() && processes_with_home(&hub.home(user)).is_empty()
    })
    .await
}

/// Deterministic bytes that are not valid UTF-8 and repeat no chunk.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jupyter_copy_uploads_small_and_chunked_files_and_passes_403_through() {
    let hub = hub::JupyterHub::start(&["alice"]).await;
    let s = peers::start_service(hub.staging_settings()).await;
    std::fs::write(s.storage.join("small.txt"), b"small file\n").unwrap();
    let big = pattern((sdp_staging::jupyter::CHUNK_BYTES * 6 + 12345) as usize);
    std::fs::write(s.storage.join("big.bin"), &big).unwrap();
    std::fs::create_dir_all(s.storage.join("set/sub")).unwrap();
    std::fs::write(s.storage.join("set/a.txt"), b"a").unwrap();
    std::fs::write(s.storage.join("set/sub/b.bin"), pattern(1000)).unwrap();

    // The server is not running: the service starts it, uploads, and stops it again.
    let (status, body) = jupyter_copy(&s.base, "alice", None, "small.txt", "staged/small.txt").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::read(hub.home("alice").join("staged/small.txt")).unwrap(), b"small file\n");
    server_stopped(&hub, "alice").await;

    // The request's token wins over the configured one, and the request keeps the server it started. While the
    // 7 chunks go, the log shows the request running with its size and the bytes sent so far.
    let upload = tokio::spawn({
        let (base, token) = (s.base.clone(), hub.token.clone());
        async move {
            let keep = [("jupyter_keep_server", "true")];
            jupyter_copy_with(&base, "alice", Some(&token), "big.bin", "deep/er/big.bin", &keep).await
        }
    });
    let mut seen_running = Vec::new();
    while !upload.is_finished() {
        let log = s.get("/logs/?limit=1").await;
        let e = &log["entries"][0];
        if e["status"] == "running" && e["target"] == "deep/er/big.bin" {
            seen_running.push((e["bytes_done"].as_u64().unwrap(), e["bytes_total"].as_u64().unwrap()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (status, body) = upload.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        seen_running.iter().any(|&(done, total)| total == big.len() as u64 && done < total),
        "no progress seen while uploading: {seen_running:?}"
    );
    let uploaded = std::fs::read(hub.home("alice").join("deep/er/big.bin")).unwrap();
    assert!(uploaded == big, "the chunked upload differs ({} bytes vs {})", uploaded.len(), big.len());

    assert!(body["message"].as_str().unwrap().ends_with("keeps running"), "{body}");
    assert_eq!(hub_server(&hub, "alice").await["ready"], true);

    // A server running before the request stays.
    let (status, body) = jupyter_copy(&s.base, "alice", None, "set", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::read(hub.home("alice").join("set/sub/b.bin")).unwrap(), pattern(1000));
    assert_eq!(hub_server(&hub, "alice").await["ready"], true);
    assert!(!processes_with_home(&hub.home("alice")).is_empty());

    // Asked, the service stops the user's server; a wrong token or an unknown user is refused.
    let (status, body) = stop_server(&s.base, "alice", Some("not-a-valid-token")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(hub_server(&hub, "alice").await["ready"], true);
    assert_eq!(stop_server(&s.base, "nobody", None).await.0, 404);
    assert_eq!(stop_server(&s.base, "../alice", None).await.0, 400);
    let (status, body) = stop_server(&s.base, "alice", None).await;
    assert_eq!((status, body["message"].as_str()), (200, Some("The JupyterHub server of alice is stopping")), "{body}");
    server_stopped(&hub, "alice").await;
    let (status, body) = stop_server(&s.base, "alice", None).await;
    assert_eq!((status, body["message"].as_str()), (200, Some("The JupyterHub server of alice was not running")));

    let log = s.get("/logs/").await;
    let big_entry = &log["entries"][1];
    assert_eq!(big_entry["bytes_done"].as_u64(), Some(big.len() as u64), "{big_entry}");
    assert!(!log.to_string().contains(&hub.token), "a token reached the log");

    let (status, body) = jupyter_copy(&s.base, "alice", Some("not-a-valid-token"), "small.txt", "other.txt").await;
    assert_eq!(status, 403, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("JupyterHub refused the token (403)") && detail.contains("jupyter_token"), "{detail}");
    assert!(!detail.contains("not-a-valid-token"));
    assert!(!hub.home("alice").join("other.txt").exists());

    let (status, body) = jupyter_copy(&s.base, "nobody", None, "small.txt", "x").await;
    assert_eq!(status, 404, "{body}");
    // jupyter_copy writes nothing into the local user areas.
    assert_eq!(std::fs::read_dir(&s.users).unwrap().count(), 0);

    // Stopping the hub stops any single-user server it started for alice.
    let home = hub.home("alice");
    drop(hub);
    let left = processes_with_home(&home);
    assert!(left.is_empty(), "processes of the hub's user left running: {left:?}");
}
