//! The durable journal: an append-only file of checksummed records, replayed at start.
//!
//! Why a log file rather than redb or SQLite: acknowledging a write needs the record on disk, and a log lets
//! the write (under the store's lock) and the fsync (outside it) be separate steps, so concurrent clients
//! share one fsync (group commit). Embedded databases fsync inside their own commit, which would serialise
//! every client behind one disk flush.
//!
//! Frame: `u32 length (LE) | u32 crc32 of payload (LE) | payload (postcard-encoded Record)`. A torn or
//! corrupt tail (a crash mid-write) is cut off at the last good frame. Changes are journaled without the
//! previous values of their keys (the replay reads those from the state), and the journal replaces itself with
//! a snapshot of the live state whenever it has grown [`GROWTH_BEFORE_REWRITE`] times past its last snapshot.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sdp_kvstore::{Event, Flush, Journal, Record};

pub(crate) const JOURNAL_FILE: &str = "journal.log";

/// A journal smaller than this is never rewritten while running.
const MIN_REWRITE_BYTES: u64 = 64 << 20;
/// How many times its size after the last rewrite the journal may grow before the next.
pub const GROWTH_BEFORE_REWRITE: u64 = 4;

pub struct FileJournal {
    path: PathBuf,
    /// The file appended to; replaced by a rewrite. The syncer flushes whichever file is current.
    file: Mutex<Arc<File>>,
    /// Size after the last rewrite (or at opening).
    base: AtomicU64,
    /// Smaller than this, the journal is never rewritten while running.
    min_rewrite_bytes: u64,
    /// Bytes written to the file so far.
    written: AtomicU64,
    /// How far the file is known to be on disk, published by the syncer thread.
    durable: tokio::sync::watch::Sender<Durability>,
    wake_syncer: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

#[derive(Clone, Debug, Default)]
struct Durability {
    /// How many times the file was rewritten; offsets count from the start of the current one.
    generation: u64,
    synced: u64,
    failed: Option<String>,
}

/// What was found in the data directory.
pub struct Recovered {
    pub journal: FileJournal,
    pub records: Vec<Record>,
    /// Where each record starts in the file, in bytes.
    pub offsets: Vec<u64>,
    /// Bytes cut off the end (a torn last write).
    pub truncated: u64,
}

impl FileJournal {
    /// Opens (or creates) the journal in `dir` and reads back its records.
    pub fn open(dir: &Path) -> Result<Recovered, OpenError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(JOURNAL_FILE);
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let (records, offsets, good_len) = read_records(&file)?;
        let total = file.metadata()?.len();
        if good_len < total {
            file.set_len(good_len)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        let journal = FileJournal {
            path,
            file: Mutex::new(Arc::new(file)),
            base: AtomicU64::new(good_len),
            min_rewrite_bytes: MIN_REWRITE_BYTES,
            written: AtomicU64::new(good_len),
            durable: tokio::sync::watch::Sender::new(Durability { generation: 0, synced: good_len, failed: None }),
            wake_syncer: Mutex::new(None),
        };
        Ok(Recovered { journal, records, offsets, truncated: total - good_len })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn current_file(&self) -> Arc<File> {
        Arc::clone(&self.file.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Bytes written to the journal so far.
    pub fn size_bytes(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Starts the thread that flushes the journal to disk: one fsync covers every record written before it
    /// started, so concurrent writers share flushes (group commit).
    pub fn start_syncer(self: &Arc<Self>) -> std::io::Result<()> {
        let (wake, woken) = std::sync::mpsc::channel::<()>();
        let journal = Arc::downgrade(self);
        std::thread::Builder::new().name("journal-sync".into()).spawn(move || {
            while woken.recv().is_ok() {
                while woken.try_recv().is_ok() {}
                let Some(journal) = journal.upgrade() else { break };
                // Read together under the lock: the bytes written so far are all in this file.
                let (file, covered, generation) = {
                    let file = journal.file.lock().unwrap_or_else(|p| p.into_inner());
                    (Arc::clone(&file), journal.written.load(Ordering::SeqCst), journal.durable.borrow().generation)
                };
                let result = file.sync_data();
                journal.durable.send_modify(|d| match result {
                    // A rewrite since made this flush moot (the snapshot was flushed whole).
                    _ if d.generation != generation => {}
                    Ok(()) => d.synced = d.synced.max(covered),
                    Err(e) => d.failed = Some(e.to_string()),
                });
            }
        })?;
        *self.wake_syncer.lock().unwrap_or_else(|p| p.into_inner()) = Some(wake);
        Ok(())
    }

    /// Waits until everything appended so far is on disk ([`Journal::sync`]).
    async fn wait_synced(&self) -> std::io::Result<()> {
        let (target, generation) = {
            let _file = self.file.lock().unwrap_or_else(|p| p.into_inner());
            (self.written.load(Ordering::SeqCst), self.durable.borrow().generation)
        };
        let mut durable = self.durable.subscribe();
        if durable.borrow().synced >= target {
            return Ok(());
        }
        match &*self.wake_syncer.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(wake) => {
                let _ = wake.send(());
            }
            None => return self.current_file().sync_data(),
        }
        let state = durable
            .wait_for(|d| d.generation != generation || d.synced >= target || d.failed.is_some())
            .await
            .map_err(|_| std::io::Error::other("journal syncer stopped"))?;
        match &state.failed {
            Some(e) if state.generation == generation && state.synced < target => {
                Err(std::io::Error::other(format!("fsync failed: {e}")))
            }
            _ => Ok(()),
        }
    }

    /// Replaces the journal with one record (a snapshot of the live state), atomically.
    pub fn rewrite(&self, snapshot: &Record) -> std::io::Result<()> {
        replace_file(&self.path, &frame(snapshot)?)?;
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        *file = Arc::new(OpenOptions::new().append(true).open(&self.path)?);
        let len = file.metadata()?.len();
        self.base.store(len, Ordering::SeqCst);
        self.written.store(len, Ordering::SeqCst);
        // Everything written before is in the snapshot, on disk: a new generation of the file starts.
        self.durable.send_modify(|d| {
            d.generation += 1;
            d.synced = len;
        });
        Ok(())
    }
}

impl Journal for FileJournal {
    fn sync(&self) -> Flush<'_> {
        Box::pin(self.wait_synced())
    }

    fn append(&self, record: &Record) -> std::io::Result<()> {
        let bytes = frame(record)?;
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = (&**file).write_all(&bytes) {
            // A full disk can take part of the frame: cut it off, or once writes go on again it would sit between
            // good records, where a replay takes it for corruption.
            let _ = file.set_len(self.written.load(Ordering::SeqCst));
            return Err(e);
        }
        self.written.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    fn rewrite_due(&self) -> bool {
        let written = self.written.load(Ordering::SeqCst);
        written >= self.min_rewrite_bytes
            && written >= self.base.load(Ordering::SeqCst).saturating_mul(GROWTH_BEFORE_REWRITE)
    }

    fn replace_with(&self, snapshot: &Record) -> std::io::Result<()> {
        let before = self.size_bytes();
        self.rewrite(snapshot)?;
        tracing::info!(before, after = self.size_bytes(), "journal rewritten as a snapshot of the live state");
        Ok(())
    }
}

fn frame(record: &Record) -> std::io::Result<Vec<u8>> {
    let payload = match record {
        Record::Changes { revision, events } if events.iter().any(|e| e.prev_kv.is_some()) => {
            let events = events.iter().map(|e| Event { prev_kv: None, ..e.clone() }).collect();
            postcard::to_stdvec(&Record::Changes { revision: *revision, events })
        }
        _ => postcard::to_stdvec(record),
    }
    .map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(payload.len() + 8);
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// A journal that cannot be read back whole: a bad record that is not a torn last write.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the record at byte {offset} {reason}")]
    BadRecord { offset: u64, reason: String },
}

/// One frame as the file holds it.
struct Frame {
    offset: u64,
    crc: u32,
    payload: Vec<u8>,
}

/// Reads the frame at the reader's position, `None` at the end of the file or for a frame cut short there.
fn next_frame(reader: &mut impl Read, offset: u64, file_len: u64) -> std::io::Result<Option<Frame>> {
    let mut header = [0u8; 8];
    if offset + 8 > file_len {
        return Ok(None);
    }
    reader.read_exact(&mut header)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as u64;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    // The length is checked against the file before anything is allocated for it.
    if offset + 8 + len > file_len {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload)?;
    Ok(Some(Frame { offset, crc, payload }))
}

/// Reads every record; returns them, where each starts, and the length of the good part. A bad last frame is
/// a write torn by a crash and is left out; a bad frame with more after it is corruption, and an error.
fn read_records(file: &File) -> Result<(Vec<Record>, Vec<u64>, u64), OpenError> {
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::new(file.try_clone()?);
    reader.seek(SeekFrom::Start(0))?;
    let mut records = Vec::new();
    let mut offsets = Vec::new();
    let mut good = 0u64;
    while let Some(frame) = next_frame(&mut reader, good, file_len)? {
        let end = frame.offset + 8 + frame.payload.len() as u64;
        let last = end == file_len;
        if crc32fast::hash(&frame.payload) != frame.crc {
            if last {
                break;
            }
            return Err(OpenError::BadRecord { offset: frame.offset, reason: "fails its checksum".into() });
        }
        match postcard::from_bytes::<Record>(&frame.payload) {
            Ok(record) => {
                records.push(record);
                offsets.push(frame.offset);
            }
            Err(e) => {
                let reason = format!("passes its checksum but cannot be decoded ({e})");
                return Err(OpenError::BadRecord { offset: frame.offset, reason });
            }
        }
        good = end;
    }
    if good < file_len {
        // A frame that runs past the end is a torn last write, unless a whole record follows it: then its
        // length was damaged, and cutting there would drop every later record.
        let mut tail = Vec::with_capacity((file_len - good) as usize);
        let mut file = file.try_clone()?;
        file.seek(SeekFrom::Start(good))?;
        file.read_to_end(&mut tail)?;
        if let Some(next) = whole_record_in(&tail[1..]) {
            let reason = format!(
                "runs past the end of the file, but a whole record starts at byte {}: its length is damaged",
                good + 1 + next
            );
            return Err(OpenError::BadRecord { offset: good, reason });
        }
    }
    Ok((records, offsets, good))
}

/// Where the first whole frame in `bytes` starts (its length fits, its checksum matches and it decodes).
fn whole_record_in(bytes: &[u8]) -> Option<u64> {
    (0..bytes.len().saturating_sub(8)).find_map(|at| {
        let rest = &bytes[at..];
        let frame = next_frame(&mut &rest[..], 0, rest.len() as u64).ok()??;
        let whole =
            crc32fast::hash(&frame.payload) == frame.crc && postcard::from_bytes::<Record>(&frame.payload).is_ok();
        whole.then_some(at as u64)
    })
}

/// How to repair a journal whose replay stopped at a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    /// Drop the one record that starts at this byte, keep the rest.
    SkipRecord(u64),
    /// Drop the record that starts at this byte and everything after it.
    TruncateAt(u64),
}

/// Applies `repair` to the journal in `dir`, after copying it to a backup file whose path is returned.
pub fn repair(dir: &Path, repair: Repair) -> std::io::Result<PathBuf> {
    let path = dir.join(JOURNAL_FILE);
    let bytes = std::fs::read(&path)?;
    let offset = match repair {
        Repair::SkipRecord(offset) | Repair::TruncateAt(offset) => offset,
    };
    // Walk the frames to the one named (a bad record's checksum does not matter here).
    let mut reader = std::io::Cursor::new(&bytes);
    let mut at = 0u64;
    let frame_end = loop {
        match next_frame(&mut reader, at, bytes.len() as u64)? {
            Some(frame) if at < offset => at += 8 + frame.payload.len() as u64,
            Some(frame) if at == offset => break at + 8 + frame.payload.len() as u64,
            // A frame cut short by the end of the file runs to it.
            None if at == offset && at < bytes.len() as u64 => break bytes.len() as u64,
            _ => return Err(std::io::Error::other(format!("no record of {} starts at byte {offset}", path.display()))),
        }
    };
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let backup = path.with_extension(format!("log.{seconds}.bak"));
    std::fs::copy(&path, &backup)?;
    let kept: Vec<u8> = match repair {
        Repair::SkipRecord(_) => [&bytes[..offset as usize], &bytes[frame_end as usize..]].concat(),
        Repair::TruncateAt(_) => bytes[..offset as usize].to_vec(),
    };
    replace_file(&path, &kept)?;
    Ok(backup)
}

/// Replaces the file at `path` with `bytes`, atomically and durably (a new file renamed over it, then its folder
/// flushed).
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut out = File::create(&tmp)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdp_kvstore::{EventKind, KeyValue};

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

    /// A write through the store in this process (the components `sdp up` runs beside its server) is answered
    /// once its record is on disk, as a client's over gRPC is; its commit is visible before.
    #[tokio::test]
    async fn an_in_process_write_is_answered_once_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let r = FileJournal::open(dir.path()).unwrap();
        let journal = Arc::new(r.journal);
        journal.start_syncer().unwrap();
        let store = sdp_kvstore::Store::recover(Some(journal.clone()), r.records, Default::default()).unwrap();
        let config = sdp_config::Config::in_process(store);
        let on_disk = || journal.durable.borrow().synced == journal.size_bytes();
        config.txn(|t| async move { t.put_json("/subarray/1", &"READY").await }).await.unwrap();
        assert!(journal.size_bytes() > 0 && on_disk());
        let ((), durable) =
            config.txn_committed(|t| async move { t.put_json("/subarray/1", &"SCANNING").await }).await.unwrap();
        durable.wait().await.unwrap();
        assert!(on_disk());
        // A transaction that only reads waits for nothing.
        let read = config.txn(|t| async move { t.get_json::<String>("/subarray/1").await }).await.unwrap();
        assert_eq!(read.as_deref(), Some("SCANNING"));
    }

    /// Journals written by earlier versions are read by this one: a record's frame is the same bytes.
    #[test]
    fn a_frame_keeps_its_bytes() {
        let mut record = put(7, "/pb/pb-1/state");
        if let Record::Changes { events, .. } = &mut record {
            events[0].prev_kv = Some(events[0].kv.clone());
        }
        let bytes = frame(&record).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "1a000000b1e1d53f000e01000e2f70622f70622d312f737461746501760e0e020000");
        assert_eq!(postcard::from_bytes::<Record>(&bytes[8..]).unwrap(), put(7, "/pb/pb-1/state"));
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
    fn a_damaged_length_in_an_older_record_is_an_error_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let offsets: Vec<u64> = {
            let r = FileJournal::open(dir.path()).unwrap();
            let offsets = ["a", "b", "c"]
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    let at = r.journal.size_bytes();
                    r.journal.append(&put(i as i64 + 2, key)).unwrap();
                    at
                })
                .collect();
            futures::executor::block_on(r.journal.sync()).unwrap();
            offsets
        };
        let path = dir.path().join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        // The second record's length, now past the end of the file.
        bytes[offsets[1] as usize + 2] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let Err(OpenError::BadRecord { offset, reason }) = FileJournal::open(dir.path()) else {
            panic!("a damaged length was taken for a torn tail");
        };
        assert_eq!(offset, offsets[1]);
        assert_eq!(
            reason,
            format!(
                "runs past the end of the file, but a whole record starts at byte {}: its length is damaged",
                offsets[2]
            )
        );
        // Nothing was cut off.
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    /// A journal of four records in a fresh folder: the folder and where each record starts.
    fn four_records() -> (tempfile::TempDir, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let r = FileJournal::open(dir.path()).unwrap();
        let offsets = (0..4)
            .map(|i| {
                let at = r.journal.size_bytes();
                r.journal.append(&put(i + 2, &format!("key-{i}"))).unwrap();
                at
            })
            .collect();
        futures::executor::block_on(r.journal.sync()).unwrap();
        (dir, offsets)
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 512, failure_persistence: None, ..Default::default() })]

        /// Whatever the file holds, opening it gives records or an error, never a panic.
        #[test]
        fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(JOURNAL_FILE), &bytes).unwrap();
            match FileJournal::open(dir.path()) {
                Ok(r) => proptest::prop_assert!(r.truncated <= bytes.len() as u64),
                Err(OpenError::BadRecord { reason, .. }) => proptest::prop_assert!(!reason.is_empty()),
                Err(OpenError::Io(e)) => proptest::prop_assert!(false, "{e}"),
            }
        }

        /// A byte damaged anywhere: the damaged record and every later one are refused by the offset where it
        /// starts, except that damage in the last record may be a torn last write, cut off alone.
        #[test]
        fn a_damaged_byte_never_loses_an_earlier_record_silently(at in proptest::prelude::any::<proptest::sample::Index>(), flip in 1u8..=255) {
            let (dir, offsets) = four_records();
            let path = dir.path().join(JOURNAL_FILE);
            let mut bytes = std::fs::read(&path).unwrap();
            let at = at.index(bytes.len());
            bytes[at] ^= flip;
            std::fs::write(&path, &bytes).unwrap();
            let damaged = offsets.iter().rposition(|&start| start as usize <= at).unwrap();
            match FileJournal::open(dir.path()) {
                Ok(r) => {
                    proptest::prop_assert_eq!(damaged, 3, "damage in record {} went unnoticed", damaged);
                    proptest::prop_assert_eq!(r.records, (0..3).map(|i| put(i + 2, &format!("key-{i}"))).collect::<Vec<_>>());
                }
                Err(OpenError::BadRecord { offset, .. }) => proptest::prop_assert_eq!(offset, offsets[damaged]),
                Err(OpenError::Io(e)) => proptest::prop_assert!(false, "{e}"),
            }
        }
    }

    #[test]
    fn rewriting_one_key_does_not_grow_the_journal_without_end() {
        use sdp_kvstore::{Limits, PutRequest, Store};
        let dir = tempfile::tempdir().unwrap();
        let mut opened = FileJournal::open(dir.path()).unwrap();
        opened.journal.min_rewrite_bytes = 1 << 20;
        let journal = Arc::new(opened.journal);
        let store = Store::recover(Some(journal.clone()), [], Limits::default()).unwrap();
        let mut largest = 0;
        for i in 0..200u8 {
            store.put(PutRequest { key: b"one".to_vec(), value: vec![i; 100 << 10], ..Default::default() }).unwrap();
            largest = largest.max(journal.size_bytes());
        }
        // 200 versions of 100 KiB: 20 MiB journaled without rewrites, 40 MiB with previous values.
        assert!(largest < 5 << 20, "the journal grew to {largest} bytes");
        drop((store, journal));
        let reopened = FileJournal::open(dir.path()).unwrap();
        let store = Store::recover(None, reopened.records, Limits::default()).unwrap();
        let (read, _) = store
            .range(&sdp_kvstore::RangeRequest { range: sdp_kvstore::KeyRange::single("one"), ..Default::default() })
            .unwrap();
        assert_eq!(read.kvs[0].value, vec![199u8; 100 << 10]);
        assert_eq!(read.kvs[0].version, 200);
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
