//! The staging service in-process on a free loopback port, with its storage, user areas and SQLite database in a
//! temporary folder.

use std::path::PathBuf;

use sdp_staging::{Settings, UpArgs};

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
