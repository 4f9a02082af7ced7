//! The metadata database on a real MariaDB (Debian's), started on a private socket and a free loopback port:
//! migrations, the record round trip, and the service writing every request into it.

#[path = "peers/service.rs"]
mod peers;

use std::process::{Command, Stdio};
use std::time::Duration;

use sdp_staging::db::{Db, NewEntry, Status};
use sdp_testkit::{free_port, program, wait_for_port, KillOnDrop};

struct MariaDb {
    port: u16,
    _child: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl MariaDb {
    fn start() -> MariaDb {
        let hint = "install it with `apt-get install mariadb-server` (scripts/setup does)";
        let install_db = program("mariadb-install-db", "SDP_TEST_MARIADB_INSTALL_DB", hint);
        let server = ["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]
            .into_iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| program("mariadbd", "SDP_TEST_MARIADBD", hint));
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let out = Command::new(install_db)
            .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("run mariadb-install-db");
        assert!(out.status.success(), "mariadb-install-db failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let child = Command::new(server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("mysql.sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("mysql.pid").display()))
            .arg(format!("--log-error={}", dir.path().join("error.log").display()))
            .args([&format!("--port={port}"), "--bind-address=127.0.0.1", "--user=root", "--skip-grant-tables"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let child = KillOnDrop(child);
        wait_for_port(port, Duration::from_secs(60), "mariadbd");
        MariaDb { port, _child: child, _dir: dir }
    }

    /// Creates `database` and returns its URL.
    async fn database(&self, database: &str) -> String {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn =
            sqlx::AnyConnection::connect(&format!("mysql://root@127.0.0.1:{}/mysql", self.port)).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {database}")).execute(&mut conn).await.unwrap();
        format!("mysql://staging:any-password@127.0.0.1:{}/{database}", self.port)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_round_trip_and_migrations_on_mariadb() {
    let maria = MariaDb::start();
    let url = maria.database("staging_meta").await;
    let db = Db::connect(&url).await.expect("connect and migrate");
    assert_eq!(db.applied_migrations().await.unwrap(), vec![1, 2]);
    let long = "p/".repeat(600);
    let entry = NewEntry {
        method: "local_copy",
        username: "alice",
        source: &long,
        target: "t",
        status: Status::Running,
        message: "",
    };
    let id = db.insert(&entry).await.unwrap();
    db.progress(id, 512, 1024).await.unwrap();
    let (list, total) = db.list(0, 10).await.unwrap();
    assert_eq!((total, list[0].status.as_str(), list[0].bytes_done), (1, "running", 512));
    assert_eq!(list[0].source.len(), 1024, "stored text is bounded to the column");
    db.finish(id, Status::Done, "Data staged for user alice with method local_copy", 1024, 1024).await.unwrap();
    let id2 = db.insert(&NewEntry { status: Status::Rejected, message: "ünïcödé ✓", ..entry }).await.unwrap();
    assert!(id2 > id);
    let (list, total) = db.list(0, 10).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!((list[0].id, list[0].message.as_str()), (id2, "ünïcödé ✓"));
    assert_eq!((list[1].status.as_str(), list[1].bytes_done, list[1].bytes_total), ("done", 1024, 1024));
    assert_eq!(db.list(1, 5).await.unwrap().0.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id]);
    // Connecting again finds the migrations applied and the records there.
    drop(db);
    let again = Db::connect(&url).await.unwrap();
    assert_eq!(again.applied_migrations().await.unwrap(), vec![1, 2]);
    assert_eq!(again.list(0, 10).await.unwrap().1, 2);

    // The service records its requests in MariaDB.
    let service_url = maria.database("staging_service").await;
    let s = peers::start_service(move |st| st.database_url = sdp_staging::config::Secret(service_url)).await;
    std::fs::write(s.storage.join("f.dat"), b"data").unwrap();
    for (source, want) in [("f.dat", 200), ("../x", 400)] {
        assert_eq!(s.stage("local_copy", "alice", source, "in/f.dat").await.0, want, "{source}");
    }
    assert_eq!(std::fs::read(s.users.join("alice/in/f.dat")).unwrap(), b"data");
    let log = s.get("/logs/").await;
    let statuses: Vec<&str> =
        log["entries"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["rejected", "done"]);
    let config = s.get("/config/").await;
    assert_eq!(config["database"], "mysql");
}
