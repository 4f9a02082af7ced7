//! Facts about images/Dockerfile that scripts/test-charts checks against the image table and the workspace.

use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Query {
    /// The stages (`FROM <image> AS <stage>`).
    Stages { file: PathBuf },
    /// The stages `COPY --from=<stage>` names, each once.
    CopiedFrom { file: PathBuf },
    /// The crates `cargo ... -p <crate>` builds, each once.
    Crates { file: PathBuf },
    /// The users `USER <user>` runs as.
    Users { file: PathBuf },
}

impl Query {
    pub fn run(&self) -> anyhow::Result<Vec<String>> {
        let (Query::Stages { file } | Query::CopiedFrom { file } | Query::Crates { file } | Query::Users { file }) =
            self;
        let text = crate::files::read(file)?;
        let instructions = instructions(&text);
        let mut found: Vec<String> = match self {
            Query::Stages { .. } => instructions
                .iter()
                .filter_map(|words| match words.as_slice() {
                    [from, _, r#as, stage, ..] if is(from, "FROM") && is(r#as, "AS") => Some(stage.clone()),
                    _ => None,
                })
                .collect(),
            Query::CopiedFrom { .. } => instructions
                .iter()
                .filter(|words| is(&words[0], "COPY"))
                .flat_map(|words| words.iter().filter_map(|w| w.strip_prefix("--from=")).map(str::to_string))
                .collect(),
            Query::Crates { .. } => instructions
                .iter()
                .flat_map(|words| words.windows(2).filter(|w| w[0] == "-p").map(|w| w[1].clone()))
                .collect(),
            Query::Users { .. } => {
                instructions.iter().filter(|w| is(&w[0], "USER") && w.len() > 1).map(|w| w[1].clone()).collect()
            }
        };
        if !matches!(self, Query::Stages { .. } | Query::Users { .. }) {
            found.sort();
            found.dedup();
        }
        Ok(found)
    }
}

fn is(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

/// The instructions of a Dockerfile as words, continuation lines joined and comments left out.
fn instructions(text: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if current.is_empty() && line.trim_start().starts_with('#') {
            continue;
        }
        match line.trim_end().strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let words: Vec<String> = current.split_whitespace().map(str::to_string).collect();
                if !words.is_empty() {
                    found.push(words);
                }
                current.clear();
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKERFILE: &str = "\
# syntax=docker/dockerfile:1
FROM rust:1 AS build
RUN cargo build --release \\
    -p sdp -p tango-operator
from debian:12 as runtime
COPY --from=build /x /y
COPY --from=build /z /w
USER 1000:1000
";

    fn run(query: impl Fn(PathBuf) -> Query) -> Vec<String> {
        crate::files::with_file(DOCKERFILE, |file| query(file).run().unwrap())
    }

    #[test]
    fn reads_stages_copies_crates_and_users() {
        assert_eq!(run(|file| Query::Stages { file }), ["build", "runtime"]);
        assert_eq!(run(|file| Query::CopiedFrom { file }), ["build"]);
        assert_eq!(run(|file| Query::Crates { file }), ["sdp", "tango-operator"]);
        assert_eq!(run(|file| Query::Users { file }), ["1000:1000"]);
    }
}
