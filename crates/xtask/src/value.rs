//! One value of a YAML or JSON document (a chart's values, an image's configuration, `helm list -o json`), found
//! by its JSON pointer and printed as JSON, or plainly for the shell.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize as _;

#[derive(clap::Args)]
pub struct Lookup {
    /// The document: a file, or `-` for standard input. JSON is read as the YAML it also is.
    file: PathBuf,
    /// A JSON pointer (RFC 6901), `/config/Env` say; the whole document when left out.
    #[arg(default_value = "")]
    pointer: String,
    /// Of a multi-document text, the first object of this kind (else the first document).
    #[arg(long)]
    kind: Option<String>,
    /// Printed when the pointer finds nothing (JSON); without it, nothing found is an error.
    #[arg(long)]
    default: Option<String>,
    /// A string as it is, an array one item a line, null as nothing; else JSON.
    #[arg(long)]
    raw: bool,
}

impl Lookup {
    pub fn run(&self) -> anyhow::Result<String> {
        let text = if self.file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
            text
        } else {
            crate::files::read(&self.file)?
        };
        let document = document(&text, self.kind.as_deref())?;
        let found = match (document.pointer(&self.pointer), &self.default) {
            (Some(found), _) => found.clone(),
            (None, Some(default)) => {
                serde_json::from_str(default).with_context(|| format!("--default {default} is not JSON"))?
            }
            (None, None) => anyhow::bail!("nothing at {} in {}", self.pointer, self.file.display()),
        };
        Ok(if self.raw { plain(&found) } else { found.to_string() })
    }
}

/// The document of a text, or of a multi-document text the first object of `kind`, as JSON.
fn document(text: &str, kind: Option<&str>) -> anyhow::Result<serde_json::Value> {
    for part in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(part).context("not YAML")?;
        if kind.is_none_or(|kind| value["kind"].as_str() == Some(kind)) {
            return serde_json::to_value(value).context("a key that is not a string");
        }
    }
    match kind {
        Some(kind) => anyhow::bail!("no object of kind {kind}"),
        None => Ok(serde_json::Value::Null),
    }
}

fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join("\n"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(
        text: &str,
        pointer: &str,
        kind: Option<&str>,
        default: Option<&str>,
        raw: bool,
    ) -> anyhow::Result<String> {
        crate::files::with_file(text, |file| {
            Lookup { file, pointer: pointer.into(), kind: kind.map(Into::into), default: default.map(Into::into), raw }
                .run()
        })
    }

    fn found(text: &str, pointer: &str, kind: Option<&str>, default: Option<&str>, raw: bool) -> String {
        lookup(text, pointer, kind, default, raw).unwrap()
    }

    #[test]
    fn finds_values_by_pointer() {
        let config = r#"{"config": {"User": "1000:1000", "Env": ["A=1", "B=2"], "Cmd": null}}"#;
        assert_eq!(found(config, "/config/User", None, None, true), "1000:1000");
        assert_eq!(found(config, "/config/Env", None, None, false), r#"["A=1","B=2"]"#);
        assert_eq!(found(config, "/config/Env", None, None, true), "A=1\nB=2");
        assert_eq!(found(config, "/config/Cmd", None, None, true), "");
        assert_eq!(found(config, "/config/Entrypoint", None, Some("null"), false), "null");
        let values = "helmdeploy:\n  chartValues:\n    dask:\n      worker: {replicas: 2}\n";
        assert_eq!(found(values, "/helmdeploy/chartValues/dask", None, None, false), r#"{"worker":{"replicas":2}}"#);
        assert_eq!(found(values, "/helmdeploy/chartValues/workflow", None, Some("{}"), false), "{}");
    }

    #[test]
    fn picks_an_object_of_a_kind() {
        let rendered = "---\nkind: Service\n---\nkind: StatefulSet\nspec: {args: [\"sh -c x\"]}\n";
        assert_eq!(found(rendered, "/spec/args/0", Some("StatefulSet"), None, true), "sh -c x");
    }

    #[test]
    fn says_what_it_does_not_find() {
        let error =
            |pointer: &str, kind: Option<&str>| lookup("a: 1\n", pointer, kind, None, false).unwrap_err().to_string();
        assert!(error("/b", None).contains("nothing at /b"));
        assert!(error("", Some("Pod")).contains("no object of kind Pod"));
    }
}
