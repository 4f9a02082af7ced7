//! `hello-script <pb_id>`: a processing script written outside the platform. It claims its block, writes a
//! greeting (its `greeting` parameter, default "hello") into the block's state, then idles until the block is
//! released (realtime) or finishes (batch), as the platform's own scripts do.
//!
//! Register it, then run a block of it (see docs/processing.md, "Your own processing scripts"):
//! ```text
//! sdpcfg create /script/realtime-hello-0-1-0 \
//!   '{"kind": "realtime", "name": "hello", "version": "0.1.0", "command": ["/path/to/hello-script"]}'
//! sdpcfg process realtime:hello:0.1.0 '{"greeting": "good morning"}'
//! ```

use serde_json::json;

use sdp_scripting::{idle_or_finish, Outcome, ScriptError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_env_filter("info").with_writer(std::io::stderr).init();
    let Some(pb_id) = std::env::args().nth(1) else {
        eprintln!("usage: hello-script <pb_id> (the processing controller gives the block's ID)");
        return std::process::ExitCode::from(2);
    };
    let outcome = sdp_scripting::run(&pb_id, async |claim| {
        let greeting = match claim.parameters().get("greeting") {
            None => "hello",
            Some(greeting) => greeting
                .as_str()
                .ok_or_else(|| ScriptError::Parameters(format!("greeting is {greeting}: expected text")))?,
        };
        claim.update_state(json!({"hello": {"greeting": greeting, "pid": std::process::id()}})).await?;
        idle_or_finish(claim).await
    })
    .await;
    match outcome {
        Ok(Outcome::Finished | Outcome::Released(_) | Outcome::Stopped) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello-script: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
