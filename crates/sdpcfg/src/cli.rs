//! Command-line grammar, the original's (docopt) usage:
//! flags anywhere, then a command word and its positional arguments.

use clap::Parser;
use sdp_config::Workflow;

pub const USAGE: &str = "\
Command line utility for accessing SKA SDP configuration.

Usage:
  sdpcfg [options] (get|watch) <path>
  sdpcfg [options] [watch] (ls|list) [values] [-R] <path>
  sdpcfg [options] delete [-R] <path>
  sdpcfg [options] (create|update) <path> <value>
  sdpcfg [options] edit <path>
  sdpcfg [options] process <workflow> [<parameters>]
  sdpcfg [options] deploy <type> <name> <parameters>
  sdpcfg --help

Options:
  -q, --quiet          Cut back on unnecessary output
  --prefix <prefix>    Path prefix for high-level API

Environment Variables:
  SDP_CONFIG_BACKEND   Database backend (default etcd3)
  SDP_CONFIG_HOST      Database host address (default 127.0.0.1), or several
                       etcd members: host[:port],host[:port],...
  SDP_CONFIG_PORT      Database port (default 2379)
  SDP_CONFIG_CACERT    CA bundle to trust: set, the tool speaks TLS (etcdctl's --cacert)
  SDP_CONFIG_CERT      Client certificate, for a database that checks them (--cert)
  SDP_CONFIG_KEY       The client certificate's key (--key)
";

#[derive(Parser, Debug)]
#[command(name = "sdpcfg", disable_help_flag = true, disable_version_flag = true)]
struct Raw {
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    prefix: Option<String>,
    #[arg(short = 'R')]
    recursive: bool,
    #[arg(short, long)]
    help: bool,
    words: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Get { path: String },
    List { path: String, values: bool, recursive: bool },
    Delete { path: String, recursive: bool },
    Create { path: String, value: String },
    Update { path: String, value: String },
    Edit { path: String },
    Process { workflow: Workflow, parameters: Option<String> },
    Deploy { kind: String, name: String, parameters: String },
}

#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    pub quiet: bool,
    pub prefix: Option<String>,
    /// Re-run the command whenever what it read changes.
    pub watch: bool,
    pub command: Command,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParseOutcome {
    Run(Invocation),
    Help,
    /// Messages for stderr (then the usage, exit status 1).
    Usage(Vec<String>),
}

pub fn parse<I: IntoIterator<Item = String>>(args: I) -> ParseOutcome {
    let raw = match Raw::try_parse_from(args) {
        Ok(raw) => raw,
        Err(e) => return ParseOutcome::Usage(vec![e.kind().to_string()]),
    };
    if raw.help {
        return ParseOutcome::Help;
    }
    let words: Vec<&str> = raw.words.iter().map(String::as_str).collect();
    let (watch, rest) = match words.split_first() {
        Some((&"watch", rest)) if matches!(rest.first(), Some(&"ls") | Some(&"list")) => (true, rest),
        Some((&"watch", rest)) if rest.len() == 1 => (true, words.as_slice()),
        _ => (false, words.as_slice()),
    };
    let p = |s: &str| s.to_string();
    let command = match rest {
        ["get", path] | ["watch", path] => Command::Get { path: p(path) },
        ["ls" | "list", "values", path] => Command::List { path: p(path), values: true, recursive: raw.recursive },
        ["ls" | "list", path] => Command::List { path: p(path), values: false, recursive: raw.recursive },
        ["delete", path] => Command::Delete { path: p(path), recursive: raw.recursive },
        ["create", path, value] => Command::Create { path: p(path), value: p(value) },
        ["update", path, value] => Command::Update { path: p(path), value: p(value) },
        ["edit", path] => Command::Edit { path: p(path) },
        ["process", workflow, params @ ..] if params.len() <= 1 => match workflow.parse::<Workflow>() {
            Ok(workflow) => Command::Process { workflow, parameters: params.first().map(|s| p(s)) },
            Err(e) => return ParseOutcome::Usage(vec![e.to_string()]),
        },
        ["deploy", kind, name, params] => Command::Deploy { kind: p(kind), name: p(name), parameters: p(params) },
        _ => return ParseOutcome::Usage(Vec::new()),
    };
    if raw.recursive && !matches!(command, Command::List { .. } | Command::Delete { .. }) {
        return ParseOutcome::Usage(Vec::new());
    }
    if let Some(errors) = path_errors(&command) {
        return ParseOutcome::Usage(errors);
    }
    ParseOutcome::Run(Invocation { quiet: raw.quiet, prefix: raw.prefix, watch, command })
}

/// The original checks every path and reports all of its problems at once.
fn path_errors(command: &Command) -> Option<Vec<String>> {
    let (path, listing) = match command {
        Command::Get { path } | Command::Delete { path, .. } | Command::Edit { path } => (path, false),
        Command::Create { path, .. } | Command::Update { path, .. } => (path, false),
        Command::List { path, .. } => (path, true),
        Command::Process { .. } | Command::Deploy { .. } => return None,
    };
    let mut errors = Vec::new();
    if !path.starts_with('/') {
        errors.push("Path must start with '/'!".to_string());
    }
    if !listing && path.len() > 1 && path.ends_with('/') {
        errors.push("Key path must not end with '/'!".to_string());
    }
    if !path.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-/".contains(&b)) {
        errors.push("Path contains non-permissable characters!".to_string());
    }
    (!errors.is_empty()).then_some(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> ParseOutcome {
        parse(std::iter::once("sdpcfg".to_string()).chain(line.split_whitespace().map(str::to_string)))
    }

    fn command(line: &str) -> Invocation {
        match run(line) {
            ParseOutcome::Run(inv) => inv,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn grammar_of_the_original() {
        let ls = command("ls values -R /pb");
        assert_eq!(ls.command, Command::List { path: "/pb".into(), values: true, recursive: true });
        assert!(!ls.watch);
        let ls = command("-R ls /");
        assert_eq!(ls.command, Command::List { path: "/".into(), values: false, recursive: true });
        assert!(command("watch ls values /pb/").watch);
        let w = command("watch /pb/x");
        assert!(w.watch);
        assert_eq!(w.command, Command::Get { path: "/pb/x".into() });
        assert_eq!(command("delete -R /pb/x").command, Command::Delete { path: "/pb/x".into(), recursive: true });
        assert_eq!(command("create /a -").command, Command::Create { path: "/a".into(), value: "-".into() });
        let q = command("-q --prefix /t get /a");
        assert!(q.quiet);
        assert_eq!(q.prefix.as_deref(), Some("/t"));
        match command("process realtime:testdask:0.1.0").command {
            Command::Process { workflow, parameters } => {
                assert_eq!(workflow.id, "testdask");
                assert_eq!(parameters, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            command("deploy helm d1 {}").command,
            Command::Deploy { kind: "helm".into(), name: "d1".into(), parameters: "{}".into() }
        );
        assert_eq!(run("--help"), ParseOutcome::Help);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 2048, failure_persistence: None, ..Default::default() })]

        /// Any words: a command whose paths pass the original's checks, help, or the usage with the reasons.
        #[test]
        fn any_arguments_give_a_command_or_the_usage(words in proptest::collection::vec(word(), 0..6)) {
            match parse(std::iter::once("sdpcfg".to_string()).chain(words.clone())) {
                ParseOutcome::Run(inv) => {
                    if let Some(errors) = path_errors(&inv.command) {
                        proptest::prop_assert!(false, "{words:?} ran with bad paths: {errors:?}");
                    }
                }
                ParseOutcome::Help => proptest::prop_assert!(words.iter().any(|w| w == "-h" || w == "--help")),
                ParseOutcome::Usage(reasons) => proptest::prop_assert!(reasons.iter().all(|r| !r.is_empty())),
            }
        }
    }

    fn word() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            prop::sample::select(vec![
                "get",
                "ls",
                "list",
                "values",
                "watch",
                "delete",
                "create",
                "update",
                "edit",
                "process",
                "deploy",
                "-R",
                "-q",
                "--prefix",
                "-h",
                "--help",
                "-",
                "/",
                "/pb",
                "/pb/x/",
                "pb/x",
                "/pb/../x",
                "realtime:testdask:0.1.0",
                "batch:x",
                "{}",
                "[1]",
                "--",
            ])
            .prop_map(str::to_string),
            "[ -~]{0,8}",
            any::<String>(),
        ]
    }

    #[test]
    fn refusals_with_the_original_messages() {
        assert_eq!(
            run("process realtime:testdask"),
            ParseOutcome::Usage(vec!["Please specify workflow as 'type:name:version'!".into()])
        );
        assert_eq!(
            run("get pb/x/"),
            ParseOutcome::Usage(vec!["Path must start with '/'!".into(), "Key path must not end with '/'!".into()])
        );
        assert_eq!(run("get /pb/x.y"), ParseOutcome::Usage(vec!["Path contains non-permissable characters!".into()]));
        assert_eq!(run("frobnicate /x"), ParseOutcome::Usage(vec![]));
        assert_eq!(run("get -R /x"), ParseOutcome::Usage(vec![]));
        assert_eq!(run("create /x"), ParseOutcome::Usage(vec![]));
        assert!(matches!(command("ls /pb/").command, Command::List { .. }));
    }
}
