//! What the image tests (scripts/test-images) need to run an image's root file system under runc: the runtime
//! spec of a container as a node's runtime would make it, and the dynamically linked files to check.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Value};

/// containerd's default capabilities.
const CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

#[derive(clap::Args)]
pub struct RuncSpec {
    /// The image's runtime spec (umoci's config.json).
    source: PathBuf,
    /// Where to write the container's.
    target: PathBuf,
    /// The root file system.
    rootfs: PathBuf,
    /// `uid[:gid]`, the image's user.
    user: String,
    /// `VAR=value`, the process's environment, in order.
    #[arg(long = "env")]
    env: Vec<String>,
    /// The process's command line.
    #[arg(last = true, required = true)]
    args: Vec<String>,
}

impl RuncSpec {
    pub fn run(&self) -> anyhow::Result<()> {
        let text = crate::files::read(&self.source)?;
        let spec = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", self.source.display()))?;
        let spec = self.container(spec)?;
        std::fs::write(&self.target, spec.to_string())
            .with_context(|| format!("cannot write {}", self.target.display()))
    }

    /// The image's spec made a container's: its process in the foreground as the image's user, with containerd's
    /// capabilities and no rlimits, and the host's network, so that servers listen on 127.0.0.1 here. Without a
    /// network namespace of its own, a container may not mount sysfs: it gets the host's, read-only.
    fn container(&self, mut spec: Value) -> anyhow::Result<Value> {
        let (uid, gid) = self.user.split_once(':').unwrap_or((&self.user, &self.user));
        let id = |s: &str| s.parse::<u32>().with_context(|| format!("user {}: not uid[:gid]", self.user));
        let (uid, gid) = (id(uid)?, id(gid)?);
        spec["root"] = json!({"path": self.rootfs, "readonly": false});
        let process = spec.get_mut("process").and_then(Value::as_object_mut).context("the spec has no process")?;
        process.insert("terminal".into(), json!(false));
        process.insert("args".into(), json!(self.args));
        process.insert("env".into(), json!(self.env));
        process.insert("user".into(), json!({"uid": uid, "gid": gid}));
        process.insert("rlimits".into(), json!([]));
        let capabilities = json!(CAPABILITIES);
        process.insert(
            "capabilities".into(),
            json!({"bounding": capabilities, "effective": capabilities, "permitted": capabilities}),
        );
        process.remove("apparmorProfile");
        let namespaces = spec["linux"]["namespaces"].as_array_mut().context("the spec has no linux.namespaces")?;
        namespaces.retain(|n| n["type"] != "network");
        let mounts = spec["mounts"].as_array_mut().context("the spec has no mounts")?;
        mounts.retain(|m| !m["destination"].as_str().is_some_and(|d| d.starts_with("/sys")));
        mounts.push(json!({"destination": "/sys", "type": "bind", "source": "/sys",
                           "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}));
        Ok(spec)
    }
}

/// The dynamically linked ELF files under a root file system's program and library folders (executables and
/// shared objects: ELF types 2 and 3), as paths inside it, sorted.
pub fn elf_files(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for top in ["bin", "sbin", "lib", "lib64", "usr", "opt"] {
        walk(&root.join(top), &mut |path| {
            let mut head = [0u8; 17];
            let is_program = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                .is_ok_and(|()| head[..4] == *b"\x7fELF" && matches!(head[16], 2 | 3));
            if is_program {
                found.push(format!("/{}", path.strip_prefix(root).unwrap_or(path).display()));
            }
        })
        .with_context(|| format!("cannot read {}", root.join(top).display()))?;
    }
    found.sort();
    Ok(found)
}

/// Calls `on` with every regular file under `folder`, not following symbolic links (a missing folder has none).
fn walk(folder: &Path, on: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            walk(&entry.path(), on)?;
        } else if file_type.is_file() {
            on(&entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_the_container_of_an_image_spec() {
        let image = json!({
            "process": {"terminal": true, "args": ["sh"], "apparmorProfile": "x", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}]},
            "mounts": [{"destination": "/proc"}, {"destination": "/sys"}, {"destination": "/sys/fs/cgroup"}],
        });
        let spec = RuncSpec {
            source: PathBuf::new(),
            target: PathBuf::new(),
            rootfs: "/tmp/rootfs".into(),
            user: "1000".into(),
            env: vec!["A=1".into()],
            args: vec!["sdp".into(), "--help".into()],
        };
        let container = spec.container(image).unwrap();
        assert_eq!(container["root"], json!({"path": "/tmp/rootfs", "readonly": false}));
        assert_eq!(container["process"]["args"], json!(["sdp", "--help"]));
        assert_eq!(container["process"]["env"], json!(["A=1"]));
        assert_eq!(container["process"]["user"], json!({"uid": 1000, "gid": 1000}));
        assert_eq!(container["process"]["terminal"], json!(false));
        assert!(container["process"].get("apparmorProfile").is_none());
        assert_eq!(container["process"]["capabilities"]["bounding"].as_array().unwrap().len(), 14);
        assert_eq!(container["linux"]["namespaces"], json!([{"type": "pid"}, {"type": "mount"}]));
        let mounts: Vec<&str> =
            container["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap()).collect();
        assert_eq!(mounts, ["/proc", "/sys"]);
        assert_eq!(container["mounts"][1]["options"][4], "ro");
        let bad = RuncSpec { user: "root".into(), ..spec };
        assert!(bad.container(json!({"process": {}})).unwrap_err().to_string().contains("not uid[:gid]"));
    }

    #[test]
    fn finds_the_dynamically_linked_files() {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, bytes: &[u8]| {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        };
        let elf = |kind: u8| {
            let mut head = b"\x7fELF".to_vec();
            head.resize(16, 0);
            head.extend([kind, 0]);
            head
        };
        write("usr/bin/program", &elf(2));
        write("usr/lib/libx.so", &elf(3));
        write("usr/lib/x.o", &elf(1));
        write("bin/script", b"#!/bin/sh\n");
        write("etc/not-looked-at", &elf(2));
        std::os::unix::fs::symlink(root.path().join("usr/bin/program"), root.path().join("bin/link")).unwrap();
        assert_eq!(elf_files(root.path()).unwrap(), ["/usr/bin/program", "/usr/lib/libx.so"]);
    }
}
