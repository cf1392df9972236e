//! The `memberlist` Secret, made by the controller when it is missing, as MetalLB's does:
//! MetalLB's DaemonSet mounts its `secretkey` into every speaker, which seal their gossip
//! with it. Owned by the controller's Deployment, so uninstalling removes it.

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::PostParams;
use rand::Rng;
use std::collections::BTreeMap;

/// MetalLB's key length.
const KEY_BYTES: usize = 128;

/// What `ensure` found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Ensured {
    Present,
    Created,
}

/// Creates Secret `name` in `namespace` with a fresh random `secretkey` unless it exists,
/// owned by Deployment `deployment` when given.
pub async fn ensure(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    deployment: Option<&str>,
) -> Result<Ensured, kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if secrets.get_opt(name).await?.is_some() {
        return Ok(Ensured::Present);
    }
    let owner = match deployment {
        Some(d) => Some(owner(client, namespace, d).await?),
        None => None,
    };
    let mut key = vec![0u8; KEY_BYTES];
    // StdRng is a CSPRNG seeded from the operating system.
    rand::make_rng::<rand::rngs::StdRng>().fill_bytes(&mut key);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("secretkey".to_string(), ByteString(key))])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(Ensured::Created),
        // Another replica made it first.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Ensured::Present),
        Err(e) => Err(e),
    }
}

async fn owner(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<OwnerReference, kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let d = deployments.get(name).await?;
    Ok(OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: name.to_string(),
        uid: d.metadata.uid.unwrap_or_default(),
        ..OwnerReference::default()
    })
}
