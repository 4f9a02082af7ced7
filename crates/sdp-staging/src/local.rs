//! Filesystem staging: the plan of what a source holds, its read-only copy and the symbolic link.

use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of copied files and folders: read-only for the owner, as the original sets.
pub const FILE_MODE: u32 = 0o400;
pub const DIR_MODE: u32 = 0o500;
/// Bytes copied between two progress updates.
const STEP: u64 = 64 << 20;

/// Bytes done out of bytes to do, shared with whoever reports progress.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress {
    pub fn set_total(&self, n: u64) {
        self.total.store(n, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> (u64, u64) {
        (self.done.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed))
    }
}

/// One thing a source holds, by its path relative to the source (empty for a single-file source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Dir(PathBuf),
    File { rel: PathBuf, from: PathBuf, len: u64 },
}

/// Everything to stage from one source, folders before what they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub items: Vec<Item>,
    pub total: u64,
}

/// Why a source cannot be staged as it is.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the source holds `{0}`, a symbolic link leading outside the storage root or to a folder: it is not staged; remove the link or stage its target")]
    Link(String),
    #[error("the source holds `{0}`, which is neither a file nor a folder (device, socket or pipe): stage the files beside it")]
    Special(String),
    #[error("cannot read the source {path}: {source}")]
    Io { path: String, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PlanError + '_ {
    move |source| PlanError::Io { path: path.display().to_string(), source }
}

/// Walks `src` (canonical, inside the canonical `root`). Symbolic links inside a tree are followed only to files
/// inside the root; anything else refuses the whole source, before anything is written.
pub fn plan(src: &Path, root: &Path) -> Result<Plan, PlanError> {
    let meta = fs::metadata(src).map_err(io_err(src))?;
    if meta.is_file() {
        let item = Item::File { rel: PathBuf::new(), from: src.to_path_buf(), len: meta.len() };
        return Ok(Plan { items: vec![item], total: meta.len() });
    }
    let mut items = vec![Item::Dir(PathBuf::new())];
    let mut total = 0;
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        let full = src.join(&dir);
        let mut names: Vec<_> = fs::read_dir(&full)
            .map_err(io_err(&full))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err(&full))?;
        names.sort();
        for name in names {
            let rel = dir.join(&name);
            let path = src.join(&rel);
            let lmeta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            let kind = lmeta.file_type();
            if kind.is_symlink() {
                let target = path.canonicalize().ok().filter(|t| t.starts_with(root) && t.is_file());
                let target = target.ok_or_else(|| PlanError::Link(rel.display().to_string()))?;
                let len = fs::metadata(&target).map_err(io_err(&target))?.len();
                total += len;
                items.push(Item::File { rel, from: target, len });
            } else if kind.is_dir() {
                items.push(Item::Dir(rel.clone()));
                pending.push(rel);
            } else if kind.is_file() {
                total += lmeta.len();
                items.push(Item::File { rel, from: path, len: lmeta.len() });
            } else {
                return Err(PlanError::Special(rel.display().to_string()));
            }
        }
    }
    Ok(Plan { items, total })
}

/// Copies the plan to `dest` (which must not exist): files 0400, folders 0500, through a temporary name beside
/// `dest` so a failed copy leaves nothing behind. The source is only read.
pub fn copy(plan: &Plan, dest: &Path, progress: &Progress) -> io::Result<()> {
    let name = dest.file_name().ok_or_else(|| io::Error::other("target has no file name"))?;
    // Unique per copy: two requests for one target never share (or clean up) each other's files.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = dest.with_file_name(format!(
        ".{}.staging-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = copy_into(plan, &tmp, progress).and_then(|()| fs::rename(&tmp, dest));
    if result.is_err() {
        remove_partial(&tmp);
    }
    result
}

fn copy_into(plan: &Plan, dest: &Path, progress: &Progress) -> io::Result<()> {
    for item in &plan.items {
        match item {
            Item::Dir(rel) => fs::create_dir(join(dest, rel))?,
            Item::File { rel, from, .. } => {
                let to = join(dest, rel);
                copy_file(from, &to, progress)?;
                fs::set_permissions(&to, fs::Permissions::from_mode(FILE_MODE))?;
            }
        }
    }
    for item in plan.items.iter().rev() {
        if let Item::Dir(rel) = item {
            fs::set_permissions(join(dest, rel), fs::Permissions::from_mode(DIR_MODE))?;
        }
    }
    Ok(())
}

fn join(base: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

/// Copies one file in steps (the kernel copies, `copy_file_range`), counting progress after each.
fn copy_file(from: &Path, to: &Path, progress: &Progress) -> io::Result<()> {
    use io::Read;
    let src = fs::File::open(from)?;
    let mut dst = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(to)?;
    loop {
        let n = io::copy(&mut (&src).take(STEP), &mut dst)?;
        if n == 0 {
            return Ok(());
        }
        progress.add(n);
    }
}

/// Removes a partial copy, making its read-only folders writable first.
fn remove_partial(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                remove_partial(&e.path());
            }
        }
        let _ = fs::remove_dir(path);
    } else {
        let _ = fs::remove_file(path);
    }
}

/// Makes `link` a symbolic link to `source`. Nothing is done to the source (no chmod through the link).
pub fn symlink(source: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(source, link)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn tree_copied_read_only_source_untouched() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        let root = dir.path().join("root").canonicalize().unwrap();
        fs::create_dir_all(root.join("t/sub")).unwrap();
        fs::write(root.join("t/a"), "aaa").unwrap();
        fs::write(root.join("t/sub/b"), "bb").unwrap();
        fs::write(root.join("other"), "o").unwrap();
        std::os::unix::fs::symlink(root.join("other"), root.join("t/l")).unwrap();
        let before = mode(&root.join("t/a"));
        let p = plan(&root.join("t"), &root).unwrap();
        assert_eq!(p.total, 6);
        let progress = Progress::default();
        let dest = dir.path().join("dest");
        copy(&p, &dest, &progress).unwrap();
        assert_eq!(progress.get().0, 6);
        assert_eq!(fs::read_to_string(dest.join("sub/b")).unwrap(), "bb");
        assert_eq!(fs::read_to_string(dest.join("l")).unwrap(), "o");
        assert_eq!((mode(&dest), mode(&dest.join("sub")), mode(&dest.join("a"))), (0o500, 0o500, 0o400));
        assert_eq!(mode(&root.join("t/a")), before);
        // A link leading out refuses the whole tree.
        std::os::unix::fs::symlink("/etc/hostname", root.join("t/out")).unwrap();
        assert!(matches!(plan(&root.join("t"), &root), Err(PlanError::Link(l)) if l == "out"));
    }

    #[test]
    fn failed_copy_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("f");
        fs::write(&src, "x").unwrap();
        let mut p = plan(&src, dir.path()).unwrap();
        p.items.push(Item::File { rel: "missing".into(), from: dir.path().join("nope"), len: 0 });
        p.items.insert(0, Item::Dir(PathBuf::new()));
        p.items[1] = Item::File { rel: "f".into(), from: src.clone(), len: 1 };
        let dest = dir.path().join("out");
        assert!(copy(&p, &dest, &Progress::default()).is_err());
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("f")]);
    }
}
