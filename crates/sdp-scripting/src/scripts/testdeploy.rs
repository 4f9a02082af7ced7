//! `testdeploy`: every parameter `<name>: {"type": ..., "args": ...}` becomes the deployment
//! `<pb_id>-<name>`, and follows the parameters while the block lives: a changed one is replaced, a removed
//! one removed. Parameters that are not valid deployments are listed with the reason under
//! `refused_deployments` in the block's state. E.g. `{"sleeper": {"type": "process-direct", "args": {"engine":
//! "sleeper"}}}` runs the process engine `sleeper` an operator registered; a parameter that carries a command
//! is refused, as the process deployer would refuse it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use sdp_config::DeploymentArgs;

use crate::claim::{Claim, Outcome, ScriptError};

/// The deployments the parameters ask for by name, or why one cannot be deployed; parameters without a type
/// are not deployments and are left out.
pub fn wanted(parameters: &Value) -> BTreeMap<String, Result<DeploymentArgs, String>> {
    let Some(parameters) = parameters.as_object() else { return BTreeMap::new() };
    parameters
        .iter()
        .filter_map(|(name, p)| {
            let kind = p.get("type")?.as_str()?;
            Some((name.clone(), DeploymentArgs::from_parts(kind, p.get("args").unwrap_or(&Value::Null))))
        })
        .collect()
}

pub async fn run(claim: &Claim) -> Result<Outcome, ScriptError> {
    let pb_id = claim.pb_id().to_string();
    let mut watcher = claim.config().watcher().with_timeout(Duration::from_secs(30));
    let mut made: BTreeMap<String, (DeploymentArgs, String)> = BTreeMap::new();
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let read = watcher
            .txn(|t| {
                let pb_id = &pb_id;
                async move {
                    if let Some(release) = crate::claim::released_by(&t, pb_id).await? {
                        return Ok(Err(release));
                    }
                    // Read already: the transaction serves it from what it read.
                    Ok(Ok(t.get_processing_block(pb_id).await?.map(|pb| pb.parameters).unwrap_or_default()))
                }
            })
            .await?;
        let parameters = match read {
            Ok(parameters) => parameters,
            Err(release) => return Ok(Outcome::Released(release)),
        };
        let wanted = wanted(&parameters);
        let stale: Vec<String> = made
            .iter()
            .filter(|(name, (e, _))| wanted.get(*name) != Some(&Ok(e.clone())))
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale {
            if let Some((_, deploy_id)) = made.remove(&name) {
                claim.remove(&deploy_id).await?;
            }
        }
        let mut now_refused = BTreeMap::new();
        for (name, engine) in wanted {
            if made.contains_key(&name) {
                continue;
            }
            let deployed = match engine {
                Ok(engine) => claim.deploy(&name, &engine).await.map(|deploy_id| (engine, deploy_id)),
                Err(error) => Err(ScriptError::Config(sdp_config::Error::Invalid(error))),
            };
            match deployed {
                Ok(made_now) => {
                    made.insert(name, made_now);
                }
                // A parameter that is not a valid deployment is reported, not fatal.
                Err(ScriptError::Config(sdp_config::Error::Invalid(error))) => {
                    if refused.get(&name) != Some(&error) {
                        tracing::warn!(name, error, "parameter is not a valid deployment");
                    }
                    now_refused.insert(name, error);
                }
                Err(e) => return Err(e),
            }
        }
        if now_refused != refused {
            let listed = if now_refused.is_empty() { Value::Null } else { json!(now_refused) };
            claim.update_state(json!({"refused_deployments": listed})).await?;
            refused = now_refused;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_from_parameters() {
        let wanted = wanted(&json!({
            "sleeper": {"type": "process-direct", "args": {"engine": "sleeper"}},
            "not-a-deployment": 3,
            "untyped": {"args": {}},
        }));
        assert_eq!(wanted.keys().collect::<Vec<_>>(), ["sleeper"]);
        assert_eq!(
            wanted["sleeper"],
            Ok(DeploymentArgs::Process(sdp_config::ProcessRequest::Engine("sleeper".into())))
        );
    }
}
