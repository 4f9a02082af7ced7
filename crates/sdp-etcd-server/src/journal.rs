//! The durable journal: an append-only file of checksummed records, replayed at start.
//!
//! Why a log file rather than redb or SQLite: acknowledging a write needs the record on disk, and a log lets
//! the write (under the store's lock) and the fsync (outside it) be separate steps, so concurrent clients
//! share one fsync (group commit). Embedded databases fsync inside their own commit, which would serialise
//! every client behind one disk flush.
//!
//! Frame: `u32 length (LE) | u32 crc32 of payload (LE) | payload (postcard-encoded Record)`. A torn or
//! corrupt tail (a crash mid-write) is cut off at the last good frame.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sdp_kvstore::{Journal, Record};

const JOURNAL_FILE: &str = "journal.log";

pub struct FileJournal {
    path: PathBuf,
    file: Mutex<File>,
    /// Bytes written to the file so far.
    written: AtomicU64,
    /// How far the file is known to be on disk, published by the syncer thread.
    durable: tokio::sync::watch::Sender<Durability>,
    wake_syncer: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

#[derive(Clone, Debug, Default)]
struct Durability {
    synced: u64,
    failed: Option<String>,
}

/// What was found in the data directory.
pub struct Recovered {
    pub journal: FileJournal,
    pub records: Vec<Record>,
    /// Bytes cut off the end (a torn last write).
    pub truncated: u64,
}

impl FileJournal {
    /// Opens (or creates) the journal in `dir` and reads back its records.
    pub fn open(dir: &Path) -> std::io::Result<Recovered> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(JOURNAL_FILE);
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let (records, good_len) = read_records(&file)?;
        let total = file.metadata()?.len();
        if good_len < total {
            file.set_len(good_len)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        let journal = FileJournal {
            path,
            file: Mutex::new(file),
            written: AtomicU64::new(good_len),
            durable: tokio::sync::watch::Sender::new(Durability { synced: good_len, failed: None }),
            wake_syncer: Mutex::new(None),
        };
        Ok(Recovered { journal, records, truncated: total - good_len })
    }

    /// Bytes written to the journal so far.
    pub fn size_bytes(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Starts the thread that flushes the journal to disk: one fsync covers every record written before it
    /// started, so concurrent writers share flushes (group commit).
    pub fn start_syncer(self: &Arc<Self>) -> std::io::Result<()> {
        let (wake, woken) = std::sync::mpsc::channel::<()>();
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner()).try_clone()?;
        let journal = Arc::downgrade(self);
        std::thread::Builder::new().name("journal-sync".into()).spawn(move || {
            while woken.recv().is_ok() {
                while woken.try_recv().is_ok() {}
                let Some(journal) = journal.upgrade() else { break };
                let covered = journal.written.load(Ordering::SeqCst);
                let result = file.sync_data();
                journal.durable.send_modify(|d| match result {
                    Ok(()) => d.synced = d.synced.max(covered),
                    Err(e) => d.failed = Some(e.to_string()),
                });
            }
        })?;
        *self.wake_syncer.lock().unwrap_or_else(|p| p.into_inner()) = Some(wake);
        Ok(())
    }

    /// Waits until everything appended so far is on disk.
    pub async fn sync(&self) -> std::io::Result<()> {
        let target = self.written.load(Ordering::SeqCst);
        let mut durable = self.durable.subscribe();
        if durable.borrow().synced >= target {
            return Ok(());
        }
        match &*self.wake_syncer.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(wake) => {
                let _ = wake.send(());
            }
            None => return self.file.lock().unwrap_or_else(|p| p.into_inner()).sync_data(),
        }
        let state = durable
            .wait_for(|d| d.synced >= target || d.failed.is_some())
            .await
            .map_err(|_| std::io::Error::other("journal syncer stopped"))?;
        match &state.failed {
            Some(e) if state.synced < target => Err(std::io::Error::other(format!("fsync failed: {e}"))),
            _ => Ok(()),
        }
    }

    /// Replaces the journal with one record (a snapshot of the live state), atomically.
    pub fn rewrite(&self, snapshot: &Record) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut out = File::create(&tmp)?;
        out.write_all(&frame(snapshot)?)?;
        out.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        *file = OpenOptions::new().append(true).open(&self.path)?;
        let len = file.metadata()?.len();
        self.written.store(len, Ordering::SeqCst);
        self.durable.send_modify(|d| d.synced = len);
        Ok(())
    }
}

impl Journal for FileJournal {
    fn append(&self, record: &Record) -> std::io::Result<()> {
        let bytes = frame(record)?;
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&bytes)?;
        self.written.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        Ok(())
    }
}

fn frame(record: &Record) -> std::io::Result<Vec<u8>> {
    let payload = postcard::to_stdvec(record).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(payload.len() + 8);
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// Reads frames until the end or the first bad one; returns the records and the length of the good part.
fn read_records(file: &File) -> std::io::Result<(Vec<Record>, u64)> {
    let mut reader = BufReader::new(file.try_clone()?);
    reader.seek(SeekFrom::Start(0))?;
    let mut records = Vec::new();
    let mut good = 0u64;
    let mut header = [0u8; 8];
    loop {
        if reader.read_exact(&mut header).is_err() {
            break;
        }
        let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
        let mut payload = vec![0u8; len];
        if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            break;
        }
        match postcard::from_bytes::<Record>(&payload) {
            Ok(record) => records.push(record),
            Err(_) => break,
        }
        good += 8 + len as u64;
    }
    Ok((records, good))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdp_kvstore::{Event, EventKind, KeyValue};

    fn put(rev: i64, key: &str) -> Record {
        let kv = KeyValue {
            key: key.into(),
            value: b"v".to_vec(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: 0,
        };
        Record::Changes { revision: rev, events: vec![Event { kind: EventKind::Put, kv, prev_kv: None }] }
    }

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let r = FileJournal::open(dir.path()).unwrap();
            assert!(r.records.is_empty());
            r.journal.append(&put(2, "a")).unwrap();
            r.journal.append(&put(3, "b")).unwrap();
            futures::executor::block_on(r.journal.sync()).unwrap();
        }
        // A crash in the middle of the third write leaves half a frame.
        let path = dir.path().join(JOURNAL_FILE);
        let good_len = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&frame(&put(4, "c")).unwrap()[..7]).unwrap();
        drop(f);
        let r = FileJournal::open(dir.path()).unwrap();
        assert_eq!(r.records, vec![put(2, "a"), put(3, "b")]);
        assert_eq!(r.truncated, 7);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        // A flipped bit is detected the same way.
        r.journal.append(&put(4, "c")).unwrap();
        futures::executor::block_on(r.journal.sync()).unwrap();
        drop(r);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(FileJournal::open(dir.path()).unwrap().records.len(), 2);
    }

    #[test]
    fn rewrite_keeps_only_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let r = FileJournal::open(dir.path()).unwrap();
        for i in 2..50 {
            r.journal.append(&put(i, &format!("k{i}"))).unwrap();
        }
        let snapshot = Record::Snapshot { revision: 49, kvs: vec![], leases: vec![(7, 10)] };
        r.journal.rewrite(&snapshot).unwrap();
        r.journal.append(&put(50, "z")).unwrap();
        futures::executor::block_on(r.journal.sync()).unwrap();
        drop(r);
        assert_eq!(FileJournal::open(dir.path()).unwrap().records, vec![snapshot, put(50, "z")]);
    }
}
