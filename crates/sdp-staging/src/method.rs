//! The staging methods and the choice of one for a request.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How data reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Copy the file or tree into the user's area, read-only.
    LocalCopy,
    /// A symbolic link in the user's area pointing at the source.
    LocalSymlink,
    /// Stream the file to the client.
    DirectDownload,
    /// Upload into the user's JupyterHub server.
    JupyterCopy,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::LocalCopy, Method::LocalSymlink, Method::DirectDownload, Method::JupyterCopy];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::LocalCopy => "local_copy",
            Method::LocalSymlink => "local_symlink",
            Method::DirectDownload => "direct_download",
            Method::JupyterCopy => "jupyter_copy",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A method name that is not one of the four, or one the configuration does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MethodError {
    #[error("Invalid staging method: {0}; use one of local_copy, local_symlink, direct_download, jupyter_copy")]
    Unknown(String),
    #[error("Invalid staging method: {method} is not allowed here; allowed methods: {}", list(.allowed))]
    NotAllowed { method: Method, allowed: Vec<Method> },
}

fn list(methods: &[Method]) -> String {
    methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
}

impl FromStr for Method {
    type Err = MethodError;
    fn from_str(s: &str) -> Result<Method, MethodError> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| MethodError::Unknown(s.chars().take(64).collect()))
    }
}

/// The method a request names, if the configuration allows it.
pub fn select(name: &str, allowed: &[Method]) -> Result<Method, MethodError> {
    let method: Method = name.parse()?;
    if allowed.contains(&method) {
        Ok(method)
    } else {
        Err(MethodError::NotAllowed { method, allowed: allowed.to_vec() })
    }
}

/// Parses `ALLOWED_METHODS`: comma-separated names or a JSON (or YAML flow) list of names; duplicates dropped, order kept.
pub fn parse_list(text: &str) -> Result<Vec<Method>, MethodError> {
    let names: Vec<String> = match serde_json::from_str::<Vec<String>>(text.trim()) {
        Ok(names) => names,
        Err(_) => text
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|n| n.trim().trim_matches(['"', '\'']).to_string())
            .collect(),
    };
    let mut out = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let m: Method = name.parse()?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Method::*;

    #[test]
    fn selection() {
        let all = Method::ALL;
        assert_eq!(select("local_copy", &all), Ok(LocalCopy));
        assert_eq!(select("jupyter_copy", &all), Ok(JupyterCopy));
        assert_eq!(select("ftp", &all), Err(MethodError::Unknown("ftp".into())));
        assert_eq!(select("LOCAL_COPY", &all), Err(MethodError::Unknown("LOCAL_COPY".into())));
        let err = select("local_symlink", &[LocalCopy]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid staging method: local_symlink is not allowed here; allowed methods: local_copy"
        );
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list("local_copy,local_symlink").unwrap(), vec![LocalCopy, LocalSymlink]);
        assert_eq!(parse_list(" jupyter_copy , ").unwrap(), vec![JupyterCopy]);
        assert_eq!(
            parse_list(r#"["direct_download", "local_copy", "local_copy"]"#).unwrap(),
            vec![DirectDownload, LocalCopy]
        );
        assert_eq!(parse_list("[local_copy, 'jupyter_copy']").unwrap(), vec![LocalCopy, JupyterCopy]);
        assert_eq!(parse_list("").unwrap(), vec![]);
        assert!(parse_list("local_copy,nope").is_err());
    }
}
