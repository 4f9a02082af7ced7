//! `cargo xtask`: the tooling of this repository that has logic, so that bash keeps only what must run before
//! cargo can build (`scripts/setup`, `scripts/patch-crates`, `scripts/up`) and the orchestration of real tools.
//!
//! - `manifest objects|tango-databases|tango-references|labels-missing|device-server-devices FILE`: facts about
//!   a rendered multi-document manifest (`helm template` output), read with a YAML parser;
//! - `test-summary LOG`: the sum of the test counts of a `scripts/test` log;
//! - `free-port`: a free TCP port on 127.0.0.1.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod manifest;
mod summary;

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Facts about a rendered manifest, one a line.
    Manifest {
        #[command(subcommand)]
        query: manifest::Query,
    },
    /// `N passed, M failed, K skipped`: the sum of the `<suite>: N passed, M failed[, K skipped]` lines and cargo's
    /// `test result:` lines of a log (ignored tests count as skipped).
    TestSummary { log: PathBuf },
    /// A TCP port on 127.0.0.1 that nothing listens on now.
    FreePort,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Manifest { query } => {
            for line in query.run()? {
                println!("{line}");
            }
        }
        Task::TestSummary { log } => {
            let text = std::fs::read_to_string(&log).with_context(|| format!("cannot read {}", log.display()))?;
            let counts = summary::sum(&text);
            println!("{} {} {}", counts.passed, counts.failed, counts.skipped);
        }
        Task::FreePort => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1")?;
            println!("{}", listener.local_addr()?.port());
        }
    }
    Ok(())
}
