//! The configuration database's key layout: the only place that formats or parses stored keys.
//!
//! Logical paths (`/pb/realtime-20191121-0000/owner`) are stored "depth-tagged": the number of `/` in the
//! path, then the path (`3/pb/realtime-20191121-0000/owner`). This is the original tool's encoding, kept so
//! that both can share one database.

use crate::error::Error;

/// Validates a logical key path: starts with `/`, does not end with `/`, only `[a-zA-Z0-9_-/]`.
pub fn check_path(path: &str) -> Result<(), Error> {
    check_path_chars(path)?;
    if path.len() > 1 && path.ends_with('/') {
        return Err(Error::InvalidPath { path: path.into(), reason: "Key path must not end with '/'!" });
    }
    Ok(())
}

/// Validates a path used as a listing prefix, where a trailing `/` is allowed.
pub fn check_path_chars(path: &str) -> Result<(), Error> {
    if !path.starts_with('/') {
        return Err(Error::InvalidPath { path: path.into(), reason: "Path must start with '/'!" });
    }
    if !path.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'/') {
        return Err(Error::InvalidPath { path: path.into(), reason: "Path contains non-permissable characters!" });
    }
    Ok(())
}

pub fn depth(path: &str) -> usize {
    path.bytes().filter(|b| *b == b'/').count()
}

/// The stored key of a logical path, tagged with its own depth.
pub fn tag(path: &str) -> String {
    tag_at(path, depth(path))
}

/// The stored key prefix of `path` at an explicit depth (for listing deeper levels).
pub fn tag_at(path: &str, depth: usize) -> String {
    format!("{depth}{path}")
}

/// The logical path of a stored key; `None` for keys not written in this layout.
pub fn untag(key: &str) -> Option<&str> {
    let start = key.find('/')?;
    key[..start].parse::<usize>().ok()?;
    Some(&key[start..])
}

/// IDs are 1–64 characters of `[A-Za-z0-9-]`.
pub fn validate_id(what: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::Invalid(format!("{what} ID {id:?} must be 1 to 64 characters of A-Z, a-z, 0-9 and '-'")));
    }
    Ok(())
}

/// Key paths of the entities, one function each.
pub mod paths {
    pub const PB: &str = "/pb";
    pub const DEPLOY: &str = "/deploy";
    pub const SUBARRAY: &str = "/subarray";
    pub const RESOURCE: &str = "/resource";
    pub const EB: &str = "/eb";
    /// The SDP master device's entry.
    pub const MASTER: &str = "/master";
    /// Processing script definitions.
    pub const SCRIPT: &str = "/script";

    pub fn pb(pb_id: &str) -> String {
        format!("{PB}/{pb_id}")
    }
    pub fn pb_owner(pb_id: &str) -> String {
        format!("{PB}/{pb_id}/owner")
    }
    pub fn pb_state(pb_id: &str) -> String {
        format!("{PB}/{pb_id}/state")
    }
    pub fn deploy(deploy_id: &str) -> String {
        format!("{DEPLOY}/{deploy_id}")
    }
    pub fn deploy_state(deploy_id: &str) -> String {
        format!("{DEPLOY}/{deploy_id}/state")
    }
    pub fn subarray(subarray_id: &str) -> String {
        format!("{SUBARRAY}/{subarray_id}")
    }
    pub fn script(script_id: &str) -> String {
        format!("{SCRIPT}/{script_id}")
    }
    pub fn eb(eb_id: &str) -> String {
        format!("{EB}/{eb_id}")
    }
    pub fn resource(kind: &str, name: &str) -> String {
        format!("{RESOURCE}/{kind}/{name}")
    }
    /// A key below `parent` (`/pb`, `/deploy`): the entity's ID and the sub-entry if any (`state`, `owner`), so
    /// `/pb/x/state` is `("x", Some("state"))` and `/pb/x` is `("x", None)`; `None` for keys not below it.
    pub fn entry_of<'a>(parent: &str, path: &'a str) -> Option<(&'a str, Option<&'a str>)> {
        let rest = path.strip_prefix(parent)?.strip_prefix('/')?;
        Some(match rest.split_once('/') {
            Some((id, sub)) => (id, Some(sub)),
            None => (rest, None),
        })
    }

    /// The leadership entry of a component (`processing`, `helmdeploy`): the owner of the leading replica.
    pub fn leader(component: &str) -> String {
        format!("/controller/{component}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_by_depth() {
        assert_eq!(tag("/pb/x"), "2/pb/x");
        assert_eq!(tag("/pb/x/owner"), "3/pb/x/owner");
        assert_eq!(tag_at("/pb/", 3), "3/pb/");
        assert_eq!(untag("12/a/b"), Some("/a/b"));
        assert_eq!(untag("x/a"), None);
        assert_eq!(untag("nokey"), None);
    }

    #[test]
    fn entries_and_their_sub_entries() {
        assert_eq!(paths::entry_of(paths::PB, "/pb/x"), Some(("x", None)));
        assert_eq!(paths::entry_of(paths::PB, "/pb/x/state"), Some(("x", Some("state"))));
        assert_eq!(paths::entry_of(paths::DEPLOY, "/pb/x"), None);
        assert_eq!(paths::entry_of(paths::PB, "/pbx/y"), None);
    }

    #[test]
    fn rejects_bad_paths_with_the_original_messages() {
        let msg = |p: &str| check_path(p).unwrap_err().to_string();
        assert!(msg("pb").contains("Path must start with '/'!"));
        assert!(msg("/pb/").contains("Key path must not end with '/'!"));
        assert!(msg("/pb/a b").contains("Path contains non-permissable characters!"));
        assert!(msg("/pb/ä").contains("non-permissable"));
        check_path("/pb/realtime-20191121-0000").unwrap();
        check_path("/").unwrap();
        check_path_chars("/pb/").unwrap();
    }
}
