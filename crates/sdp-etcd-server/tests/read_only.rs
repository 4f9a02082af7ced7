//! A data folder the server cannot write (a read-only mount of it): the start is refused with an error naming the
//! folder, nothing in it changes, and the same data starts once the folder is writable. Needs root, for the mount.

use std::path::Path;
use std::process::Command;

use sdp_etcd_server::ServerConfig;

async fn start(dir: &Path) -> Result<sdp_etcd_server::RunningServer, sdp_etcd_server::ServerError> {
    sdp_etcd_server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(dir.to_path_buf()),
        ..Default::default()
    })
    .await
}

/// A read-only view of a folder (a bind mount, remounted read-only), unmounted on drop.
struct ReadOnlyView<'a>(&'a Path);

impl<'a> ReadOnlyView<'a> {
    fn of(folder: &Path, view: &'a Path) -> ReadOnlyView<'a> {
        std::fs::create_dir_all(view).unwrap();
        let run = |args: &[&str]| {
            let status = Command::new("mount").args(args).status().expect("mount");
            assert!(status.success(), "mount {args:?}");
        };
        run(&["--bind", folder.to_str().unwrap(), view.to_str().unwrap()]);
        let mounted = ReadOnlyView(view);
        run(&["-o", "remount,bind,ro", view.to_str().unwrap()]);
        mounted
    }
}

impl Drop for ReadOnlyView<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[tokio::test]
async fn a_read_only_data_folder_is_refused_by_name_and_left_as_it_was() {
    // SAFETY: geteuid only reads the process's user ID.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not run: mounting a read-only view of the data folder needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data).await.unwrap();
    let mut client = etcd_client::Client::connect([server.addr.to_string()], None).await.unwrap();
    client.put("kept", "1", None).await.unwrap();
    server.stop().await;
    let journal = std::fs::read(data.join("journal.log")).unwrap();

    let view = dir.path().join("read-only");
    {
        let _mounted = ReadOnlyView::of(&data, &view);
        let refused = start(&view).await.err().expect("no start on a folder it cannot write").to_string();
        let named = format!("cannot use data directory {}: Read-only file system", view.display());
        assert!(refused.contains(&named) && refused.contains("make it readable and writable"), "{refused}");
    }
    assert_eq!(std::fs::read(data.join("journal.log")).unwrap(), journal, "the journal changed");

    let server = start(&data).await.expect("the folder starts once writable");
    let mut client = etcd_client::Client::connect([server.addr.to_string()], None).await.unwrap();
    assert_eq!(client.get("kept", None).await.unwrap().kvs()[0].value(), b"1");
    server.stop().await;
}
