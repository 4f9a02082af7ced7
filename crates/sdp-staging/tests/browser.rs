//! The web page in headless Chromium (Debian's): it loads, submits a staging request from its form and shows the
//! request in its log.

#[path = "peers/service.rs"]
mod peers;

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_stages_data_and_shows_it_in_the_log() {
    let chromium = sdp_testkit::program(
        "chromium",
        "SDP_TEST_CHROMIUM",
        "install it with `apt-get install chromium` (scripts/setup does)",
    );
    let s = peers::start_service(|_| {}).await;
    std::fs::write(s.storage.join("from-the-page.dat"), b"page").unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = format!(
        "{}/?method=local_copy&username=webuser&source=from-the-page.dat&target=web/copied.dat&submit=1",
        s.base
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--virtual-time-budget=5000", "--timeout=20000", "--dump-dom"])
            .arg(url)
            .output()
            .expect("run chromium")
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read(s.users.join("webuser/web/copied.dat")).unwrap(),
        b"page",
        "the page's request did not stage; DOM:\n{dom}"
    );
    let row = dom.split("<tr class=\"entry\"").nth(1).unwrap_or_else(|| panic!("no log row in the page; DOM:\n{dom}"));
    // The progress column shows a bar, at 100% once the copy is done.
    for want in ["<progress", "100%", "local_copy", "webuser", "from-the-page.dat", "web/copied.dat", "done"] {
        assert!(row.contains(want), "the log row lacks {want}: {row}");
    }
    assert!(dom.contains("200: Data staged for user webuser with method local_copy"), "DOM:\n{dom}");
}
