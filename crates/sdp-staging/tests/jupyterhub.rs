//! jupyter_copy against a real JupyterHub: the service starts the user's server, uploads a small file and a
//! multi-chunk file (verified byte for byte in the server's folder) and a folder; a wrong token answers 403.

#[path = "peers/jupyterhub.rs"]
mod hub;
#[path = "peers/service.rs"]
mod peers;

use serde_json::Value;

async fn jupyter_copy(base: &str, user: &str, token: Option<&str>, source: &str, target: &str) -> (u16, Value) {
    let mut params = vec![("method", "jupyter_copy"), ("username", user)];
    if let Some(t) = token {
        params.push(("jupyter_token", t));
    }
    let resp = peers::post_stage(peers::stage_url(base, "/stage-data/", &params), source, target).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
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

    // The server is not running: the service starts it, then uploads.
    let (status, body) = jupyter_copy(&s.base, "alice", None, "small.txt", "staged/small.txt").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::read(hub.home("alice").join("staged/small.txt")).unwrap(), b"small file\n");

    // The request's token wins over the configured one. While the 7 chunks go, the log shows the request
    // running with its size and the bytes sent so far.
    let upload = tokio::spawn({
        let (base, token) = (s.base.clone(), hub.token.clone());
        async move { jupyter_copy(&base, "alice", Some(&token), "big.bin", "deep/er/big.bin").await }
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

    let (status, body) = jupyter_copy(&s.base, "alice", None, "set", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::read(hub.home("alice").join("set/sub/b.bin")).unwrap(), pattern(1000));

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

    // Stopping the hub stops the single-user server it started for alice.
    let home = hub.home("alice").display().to_string();
    drop(hub);
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| {
            let environ = std::fs::read(p.path().join("environ")).unwrap_or_default();
            environ.split(|b| *b == 0).any(|var| var == format!("HOME={home}").as_bytes())
        })
        .map(|p| p.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "processes of the hub's user left running: {left:?}");
}
