//! Confinement of user-supplied paths to the configured roots, and validation of usernames.
//!
//! Two steps: [`check_relative`] is a pure, lexical check of the text a client sent; [`resolve_source`] and
//! [`resolve_target`] then join it to a root and check, on the real filesystem, that symlinks do not lead out.

use std::path::{Component, Path, PathBuf};

/// Longest accepted path (bytes), as Linux's PATH_MAX.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted path component (bytes), as Linux's NAME_MAX.
pub const MAX_NAME_BYTES: usize = 255;

/// Why a path or username is refused. Every variant answers 400; the message says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{what} is empty: give a path relative to the {root}")]
    Empty { what: &'static str, root: &'static str },
    #[error("{what} contains a NUL or control character: remove it")]
    ControlCharacter { what: &'static str },
    #[error("{what} is longer than {MAX_PATH_BYTES} bytes (or has a component over {MAX_NAME_BYTES}): shorten it")]
    TooLong { what: &'static str },
    #[error("{what} `{path}` is absolute: give it relative to the {root}")]
    Absolute { what: &'static str, path: String, root: &'static str },
    #[error("{what} `{path}` contains `..`: paths must stay inside the {root}")]
    Traversal { what: &'static str, path: String, root: &'static str },
    #[error("{what} `{path}` contains a backslash or a percent-encoded separator, dot or NUL: send the plain path")]
    Encoded { what: &'static str, path: String },
    #[error("{what} `{path}` leads outside the {root} (through a symbolic link): choose a path inside it")]
    Escapes { what: &'static str, path: String, root: &'static str },
    #[error(
        "invalid username `{0}`: use 1 to 64 characters from letters, digits, `.`, `_`, `-`, not starting with `.` or `-`"
    )]
    Username(String),
}

/// Which root a path is relative to, for the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Storage,
    UserArea,
}

impl Root {
    fn what(self) -> &'static str {
        match self {
            Root::Storage => "local_path_on_storage",
            Root::UserArea => "relative_path",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Root::Storage => "storage root",
            Root::UserArea => "user's area",
        }
    }
}

/// Lexical check of a client-supplied relative path: no NUL or control characters, not over-long, not absolute,
/// no `..`, no backslashes or percent-encoded separators, dots or NULs. Returns the normalised relative path
/// (`.` components and repeated slashes dropped), which may be empty when the input is `.` or `./`.
pub fn check_relative(input: &str, root: Root) -> Result<PathBuf, PathError> {
    let (what, root_name) = (root.what(), root.name());
    if input.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter { what });
    }
    if input.len() > MAX_PATH_BYTES || input.split('/').any(|c| c.len() > MAX_NAME_BYTES) {
        return Err(PathError::TooLong { what });
    }
    if input.contains('\\') || has_encoded_specials(input) {
        return Err(PathError::Encoded { what, path: input.to_string() });
    }
    let path = Path::new(input);
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(PathError::Traversal { what, path: input.to_string(), root: root_name })
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(PathError::Absolute { what, path: input.to_string(), root: root_name })
            }
        }
    }
    if input.starts_with('~') {
        return Err(PathError::Absolute { what, path: input.to_string(), root: root_name });
    }
    Ok(out)
}

/// Whether `input` holds a percent-encoded `.`, `/`, `\`, `%` or NUL (in any case, also double-encoded).
fn has_encoded_specials(input: &str) -> bool {
    let lower = input.to_ascii_lowercase();
    ["%2e", "%2f", "%5c", "%25", "%00", "%c0", "%c1", "%e0%80"].iter().any(|e| lower.contains(e))
}

/// Validates a username: 1 to 64 of `[A-Za-z0-9._-]`, not starting with `.` or `-`.
pub fn check_username(name: &str) -> Result<&str, PathError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(name)
    } else {
        Err(PathError::Username(name.chars().take(80).collect()))
    }
}

/// The result of resolving a source path.
#[derive(Debug)]
pub enum Source {
    /// The canonical path, inside the root.
    Found(PathBuf),
    /// Nothing there (and the part that exists is inside the root).
    Missing(PathBuf),
}

/// Resolves `relative` (already checked) under `root`, following symlinks, and checks the result stays inside
/// the canonical root.
pub fn resolve_source(root: &Path, relative: &Path, input: &str) -> Result<Source, PathError> {
    let root_c = canonical_root(root);
    let full = root_c.join(relative);
    let escapes =
        || PathError::Escapes { what: "local_path_on_storage", path: input.to_string(), root: "storage root" };
    match full.canonicalize() {
        Ok(c) if c.starts_with(&root_c) => Ok(Source::Found(c)),
        Ok(_) => Err(escapes()),
        Err(_) => {
            let existing = deepest_existing(&full).ok_or_else(escapes)?;
            if existing.starts_with(&root_c) {
                Ok(Source::Missing(full))
            } else {
                Err(escapes())
            }
        }
    }
}

/// Resolves where `relative` (already checked) goes in `<root>/<username>`: the user's area must not be a
/// symbolic link, and every symbolic link met on the way (the final name included) must resolve inside the
/// user's area; a dangling one is refused too. Returns the target path (its parent folders may still have to be
/// created).
pub fn resolve_target(root: &Path, username: &str, relative: &Path, input: &str) -> Result<PathBuf, PathError> {
    let area = canonical_root(root).join(username);
    let escapes = || PathError::Escapes { what: "relative_path", path: input.to_string(), root: "user's area" };
    if relative.as_os_str().is_empty() {
        return Err(PathError::Empty { what: "relative_path", root: "user's area" });
    }
    let is_link = |p: &Path| p.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink());
    if is_link(&area) {
        return Err(escapes());
    }
    let mut at = area.clone();
    for part in relative.components() {
        at.push(part);
        if is_link(&at) {
            if !at.canonicalize().is_ok_and(|c| c.starts_with(&area)) {
                return Err(escapes());
            }
        } else if at.symlink_metadata().is_err() {
            break;
        }
    }
    Ok(area.join(relative))
}

/// The canonical form of a configured root (as given, when it does not exist).
pub fn canonical_root(root: &Path) -> PathBuf {
    root.canonicalize().unwrap_or_else(|_| root.to_path_buf())
}

/// Canonical form of the deepest ancestor of `path` (itself included) that exists.
fn deepest_existing(path: &Path) -> Option<PathBuf> {
    path.ancestors().find_map(|a| a.canonicalize().ok())
}

/// A Rucio data identifier `scope:name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Did {
    pub scope: String,
    pub name: String,
}

/// Reads `input` as a Rucio DID when it has the form `scope:name` (scope of letters, digits, `._-`, no `/`
/// before the colon, name not empty).
pub fn parse_did(input: &str) -> Option<Did> {
    let (scope, name) = input.split_once(':')?;
    let scope_ok = !scope.is_empty()
        && scope.len() <= 30
        && scope.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (scope_ok && !name.is_empty() && !name.contains(':'))
        .then(|| Did { scope: scope.to_string(), name: name.to_string() })
}

/// Picks, from the physical file names of a DID's replicas, the first one lying under `storage_root`, as a path
/// relative to it. `file://`, `root://host//path`, `davs://host:port/path` and plain absolute paths are read by
/// their path part.
pub fn replica_on_storage<'a>(pfns: impl IntoIterator<Item = &'a str>, storage_root: &Path) -> Option<String> {
    let root = storage_root.to_str()?.trim_end_matches('/');
    pfns.into_iter().find_map(|pfn| {
        let path = match pfn.split_once("://") {
            Some((_, rest)) => &rest[rest.find('/')?..],
            None => pfn,
        };
        // `root://host//abs/path` keeps a double slash before the absolute path.
        let path = format!("/{}", path.trim_start_matches('/'));
        let rel = path.strip_prefix(root)?.strip_prefix('/')?;
        (!rel.is_empty()).then(|| rel.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_accepted_and_normalised() {
        for (input, want) in [
            ("data1", "data1"),
            ("a/b/c.ms", "a/b/c.ms"),
            ("./a//b/", "a/b"),
            ("a/./b", "a/b"),
            ("name with spaces", "name with spaces"),
            ("100%done", "100%done"),
            ("dots..in..name", "dots..in..name"),
            (".hidden", ".hidden"),
            (".", ""),
        ] {
            assert_eq!(check_relative(input, Root::Storage).unwrap(), PathBuf::from(want), "{input}");
        }
    }

    #[test]
    fn attacks_refused() {
        let long = "a/".repeat(2100);
        let long_name = "x".repeat(256);
        for (input, kind) in [
            ("../etc/passwd", "Traversal"),
            ("a/../../b", "Traversal"),
            ("a/..", "Traversal"),
            ("/etc/passwd", "Absolute"),
            ("~root/.ssh", "Absolute"),
            ("a\0b", "ControlCharacter"),
            ("a\nb", "ControlCharacter"),
            ("%2e%2e/etc", "Encoded"),
            ("..%2Fetc", "Encoded"),
            ("%252e%252e/x", "Encoded"),
            ("a%00.txt", "Encoded"),
            ("..\\..\\x", "Encoded"),
            ("%c0%ae%c0%ae/x", "Encoded"),
            (long.as_str(), "TooLong"),
            (long_name.as_str(), "TooLong"),
        ] {
            let err = check_relative(input, Root::UserArea).unwrap_err();
            assert!(format!("{err:?}").starts_with(kind), "{input:?}: {err:?}");
        }
    }

    #[test]
    fn usernames() {
        for ok in ["alice", "a", "j.doe", "user_1", "x-y", &"a".repeat(64)] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "-rf", ".hidden", "a/b", "a b", "ä", &"a".repeat(65), "a\0"] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dids() {
        assert_eq!(parse_did("user.alice:file.ms"), Some(Did { scope: "user.alice".into(), name: "file.ms".into() }));
        assert_eq!(parse_did("plain/path"), None);
        assert_eq!(parse_did("dir/with:colon"), None);
        assert_eq!(parse_did(":x"), None);
        assert_eq!(parse_did("s:"), None);
    }

    #[test]
    fn replicas_mapped_to_storage() {
        let root = Path::new("/mnt/storage_a");
        for (pfns, want) in [
            (vec!["file:///mnt/storage_a/scope/f.ms"], Some("scope/f.ms")),
            (vec!["root://xrd.example:1094//mnt/storage_a/x"], Some("x")),
            (vec!["davs://elsewhere/data/x", "/mnt/storage_a/y/z"], Some("y/z")),
            (vec!["https://host/mnt/storage_ab/x"], None),
            (vec!["/mnt/storage_a"], None),
            (vec![], None),
        ] {
            assert_eq!(replica_on_storage(pfns.clone(), root).as_deref(), want, "{pfns:?}");
        }
    }

    #[test]
    fn symlink_escape_refused_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::fs::write(root.join("ok"), "o").unwrap();
        assert!(matches!(resolve_source(&root, Path::new("ok"), "ok"), Ok(Source::Found(_))));
        assert!(matches!(resolve_source(&root, Path::new("nope"), "nope"), Ok(Source::Missing(_))));
        assert!(matches!(resolve_source(&root, Path::new("link/secret"), "x"), Err(PathError::Escapes { .. })));
        assert!(matches!(resolve_source(&root, Path::new("link/none"), "x"), Err(PathError::Escapes { .. })));
        std::fs::create_dir_all(root.join("alice")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("alice/out")).unwrap();
        assert!(resolve_target(&root, "alice", Path::new("new/file"), "x").is_ok());
        assert!(resolve_target(&root, "bob", Path::new("new/file"), "x").is_ok());
        assert!(matches!(resolve_target(&root, "alice", Path::new("out/f"), "x"), Err(PathError::Escapes { .. })));
        assert!(matches!(resolve_target(&root, "alice", Path::new("out"), "x"), Err(PathError::Escapes { .. })));
        std::os::unix::fs::symlink(dir.path().join("nowhere"), root.join("alice/dangling")).unwrap();
        assert!(matches!(resolve_target(&root, "alice", Path::new("dangling/f"), "x"), Err(PathError::Escapes { .. })));
        std::os::unix::fs::symlink(root.join("alice"), root.join("alice/self")).unwrap();
        assert!(resolve_target(&root, "alice", Path::new("self/f"), "x").is_ok());
    }
}
