//! The workspace's modules import in one direction: no module of a crate imports one that imports it back
//! (a crate's root counts as a module: a module that takes `crate::Error` from the root's re-export imports the
//! root, which imports it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's file modules by path (`crate`, `backend`, `driver::etcd`), each with the modules it names.
fn modules_of(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    collect_rs(src, &mut files);
    let names: BTreeSet<String> = files.iter().map(|f| module_path(src, f)).collect();
    let mut uses = BTreeMap::new();
    for file in &files {
        let module = module_path(src, file);
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let mut named = BTreeSet::new();
        for reference in references(&code) {
            let target = resolve(&module, &reference, &names);
            if target != module {
                named.insert(target);
            }
        }
        // A module's own declarations of its children (`mod x;`, `pub use x::Y`) name them too.
        for child in names.iter().filter(|n| parent_of(n).as_deref() == Some(module.as_str())) {
            let leaf = child.rsplit("::").next().unwrap();
            let declares = |line: &str| {
                let line = line.trim_start_matches("pub ").trim_start_matches("pub(crate) ");
                line == format!("mod {leaf};") || line.starts_with(&format!("use {leaf}::"))
            };
            if code.lines().any(|l| declares(l.trim())) {
                named.insert(child.clone());
            }
        }
        uses.insert(module, named);
    }
    uses
}

fn collect_rs(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// `lib.rs`/`main.rs` → `crate`, `a/mod.rs` and `a.rs` → `a`, `a/b.rs` → `a::b`. Binaries under `src/bin`
/// are crates of their own, named after their file.
fn module_path(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    match parts.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["lib"] | ["main"] => "crate".into(),
        [dirs @ .., "mod"] => dirs.join("::"),
        _ => parts.join("::"),
    }
}

fn parent_of(module: &str) -> Option<String> {
    match module.rsplit_once("::") {
        Some((parent, _)) => Some(parent.to_string()),
        None if module != "crate" => Some("crate".into()),
        None => None,
    }
}

/// The text of a file without its comments and without its test module (tests import what they test).
fn code_of(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap();
    code.lines().map(|line| line.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

/// Every `crate::a::b...` and `super::...` path written in the code, as its segments (`{` ends one; the
/// segments inside a `use crate::{a, b}` list each count).
fn references(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for start in ["crate::", "super::"] {
        for (at, _) in code.match_indices(start) {
            if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let head = start.trim_end_matches("::").to_string();
            let rest = &code[at + start.len()..];
            let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            let mut segments: Vec<String> = std::iter::once(head.clone())
                .chain(path.split("::").filter(|s| !s.is_empty()).map(str::to_string))
                .collect();
            if rest[path.len()..].starts_with('{') {
                let list = &rest[path.len() + 1..rest[path.len()..].find('}').map_or(rest.len(), |e| path.len() + e)];
                for item in list.split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").trim().to_string();
                    if !first.is_empty() {
                        found.push(segments.iter().cloned().chain([first]).collect());
                    }
                }
                continue;
            }
            if segments.len() == 1 {
                segments.push(String::new());
            }
            found.push(segments);
        }
    }
    found
}

/// The deepest file module a path names (`crate::driver::Change` → `driver`; `crate::Error` → `crate`).
fn resolve(module: &str, reference: &[String], names: &BTreeSet<String>) -> String {
    let mut base = match reference[0].as_str() {
        "super" => parent_of(module).unwrap_or_else(|| "crate".into()),
        _ => "crate".into(),
    };
    for segment in &reference[1..] {
        let candidate = if base == "crate" { segment.clone() } else { format!("{base}::{segment}") };
        if names.contains(&candidate) {
            base = candidate;
        } else {
            break;
        }
    }
    base
}

/// The groups of modules that import one another, directly or through others: each module of a group reaches
/// every other by its imports (the graph's strongly connected parts of more than one module).
fn cycles_of(uses: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut next = vec![from.clone()];
        while let Some(module) = next.pop() {
            for named in uses.get(&module).into_iter().flatten() {
                if seen.insert(named.clone()) {
                    next.push(named.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = uses.keys().map(|module| (module, reach(module))).collect();
    let mut grouped = BTreeSet::new();
    let mut groups = Vec::new();
    for (module, reached) in &reaches {
        if grouped.contains(*module) || !reached.contains(*module) {
            continue;
        }
        let group: Vec<String> = reached
            .iter()
            .filter(|other| reaches.get(other).is_some_and(|back| back.contains(*module)))
            .cloned()
            .collect();
        grouped.extend(group.iter().cloned());
        groups.push(group);
    }
    groups
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cycles = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let name = src.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        for group in cycles_of(&modules_of(&src)) {
            cycles.push(format!("{name}: {}", group.join(" <-> ")));
        }
    }
    assert!(cycles.is_empty(), "modules that import each other, directly or through others:\n{}", cycles.join("\n"));
}

#[test]
fn the_check_sees_a_cycle_through_several_modules() {
    let uses = |edges: &[(&str, &str)]| {
        let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            uses.entry(from.to_string()).or_default().insert(to.to_string());
            uses.entry(to.to_string()).or_default();
        }
        uses
    };
    let three = uses(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]);
    assert_eq!(cycles_of(&three), vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]);
    assert!(cycles_of(&uses(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
}

#[test]
fn the_check_sees_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub use a::Thing;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::Other;\npub struct Thing;\n").unwrap();
    std::fs::write(src.join("b.rs"), "use crate::{Thing, a};\npub struct Other;\n").unwrap();
    let uses = modules_of(src);
    assert_eq!(uses["crate"], BTreeSet::from(["a".to_string(), "b".to_string()]));
    assert_eq!(uses["a"], BTreeSet::from(["b".to_string()]));
    assert_eq!(uses["b"], BTreeSet::from(["crate".to_string(), "a".to_string()]));
}
