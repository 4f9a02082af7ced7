//! The processing namespace: created when missing, as the helmdeploy chart does when it installs the deployer.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error(
        "the processing namespace {namespace} does not exist and cannot be created ({source}): create it \
         (`kubectl create namespace {namespace}`) or name an existing one with SDP_HELM_NAMESPACE"
    )]
    Create { namespace: String, source: kube::Error },
    #[error("cannot look up the processing namespace {namespace}: {source}")]
    Get { namespace: String, source: kube::Error },
}

/// What was found or done.
#[derive(Debug, PartialEq, Eq)]
pub enum Ensured {
    Existed,
    Created,
    /// This identity may not read namespaces (the chart's deployer has a Role in its namespace only): the
    /// chart created it.
    NotVisible,
}

/// Makes sure `namespace` exists: reads it, creates it if missing.
pub async fn ensure(client: Client, namespace: &str) -> Result<Ensured, NamespaceError> {
    let api: Api<Namespace> = Api::all(client);
    match api.get_opt(namespace).await {
        Ok(Some(_)) => return Ok(Ensured::Existed),
        Ok(None) => {}
        Err(kube::Error::Api(status)) if status.is_forbidden() => return Ok(Ensured::NotVisible),
        Err(source) => return Err(NamespaceError::Get { namespace: namespace.into(), source }),
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.into()),
            labels: Some([("app.kubernetes.io/managed-by".to_string(), "sdp-helmdeploy".to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(Ensured::Created),
        // Made by someone else meanwhile.
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(Ensured::Existed),
        Err(source) => Err(NamespaceError::Create { namespace: namespace.into(), source }),
    }
}
