//! Property test of path confinement: whatever a client sends, a path that is accepted resolves inside its root,
//! on a real tree with symbolic links leading out.

use proptest::prelude::*;
use sdp_staging::paths::{check_relative, resolve_source, resolve_target, Root, Source};

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("/".to_string()),
        Just("out".to_string()),
        Just("in".to_string()),
        Just("f".to_string()),
        Just("%2e".to_string()),
        Just("%2F".to_string()),
        Just("\\".to_string()),
        Just("\0".to_string()),
        Just("~".to_string()),
        "[a-z.%/]{1,4}",
    ]
}

fn path_text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..8).prop_map(|parts| parts.join(""))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn accepted_paths_stay_inside(source in path_text(), target in path_text()) {
        let dir = tempfile::tempdir().unwrap();
        let (root, users, outside) = (dir.path().join("root"), dir.path().join("users"), dir.path().join("outside"));
        for d in [&root.join("in"), &users.join("alice/in"), &outside] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(root.join("in/f"), "f").unwrap();
        std::fs::write(outside.join("f"), "secret").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
        std::os::unix::fs::symlink(&outside, users.join("alice/out")).unwrap();
        let root_c = root.canonicalize().unwrap();
        let outside_c = outside.canonicalize().unwrap();

        if let Ok(rel) = check_relative(&source, Root::Storage) {
            prop_assert!(!source.contains('\0') && !source.starts_with('/') && !source.contains("%2"));
            match resolve_source(&root, &rel, &source) {
                Ok(Source::Found(p)) => prop_assert!(p.starts_with(&root_c), "{source:?} -> {p:?}"),
                Ok(Source::Missing(p)) => prop_assert!(!p.starts_with(&outside_c) && p.starts_with(&root_c)),
                Err(_) => {}
            }
        }
        if let Ok(rel) = check_relative(&target, Root::UserArea) {
            if let Ok(t) = resolve_target(&users, "alice", &rel, &target) {
                // Writing there (creating the folders first) lands inside the user's area.
                let area = users.canonicalize().unwrap().join("alice");
                let parent = t.parent().unwrap();
                if std::fs::create_dir_all(parent).is_ok() {
                    prop_assert!(parent.canonicalize().unwrap().starts_with(&area), "{target:?} -> {t:?}");
                }
            }
        }
        prop_assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    }
}
