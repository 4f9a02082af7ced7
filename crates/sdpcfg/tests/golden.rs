//! `sdpcfg` against a real etcd: every command's output byte for byte (the seed's session included), and
//! its errors.

use std::io::Write;
use std::process::{Command, Output, Stdio};

struct Cli {
    port: u16,
}

impl Cli {
    fn run_with_stdin(&self, args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sdpcfg"))
            .args(args)
            .env("SDP_CONFIG_HOST", "127.0.0.1")
            .env("SDP_CONFIG_PORT", self.port.to_string())
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run_with_stdin(args, "", &[]);
        assert!(out.status.success(), "sdpcfg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail with status 1; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run_with_stdin(args, "", &[]);
        assert_eq!(out.status.code(), Some(1), "sdpcfg {args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
        assert!(out.stdout.is_empty());
        String::from_utf8(out.stderr).unwrap()
    }
}

/// Keeps a configuration database running for one test.
enum Server {
    Etcd(#[allow(dead_code)] sdp_testkit::Etcd),
    Embedded(#[allow(dead_code)] tokio::runtime::Runtime, #[allow(dead_code)] sdp_etcd_server::RunningServer),
}

fn start_etcd() -> (Server, Cli) {
    let etcd = sdp_testkit::Etcd::start();
    let cli = Cli { port: etcd.port };
    (Server::Etcd(etcd), cli)
}

fn start_embedded() -> (Server, Cli) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(sdp_etcd_server::start(sdp_etcd_server::ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        }))
        .unwrap();
    let cli = Cli { port: server.addr.port() };
    (Server::Embedded(runtime, server), cli)
}

/// Every test runs against real etcd and against the embedded server.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod etcd { $(#[test] fn $case() { let (_server, cli) = super::start_etcd(); super::$case(&cli) })* }
        mod embedded { $(#[test] fn $case() { let (_server, cli) = super::start_embedded(); super::$case(&cli) })* }
    };
}

on_both!(seed_session, each_command, watch_prints_again_on_change, errors_are_one_clear_line, a_script_definition);

fn seed_session(cli: &Cli) {
    assert_eq!(cli.ok(&["ls", "-R", "/"]), "Keys with / prefix: \n");
    let created = cli.ok(&["process", "realtime:testdask:0.1.0"]);
    let pb_id = created.strip_prefix("OK, pb_id = ").unwrap().trim_end().to_string();
    assert!(pb_id.starts_with("realtime-") && pb_id.ends_with("-0000"), "{pb_id}");
    assert_eq!(pb_id.len(), "realtime-20191121-0000".len());
    let expected = "Keys with /pb prefix:
/pb/realtime-20191121-0000 = {
  \"parameters\": {},
  \"pb_id\": \"realtime-20191121-0000\",
  \"sbi_id\": null,
  \"scan_parameters\": {},
  \"workflow\": {
    \"id\": \"testdask\",
    \"type\": \"realtime\",
    \"version\": \"0.1.0\"
  }
}
"
    .replace("realtime-20191121-0000", &pb_id);
    assert_eq!(cli.ok(&["ls", "values", "-R", "/pb"]), expected);
    let deploy = r#"{"chart": "stable/dask", "values": {"jupyter.enabled": "false", "scheduler.serviceType": "ClusterIP", "worker.replicas": 2}}"#;
    let name = format!("{pb_id}-dask");
    assert_eq!(cli.ok(&["deploy", "helm", &name, deploy]), "");
    let expected = "Keys with /deploy prefix:
/deploy/realtime-20191121-0000-dask = {
  \"args\": {
    \"chart\": \"stable/dask\",
    \"values\": {
      \"jupyter.enabled\": \"false\",
      \"scheduler.serviceType\": \"ClusterIP\",
      \"worker.replicas\": 2
    }
  },
  \"deploy_id\": \"realtime-20191121-0000-dask\",
  \"type\": \"helm\"
}
"
    .replace("realtime-20191121-0000", &pb_id);
    assert_eq!(cli.ok(&["ls", "values", "-R", "/deploy"]), expected);
    assert_eq!(cli.ok(&["process", "realtime:testdask:0.1.0"]), created.replace("-0000", "-0001"));
    assert_eq!(cli.ok(&["delete", &format!("/pb/{pb_id}")]), "OK\n");
    assert_eq!(cli.ok(&["ls", "/pb/"]), format!("Keys with /pb/ prefix: /pb/{}\n", pb_id.replace("-0000", "-0001")));
}

/// A pipeline team registers its own processing script: the entry sdpcfg writes is one the platform reads.
fn a_script_definition(cli: &Cli) {
    let definition = r#"{"kind": "realtime", "name": "hello", "version": "0.1.0", "image": "registry.example.org/hello:0.1.0", "command": ["/opt/hello/bin/hello-script"]}"#;
    assert_eq!(cli.ok(&["create", "/script/realtime-hello-0-1-0", definition]), "OK\n");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scripts = runtime.block_on(async {
        let settings = sdp_config::Settings { port: cli.port, ..Default::default() };
        let config = sdp_config::Config::connect(&settings).await.unwrap();
        config.txn(|t| async move { t.list_scripts().await }).await.unwrap()
    });
    let [(id, Ok(script))] = scripts.as_slice() else { panic!("{scripts:?}") };
    assert_eq!((id.as_str(), script.reference()), ("realtime-hello-0-1-0", "realtime:hello:0.1.0".to_string()));
    assert!(script.runs(&"realtime:hello:0.1.0".parse().unwrap()));
    assert_eq!(script.image.as_deref(), Some("registry.example.org/hello:0.1.0"));
    assert_eq!(script.command, ["/opt/hello/bin/hello-script"]);
}

fn each_command(cli: &Cli) {
    assert_eq!(cli.ok(&["create", "/a/b", r#"{"x": 1}"#]), "OK\n");
    assert_eq!(cli.ok(&["-q", "create", "/a/c", "plain"]), "");
    assert_eq!(cli.ok(&["get", "/a/b"]), "/a/b = {\"x\": 1}\n");
    assert_eq!(cli.ok(&["-q", "get", "/a/c"]), "plain\n");
    assert_eq!(cli.ok(&["get", "/a/missing"]), "/a/missing = None\n");
    assert_eq!(cli.ok(&["update", "/a/c", "changed"]), "OK\n");
    let out = cli.run_with_stdin(&["update", "/a/c", "-"], "from stdin", &[]);
    assert!(out.status.success());
    assert_eq!(cli.ok(&["-q", "get", "/a/c"]), "from stdin\n");
    assert_eq!(cli.ok(&["ls", "/a/"]), "Keys with /a/ prefix: /a/b, /a/c\n");
    assert_eq!(cli.ok(&["-q", "ls", "/a/"]), "/a/b /a/c\n");
    assert_eq!(cli.ok(&["-q", "ls", "values", "/a/"]), "{\"x\": 1} from stdin\n");
    assert_eq!(cli.ok(&["list", "values", "/a/"]), "Keys with /a/ prefix:\n/a/b = {\"x\": 1}\n/a/c = from stdin\n");
    // Prefixes keep separate trees apart.
    assert_eq!(cli.ok(&["--prefix", "/t1", "create", "/a/b", "1"]), "OK\n");
    assert_eq!(cli.ok(&["--prefix", "/t1", "ls", "-R", "/"]), "Keys with / prefix: /a/b\n");
    // edit: the editor sees YAML and the result is stored as canonical JSON.
    let out = cli.run_with_stdin(&["edit", "/a/b"], "", &[("EDITOR", "sed -i s/x:/y:/")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");
    assert_eq!(cli.ok(&["get", "/a/b"]), "/a/b = {\n  \"y\": 1\n}\n");
    let out = cli.run_with_stdin(&["edit", "/a/b"], "", &[("EDITOR", "true")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "No change!\n");
    // Recursive delete lists what it removed.
    cli.ok(&["create", "/a/b/deep", "1"]);
    assert_eq!(cli.ok(&["delete", "-R", "/a"]), "/a/b\n/a/b/deep\n/a/c\nOK\n");
    assert_eq!(cli.ok(&["ls", "-R", "/a"]), "Keys with /a prefix: \n");
    let params = cli.ok(&["process", "batch:test:1", "{a: 1, b: [x]}"]);
    let pb_id = params.strip_prefix("OK, pb_id = ").unwrap().trim();
    assert!(cli
        .ok(&["get", &format!("/pb/{pb_id}")])
        .contains("\"parameters\": {\n    \"a\": 1,\n    \"b\": [\n      \"x\"\n    ]\n  },"));
}

fn watch_prints_again_on_change(cli: &Cli) {
    cli.ok(&["create", "/w", "1"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdpcfg"))
        .args(["watch", "/w"])
        .env("SDP_CONFIG_PORT", cli.port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "/w = 1\n");
    cli.ok(&["update", "/w", "2"]);
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "/w = 2\n");
    child.kill().unwrap();
    child.wait().unwrap();
}

fn errors_are_one_clear_line(cli: &Cli) {
    cli.ok(&["create", "/a", "1"]);
    assert_eq!(cli.fails(&["create", "/a", "2"]), "sdpcfg: Cannot create /a, as it already exists!\n");
    assert_eq!(cli.fails(&["update", "/nope", "2"]), "sdpcfg: Cannot update /nope, as it does not exist!\n");
    assert!(cli.fails(&["delete", "/nope"]).contains("/nope"));
    let bad = cli.fails(&["create", "/b", "{\"broken\": "]);
    assert!(bad.starts_with("sdpcfg: value of /b is not valid JSON"), "{bad}");
    assert_eq!(bad.lines().count(), 1);
    assert_eq!(cli.ok(&["get", "/b"]), "/b = None\n");
    let bad = cli.fails(&["process", "realtime:x:1", "{unclosed"]);
    assert!(bad.contains("parameters are not valid YAML or JSON"), "{bad}");
    let usage = cli.fails(&["process", "realtime:testdask"]);
    assert!(usage.starts_with("Please specify workflow as 'type:name:version'!\nCommand line utility"), "{usage}");
    let usage = cli.fails(&["get", "a/"]);
    assert!(usage.starts_with("Path must start with '/'!\nKey path must not end with '/'!\n"), "{usage}");
    assert!(cli.fails(&["get", "/a b"]).starts_with("Path contains non-permissable characters!\n"));
    assert!(cli.fails(&["bogus"]).starts_with("Command line utility"));
    // A deployment's arguments are named values.
    for args in ["nope", "[1, 2]", "3", "null"] {
        let bad = cli.fails(&["deploy", "helm", "dask", args]);
        assert!(bad.starts_with("sdpcfg: args of deployment dask must be a JSON object of named values"), "{bad}");
        assert_eq!(bad.lines().count(), 1);
    }
    // Nothing stored was touched by the failures.
    assert_eq!(cli.ok(&["ls", "-R", "/"]), "Keys with / prefix: /a\n");
}

#[test]
fn unreachable_server() {
    let cli = Cli { port: sdp_testkit::free_port() };
    let err = cli.fails(&["ls", "/"]);
    assert!(err.starts_with("sdpcfg: cannot reach the configuration database at 127.0.0.1:"), "{err}");
    assert!(err.contains("SDP_CONFIG_HOST"));
    assert_eq!(err.lines().count(), 1);
    let out = cli.run_with_stdin(&["ls", "/"], "", &[("SDP_CONFIG_PORT", "http")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SDP_CONFIG_PORT=\"http\" is not a port number"));
}

/// The memory backend would keep what sdpcfg writes only until it exits: refused, with nothing printed as done.
#[test]
fn the_memory_backend_is_refused() {
    let cli = Cli { port: sdp_testkit::free_port() };
    for args in [&["create", "/a", "1"][..], &["deploy", "helm", "dask", "{chart: dask}"], &["ls", "/"]] {
        let out = cli.run_with_stdin(args, "", &[("SDP_CONFIG_BACKEND", "memory")]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&out.stdout));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("sdpcfg: SDP_CONFIG_BACKEND=memory keeps entries only inside one process"), "{err}");
    }
}
