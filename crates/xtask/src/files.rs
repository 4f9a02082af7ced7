//! Reading the files the tasks are given, and (for the tests) writing them.

use std::path::Path;

use anyhow::Context;

/// The text of `path`, or an error naming it.
pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// What `run` makes of a temporary file holding `text`, which lives as long as the call.
#[cfg(test)]
pub fn with_file<T>(text: &str, run: impl FnOnce(std::path::PathBuf) -> T) -> T {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    run(file.path().to_path_buf())
}
