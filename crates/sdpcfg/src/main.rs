//! `sdpcfg`: read and change the SDP configuration database from the command line.

mod cli;
mod values;

use std::io::{Read, Write};
use std::process::ExitCode;

use cli::{Command, Invocation, ParseOutcome, USAGE};
use sdp_config::{json, Config, Deployment, Error, Settings, Txn, MAX_RECURSION};
use serde_json::Value;
use values::{check_value, parse_yaml};

fn main() -> ExitCode {
    let invocation = match cli::parse(std::env::args()) {
        ParseOutcome::Run(inv) => inv,
        ParseOutcome::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        ParseOutcome::Usage(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(1);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(invocation)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sdpcfg: {e}");
            ExitCode::from(1)
        }
    }
}

/// Reads `-` from stdin, as the original does for values and parameters.
fn from_stdin_if_dash(arg: &str) -> std::io::Result<String> {
    if arg != "-" {
        return Ok(arg.to_string());
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    Ok(text)
}

async fn run(inv: Invocation) -> Result<(), Error> {
    let io_error = |e: std::io::Error| Error::Invalid(format!("cannot read standard input: {e}"));
    let settings = Settings::from_env()?;
    if settings.backend == "memory" {
        return Err(Error::Invalid(
            "SDP_CONFIG_BACKEND=memory keeps entries only inside one process: what sdpcfg wrote would be gone when it \
             exits. Use etcd3 (the default), with SDP_CONFIG_HOST and SDP_CONFIG_PORT naming the database"
                .into(),
        ));
    }
    let mut config = Config::connect(&settings).await?;
    if let Some(prefix) = &inv.prefix {
        config = config.with_prefix(prefix)?;
    }
    let mut out = std::io::stdout().lock();
    let quiet = inv.quiet;
    let mut print = |text: String| {
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    };
    match inv.command {
        Command::Get { path } if inv.watch => {
            let mut watcher = config.watcher();
            loop {
                let text = watcher.txn(|t| get_text(t, path.clone(), quiet)).await?;
                print(text);
            }
        }
        Command::Get { path } => print(config.txn(|t| get_text(t, path.clone(), quiet)).await?),
        Command::List { path, values, recursive } => {
            let recurse = if recursive { MAX_RECURSION } else { 0 };
            let mut watcher = config.watcher();
            loop {
                let text = watcher.txn(|t| list_text(t, path.clone(), recurse, values, quiet)).await?;
                print(text);
                if !inv.watch {
                    break;
                }
            }
        }
        Command::Create { path, value } => {
            let value = from_stdin_if_dash(&value).map_err(io_error)?;
            check_value(&path, &value)?;
            config
                .txn(|t| {
                    let (path, value) = (path.clone(), value.clone());
                    async move { t.create(&path, &value, None).await }
                })
                .await?;
            if !quiet {
                print("OK".into());
            }
        }
        Command::Update { path, value } => {
            let value = from_stdin_if_dash(&value).map_err(io_error)?;
            check_value(&path, &value)?;
            config
                .txn(|t| {
                    let (path, value) = (path.clone(), value.clone());
                    async move { t.update(&path, &value).await }
                })
                .await?;
            if !quiet {
                print("OK".into());
            }
        }
        Command::Delete { path, recursive } => {
            let deleted = config
                .txn(|t| {
                    let path = path.clone();
                    async move { t.delete(&path, !recursive, recursive).await }
                })
                .await?;
            if recursive && deleted.is_empty() {
                return Err(Error::Vanished(path));
            }
            if !quiet {
                if recursive {
                    deleted.into_iter().for_each(&mut print);
                }
                print("OK".into());
            }
        }
        Command::Edit { path } => {
            let changed = edit(&config, &path).await?;
            if !quiet {
                print(if changed { "OK" } else { "No change!" }.into());
            }
        }
        Command::Process { workflow, parameters } => {
            let parameters = match parameters {
                Some(p) => parse_yaml("parameters", &from_stdin_if_dash(&p).map_err(io_error)?)?,
                None => Value::Object(Default::default()),
            };
            let pb_id = config
                .txn(|t| {
                    let (workflow, parameters) = (workflow.clone(), parameters.clone());
                    async move { t.create_new_processing_block(workflow, parameters).await }
                })
                .await?;
            if !quiet {
                print(format!("OK, pb_id = {pb_id}"));
            }
        }
        Command::Deploy { kind, name, parameters } => {
            let args = parse_yaml("deployment parameters", &from_stdin_if_dash(&parameters).map_err(io_error)?)?;
            let deployment = Deployment { deploy_id: name, kind, args };
            config
                .txn(|t| {
                    let deployment = deployment.clone();
                    async move { t.create_deployment(&deployment).await }
                })
                .await?;
        }
    }
    Ok(())
}

async fn get_text(t: Txn, path: String, quiet: bool) -> Result<String, Error> {
    let value = t.get(&path).await?.unwrap_or_else(|| "None".into());
    Ok(if quiet { value } else { format!("{path} = {value}") })
}

async fn list_text(t: Txn, path: String, recurse: usize, values: bool, quiet: bool) -> Result<String, Error> {
    if !values {
        let keys = t.list_keys(&path, recurse).await?;
        return Ok(if quiet { keys.join(" ") } else { format!("Keys with {path} prefix: {}", keys.join(", ")) });
    }
    // Keys and values in one read per depth level, at one revision.
    let listed = t.list_values(&path, recurse).await?;
    Ok(if quiet {
        listed.into_iter().map(|(_, value)| value).collect::<Vec<_>>().join(" ")
    } else {
        std::iter::once(format!("Keys with {path} prefix:"))
            .chain(listed.into_iter().map(|(key, value)| format!("{key} = {value}")))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Opens `$EDITOR` on the value (as YAML when it is JSON) and stores the result as canonical JSON.
/// Returns whether the value changed.
async fn edit(config: &Config, path: &str) -> Result<bool, Error> {
    let owned = path.to_string();
    let old = config
        .txn(|t| {
            let path = owned.clone();
            async move { t.get(&path).await }
        })
        .await?
        .ok_or_else(|| Error::Vanished(path.to_string()))?;
    let parsed = serde_json::from_str::<Value>(&old).ok();
    let text = match &parsed {
        Some(v) => serde_yaml::to_string(v).map_err(|e| Error::Invalid(e.to_string()))?,
        None => old.clone(),
    };
    let edited = run_editor(&text)?;
    if edited == text {
        return Ok(false);
    }
    let new = match parsed {
        Some(_) => json::to_canonical(&parse_yaml("edited value", &edited)?),
        None => edited,
    };
    let owned = path.to_string();
    config
        .txn(|t| {
            let (path, old, new) = (owned.clone(), old.clone(), new.clone());
            async move {
                // Refuse to overwrite a change made by somebody else while the editor was open.
                if t.get(&path).await?.as_deref() != Some(old.as_str()) {
                    return Err(Error::Invalid(format!(
                        "{path} was changed by someone else while editing; edit again"
                    )));
                }
                t.update(&path, &new).await
            }
        })
        .await?;
    Ok(true)
}

fn run_editor(text: &str) -> Result<String, Error> {
    let editor = std::env::var("EDITOR").unwrap_or_else(|_| "vi".into());
    let dir = std::env::temp_dir().join(format!("sdpcfg-edit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Invalid(format!("cannot create {}: {e}", dir.display())))?;
    let file = dir.join("value.yaml");
    let result = (|| {
        std::fs::write(&file, text)?;
        // Like git and others, EDITOR may carry arguments ("code --wait"), so it runs through the shell.
        let status =
            std::process::Command::new("sh").arg("-c").arg(format!("{editor} \"$1\"")).arg("sh").arg(&file).status()?;
        if !status.success() {
            return Err(std::io::Error::other(format!("editor `{editor}` exited with {status}")));
        }
        std::fs::read_to_string(&file)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| Error::Invalid(format!("editing failed: {e}")))
}
