//! `vis_receive`: deploys the receive processes (`vis-receive` chart) and publishes where each scan type's
//! visibilities go in `receiveAddresses`, which the subarray device serves. Where the Helm deployer published a
//! supernet (a NetworkAttachmentDefinition offered for allocation), the receive processes join that network
//! and the addresses are its first free IP addresses; otherwise they are the processes' cluster DNS names.

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use sdp_config::keys::paths;

use sdp_config::DeploymentArgs;

use crate::claim::{Claim, Outcome, Release, ScriptError};
use crate::scripts::params::{count_parameter, namespace, object};

/// A supernet published under `/resource/supernet/...`.
struct Supernet {
    network_attachment_definition: String,
    range_start: Ipv4Addr,
    range_end: Option<Ipv4Addr>,
}

async fn first_supernet(claim: &Claim) -> Result<Option<Supernet>, ScriptError> {
    let below = format!("{}/supernet/", paths::RESOURCE);
    let entries = claim.config().txn(|t| {
        let below = &below;
        async move { t.list_values(below, 1).await }
    });
    for (path, text) in entries.await? {
        let Ok(entry) = serde_json::from_str::<Value>(&text) else {
            tracing::warn!(path, "supernet entry is not JSON; ignored");
            continue;
        };
        let field = |k: &str| entry.get(k).and_then(Value::as_str);
        let ip = |k: &str| field(k).and_then(|s| s.parse::<Ipv4Addr>().ok());
        match (field("network_attachment_definition"), ip("range_start")) {
            (Some(nad), Some(range_start)) => {
                return Ok(Some(Supernet {
                    network_attachment_definition: nad.to_string(),
                    range_start,
                    range_end: ip("range_end"),
                }))
            }
            _ => tracing::warn!(path, "supernet entry names no attachment or IPv4 range start; ignored"),
        }
    }
    Ok(None)
}

/// The hosts of `processes` receive processes: consecutive addresses from a supernet's range start, or the
/// StatefulSet pods' DNS names.
pub fn receive_hosts(
    deploy_id: &str,
    namespace: &str,
    processes: u64,
    range: Option<(Ipv4Addr, Option<Ipv4Addr>)>,
) -> Result<Vec<String>, String> {
    match range {
        None => {
            Ok((0..processes).map(|i| format!("{deploy_id}-{i}.{deploy_id}.{namespace}.svc.cluster.local")).collect())
        }
        Some((start, end)) => (0..processes)
            .map(|i| {
                let ip = u32::from(start).checked_add(i as u32).map(Ipv4Addr::from);
                match ip {
                    Some(ip) if end.is_none_or(|end| ip <= end) => Ok(ip.to_string()),
                    _ => {
                        Err(format!("the supernet's range from {start} has no room for {processes} receive processes"))
                    }
                }
            })
            .collect(),
    }
}

/// `receiveAddresses`: per scan type, the host and port of each block of channels, as
/// `{"host": [[first_channel, host], ...], "port": [[first_channel, port, increment], ...]}`.
pub fn receive_addresses(scan_types: &[String], hosts: &[String], port: u64, channels_per_process: u64) -> Value {
    let host: Vec<Value> = hosts.iter().enumerate().map(|(i, h)| json!([i as u64 * channels_per_process, h])).collect();
    let ports: Vec<Value> = (0..hosts.len() as u64).map(|i| json!([i * channels_per_process, port, 1])).collect();
    let per_type: Map<String, Value> =
        scan_types.iter().map(|t| (t.clone(), json!({"host": host, "port": ports}))).collect();
    Value::Object(per_type)
}

pub async fn run(claim: &Claim) -> Result<Outcome, ScriptError> {
    let processes = count_parameter(claim, "processes", 1, 64)?;
    let port = count_parameter(claim, "port", 9000, 65_535)?;
    if port < 1024 {
        // The receive processes run unprivileged.
        return Err(ScriptError::Parameters(format!("port is {port}: expected 1024 to 65535")));
    }
    let channels_per_process = count_parameter(claim, "channels_per_process", 1, 1 << 20)?;
    let mut scan_types: Vec<String> =
        claim.pb().scan_parameters.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    if scan_types.is_empty() {
        scan_types.push("default".into());
    }
    let supernet = first_supernet(claim).await?;
    let deploy_id = sdp_config::deployment::engine_deployment_id(claim.pb_id(), "receive");
    let range = supernet.as_ref().map(|s| (s.range_start, s.range_end));
    let hosts = receive_hosts(&deploy_id, &namespace(), processes, range).map_err(ScriptError::Parameters)?;
    let mut values = json!({"pb_id": claim.pb_id(), "receive.processes": processes, "receive.port": port});
    if let Some(s) = &supernet {
        values["networkAttachment"] = json!(s.network_attachment_definition);
        tracing::info!(network = s.network_attachment_definition, "receiving on the published supernet");
    }
    claim.deploy("receive", &DeploymentArgs::Helm { chart: "vis-receive".into(), values: object(values) }).await?;
    claim.wait_ready(&deploy_id).await?;
    let addresses = receive_addresses(&scan_types, &hosts, port, channels_per_process);
    claim.set_receive_addresses(addresses).await?;
    tracing::info!(?hosts, port, "receive addresses published; idling until the processing block is released");
    let release: Release = claim.until_released().await?;
    Ok(Outcome::Released(release))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_from_a_supernet_or_dns() {
        let start: Ipv4Addr = "192.168.10.254".parse().unwrap();
        assert_eq!(
            receive_hosts("pb-receive", "sdp", 2, Some((start, None))).unwrap(),
            ["192.168.10.254", "192.168.10.255"]
        );
        let end: Ipv4Addr = "192.168.10.254".parse().unwrap();
        assert!(receive_hosts("pb-receive", "sdp", 2, Some((start, Some(end)))).unwrap_err().contains("no room"));
        assert_eq!(
            receive_hosts("pb-receive", "sdp", 1, None).unwrap(),
            ["pb-receive-0.pb-receive.sdp.svc.cluster.local"]
        );
    }

    #[test]
    fn addresses_per_scan_type() {
        let hosts = ["10.0.0.1".to_string(), "10.0.0.2".to_string()];
        let addresses = receive_addresses(&["science".into(), "calibration".into()], &hosts, 9000, 10);
        assert_eq!(
            addresses["science"],
            json!({"host": [[0, "10.0.0.1"], [10, "10.0.0.2"]], "port": [[0, 9000, 1], [10, 9000, 1]]})
        );
        assert_eq!(addresses["calibration"], addresses["science"]);
    }
}
