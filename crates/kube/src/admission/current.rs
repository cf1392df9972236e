//! The configuration as it is, read from the API server when a change is admitted: uncached,
//! as MetalLB's webhooks read it, so a change is judged against every object stored before
//! it, even one a watch has not delivered yet.

use crate::sources::config_objects;
use api::v1beta1::{BFDProfile, BGPAdvertisement, Community, IPAddressPool, L2Advertisement};
use api::v1beta2::BGPPeer;
use config::Resources;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

/// The metallb.io objects of `namespace` and the Nodes' labels (for peer selectors). Secrets
/// are not read: a missing one is only a warning, and admission needs no BGP passwords.
pub async fn current(client: &Client, namespace: &str) -> Result<Resources, kube::Error> {
    let (nodes, all) = (Api::<Node>::all(client.clone()), ListParams::default());
    let (pools, l2, bgp, peers, bfd, communities, nodes) = futures::try_join!(
        list::<IPAddressPool>(client, namespace),
        list::<L2Advertisement>(client, namespace),
        list::<BGPAdvertisement>(client, namespace),
        list::<BGPPeer>(client, namespace),
        list::<BFDProfile>(client, namespace),
        list::<Community>(client, namespace),
        nodes.list_metadata(&all),
    )?;
    Ok(Resources {
        pools: config_objects(&pools, |o| o.spec.clone()),
        l2_advertisements: config_objects(&l2, |o| o.spec.clone()),
        bgp_advertisements: config_objects(&bgp, |o| o.spec.clone()),
        peers: config_objects(&peers, |o| o.spec.clone()),
        bfd_profiles: config_objects(&bfd, |o| o.spec.clone()),
        communities: config_objects(&communities, |o| o.spec.clone()),
        nodes: nodes
            .items
            .iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect(),
        ..Resources::default()
    })
}

async fn list<K>(client: &Client, namespace: &str) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api = Api::<K>::namespaced(client.clone(), namespace);
    Ok(api.list(&ListParams::default()).await?.items)
}
