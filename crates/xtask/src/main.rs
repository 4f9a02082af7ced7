//! `cargo xtask`: the tooling of this repository that has logic, so that bash keeps only what must run before
//! cargo can build (`scripts/setup`, `scripts/patch-crates`, `scripts/up`) and the orchestration of real tools.
//!
//! - `manifest objects|tango-databases|tango-references|labels-missing|device-server-devices FILE`: facts about
//!   a rendered multi-document manifest (`helm template` output), read with a YAML parser;
//! - `value [--kind K] [--default JSON] [--raw] FILE|- [POINTER]`: one value of a YAML or JSON document;
//! - `dockerfile stages|copied-from|crates|users FILE`: facts about images/Dockerfile;
//! - `runc-spec SOURCE TARGET ROOTFS USER [--env VAR=value]... -- COMMAND...`, `elf-files ROOTFS`: running an
//!   image's root file system under runc, and the files whose libraries to check;
//! - `test-summary LOG`: the sum of the test counts of a `scripts/test` log;
//! - `free-port`: a free TCP port on 127.0.0.1.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod container;
mod dockerfile;
mod files;
mod manifest;
mod summary;
mod value;

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
    /// One value of a YAML or JSON document.
    Value(value::Lookup),
    /// Facts about a Dockerfile, one a line.
    Dockerfile {
        #[command(subcommand)]
        query: dockerfile::Query,
    },
    /// Writes the runtime spec of a container of an image's root file system.
    RuncSpec(container::RuncSpec),
    /// The dynamically linked ELF files of a root file system, one a line.
    ElfFiles { root: PathBuf },
    /// `N passed, M failed, K skipped`: the sum of the `<suite>: N passed, M failed[, K skipped]` lines and cargo's
    /// `test result:` lines of a log (ignored tests count as skipped).
    TestSummary { log: PathBuf },
    /// A TCP port on 127.0.0.1 that nothing listens on now.
    FreePort,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Manifest { query } => print_lines(query.run()?),
        Task::Value(lookup) => println!("{}", lookup.run()?),
        Task::Dockerfile { query } => print_lines(query.run()?),
        Task::RuncSpec(spec) => spec.run()?,
        Task::ElfFiles { root } => print_lines(container::elf_files(&root)?),
        Task::TestSummary { log } => {
            let counts = summary::sum(&files::read(&log)?);
            println!("{} {} {}", counts.passed, counts.failed, counts.skipped);
        }
        Task::FreePort => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1")?;
            println!("{}", listener.local_addr()?.port());
        }
    }
    Ok(())
}

fn print_lines(lines: Vec<String>) {
    for line in lines {
        println!("{line}");
    }
}
