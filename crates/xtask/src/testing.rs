//! What the tests of the modules that read files share.

/// A temporary file holding `text`.
pub fn written(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}
