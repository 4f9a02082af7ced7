//! The staging service in-process on a free loopback port, with its storage, user areas and SQLite database in a
//! temporary folder; and the requests the tests and benchmarks send it.
// Each test binary includes this file and uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;

use sdp_staging::{Settings, UpArgs};
use serde_json::{json, Value};

pub struct Service {
    pub base: String,
    pub storage: PathBuf,
    pub users: PathBuf,
    _dir: tempfile::TempDir,
    _running: sdp_staging::Running,
}

/// Starts the service; `edit` adjusts the settings (a database URL, allowed methods, JupyterHub, ...).
pub async fn start_service(edit: impl FnOnce(&mut Settings)) -> Service {
    let dir = tempfile::tempdir().expect("temp dir");
    let (storage, users) = (dir.path().join("storage"), dir.path().join("users"));
    std::fs::create_dir_all(&storage).unwrap();
    std::fs::create_dir_all(&users).unwrap();
    let args = UpArgs {
        listen: Some("127.0.0.1:0".into()),
        source_storage_path: Some(storage.clone()),
        target_storage_path: Some(users.clone()),
        data_dir: Some(dir.path().join("data")),
        ..Default::default()
    };
    let mut settings = args.settings().expect("test settings");
    edit(&mut settings);
    let running = sdp_staging::start(settings).await.expect("start the staging service");
    Service { base: format!("http://{}", running.addr), storage, users, _dir: dir, _running: running }
}

impl Service {
    /// The URL staging for `user` with `method`.
    pub fn stage_url(&self, method: &str, user: &str) -> reqwest::Url {
        stage_url(&self.base, "/stage-data/", &[("method", method), ("username", user)])
    }

    /// Stages `source` to `target` for `user` with `method`: the status and the JSON answer (null if not JSON).
    pub async fn stage(&self, method: &str, user: &str, source: &str, target: &str) -> (u16, Value) {
        let resp = post_stage(self.stage_url(method, user), source, target).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The JSON the service answers at `path`.
    pub async fn get(&self, path: &str) -> Value {
        get_json(&format!("{}{path}", self.base)).await
    }
}

/// `route` of the service at `base` with the query `params`.
pub fn stage_url(base: &str, route: &str, params: &[(&str, &str)]) -> reqwest::Url {
    reqwest::Url::parse_with_params(&format!("{base}{route}"), params).unwrap()
}

/// POSTs a staging request (`source` on the storage to `target` in the user's area) to `url`.
pub async fn post_stage(url: reqwest::Url, source: &str, target: &str) -> reqwest::Response {
    sdp_staging::http_client()
        .build()
        .unwrap()
        .post(url)
        .json(&json!({"data": {"local_path_on_storage": source, "relative_path": target}}))
        .send()
        .await
        .unwrap()
}

/// GETs `url` and reads its answer as JSON.
pub async fn get_json(url: &str) -> Value {
    sdp_staging::http_client().build().unwrap().get(url).send().await.unwrap().json().await.unwrap()
}
