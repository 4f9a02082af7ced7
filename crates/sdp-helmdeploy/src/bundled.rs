//! The charts the platform deploys by itself (processing scripts, engines), carried in the binary so that
//! `sdp` finds them wherever it runs: unpacked into the data directory at start.

use std::path::Path;

use include_dir::{include_dir, Dir};

/// Chart name and its files. `build.rs` lists the same folders.
static CHARTS: &[(&str, Dir)] = &[
    ("workflow", include_dir!("$CARGO_MANIFEST_DIR/../../charts/workflow")),
    ("dask", include_dir!("$CARGO_MANIFEST_DIR/../../charts/dask")),
    ("vis-receive", include_dir!("$CARGO_MANIFEST_DIR/../../charts/vis-receive")),
];

/// Names of the bundled charts.
pub fn names() -> impl Iterator<Item = &'static str> {
    CHARTS.iter().map(|(name, _)| *name)
}

/// Writes the bundled charts into `dir/<chart>`, replacing what an earlier version left there. Each chart is
/// written aside and renamed into place, so a reader never sees half a chart.
pub fn unpack(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, files) in CHARTS {
        let staging = dir.join(format!(".{name}.{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        // `extract` writes below its folder but does not make it.
        std::fs::create_dir_all(&staging)?;
        files.extract(&staging)?;
        let target = dir.join(name);
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::rename(&staging, &target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn unpacks_every_chart_with_the_files_of_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let repo_charts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts");
        std::fs::create_dir_all(dir.path().join("workflow/templates")).unwrap();
        std::fs::write(dir.path().join("workflow/templates/stale.yaml"), "left by an older version").unwrap();
        super::unpack(dir.path()).unwrap();
        let out = dir.path();
        for name in super::names() {
            let unpacked = out.join(name).join("Chart.yaml");
            assert_eq!(
                std::fs::read(&unpacked).unwrap(),
                std::fs::read(repo_charts.join(name).join("Chart.yaml")).unwrap(),
                "{}",
                unpacked.display()
            );
        }
        assert!(!out.join("workflow/templates/stale.yaml").exists(), "an older version's files are replaced");
    }
}
