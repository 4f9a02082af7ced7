//! What a test's code logs, as text, and entries written as another client would write them.

use std::sync::{Arc, Mutex, OnceLock};

/// The log lines of the tracing events on this thread while it lives. A test on a current-thread runtime (the
/// default of `#[tokio::test]`) runs every task it spawns on that thread, so their events are caught too.
pub struct Logs {
    text: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub fn capture() -> Logs {
        // tracing decides whether a call site is on when it is first hit. While a single subscriber exists, it
        // asks only the hitting thread's: a test on another thread would switch the call site off for this one.
        // A second, silent subscriber that lives as long as the process makes it ask them all.
        static SILENT: OnceLock<tracing::Dispatch> = OnceLock::new();
        SILENT.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let text = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&text);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Writer(Arc::clone(&sink)))
            .finish();
        Logs { text, _guard: tracing::subscriber::set_default(subscriber) }
    }

    /// The lines logged so far that contain every one of `parts`.
    pub fn lines_with(&self, parts: &[&str]) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned();
        text.lines().filter(|line| parts.iter().all(|p| line.contains(p))).map(str::to_string).collect()
    }
}

/// Puts `path` = `value` in the database on `port` as the library stores it (the key tagged with its depth) but
/// without its checks, as etcdctl or another client can: for entries the platform would never write itself.
pub async fn put_unchecked(port: u16, path: &str, value: &str) {
    let mut client =
        etcd_client::Client::connect([format!("127.0.0.1:{port}")], None).await.expect("connect to the database");
    client.put(sdp_config::keys::tag(path), value, None).await.expect("put an entry");
}

#[cfg(test)]
mod tests {
    fn refuse() {
        tracing::warn!("refused");
    }

    #[test]
    fn a_call_site_first_hit_on_another_thread_is_caught() {
        let logs = super::Logs::capture();
        std::thread::spawn(refuse).join().unwrap();
        refuse();
        assert_eq!(logs.lines_with(&["WARN", "refused"]).len(), 1);
    }
}
