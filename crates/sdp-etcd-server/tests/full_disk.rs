//! A full disk (here: the process's file-size limit) while clients write: the writes that do not fit fail with a
//! clear error, reads go on, writes work again once there is room, and the data folder starts again with every
//! acknowledged write. Its own test binary: the limit is the whole process's.

use sdp_etcd_server::ServerConfig;

fn set_file_size_limit(bytes: libc::rlim_t) {
    // SAFETY: getrlimit/setrlimit read and write the struct given; SIGXFSZ ignored makes a write past the limit
    // fail with EFBIG instead of ending the process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

#[tokio::test]
async fn a_full_disk_fails_writes_keeps_reads_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        sdp_etcd_server::start(ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
    };
    let server = start().await.unwrap();
    let mut client = etcd_client::Client::connect([server.addr.to_string()], None).await.unwrap();
    client.put("before", "1", None).await.unwrap();
    let journal = dir.path().join("journal.log");
    set_file_size_limit(std::fs::metadata(&journal).unwrap().len() + (250 << 10));
    let value = vec![b'v'; 100 << 10];
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for i in 0..10 {
        match client.put(format!("big{i}"), value.clone(), None).await {
            Ok(_) => acknowledged.push(format!("big{i}")),
            Err(e) => {
                refusal = Some(e.to_string());
                break;
            }
        }
    }
    let refusal = refusal.expect("a write past the limit fails");
    assert!(refusal.contains("storage failure"), "{refusal}");
    assert_eq!(acknowledged.len(), 2);
    // Reads go on.
    assert_eq!(client.get("before", None).await.unwrap().kvs()[0].value(), b"1");
    // Room again: writes go on, and everything acknowledged is there after a restart.
    set_file_size_limit(libc::RLIM_INFINITY);
    client.put("after", "2", None).await.unwrap();
    server.stop().await;
    let server = start().await.expect("the data folder starts after a full disk");
    let mut client = etcd_client::Client::connect([server.addr.to_string()], None).await.unwrap();
    for key in acknowledged.iter().map(String::as_str).chain(["before", "after"]) {
        assert_eq!(client.get(key, None).await.unwrap().kvs().len(), 1, "{key} was acknowledged and is lost");
    }
    server.stop().await;
}
