//! The raw inputs of a configuration, as read from files or from the API server.
//! Nothing here is validated yet; `build` turns it into a `Config`.

use api::legacy::LegacyConfig;
use api::standalone::StandaloneServiceSpec;
use api::v1beta1::{
    BFDProfileSpec, BGPAdvertisementSpec, CommunitySpec, IPAddressPoolSpec, L2AdvertisementSpec,
};
use api::v1beta2::BGPPeerSpec;
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

/// Where an object's problems should point.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Origin {
    /// A custom resource the user wrote.
    #[default]
    Resource,
    /// Converted from the legacy ConfigMap; problems point at this path inside `data.config`.
    Legacy(String),
}

/// One named object with its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Object<T> {
    pub name: String,
    pub labels: Labels,
    pub spec: T,
    /// A file name, when the object was read from one.
    pub source: Option<String>,
    pub origin: Origin,
}

impl<T> Object<T> {
    pub fn new(name: impl Into<String>, spec: T) -> Self {
        Object {
            name: name.into(),
            labels: Labels::new(),
            spec,
            source: None,
            origin: Origin::Resource,
        }
    }
}

/// A Secret as far as BGP passwords need it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Secret {
    pub type_: String,
    /// Decoded values of `data` and `stringData`.
    pub data: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    pub pools: Vec<Object<IPAddressPoolSpec>>,
    pub l2_advertisements: Vec<Object<L2AdvertisementSpec>>,
    pub bgp_advertisements: Vec<Object<BGPAdvertisementSpec>>,
    pub peers: Vec<Object<BGPPeerSpec>>,
    pub bfd_profiles: Vec<Object<BFDProfileSpec>>,
    pub communities: Vec<Object<CommunitySpec>>,
    /// Secrets in the MetalLB namespace, by name.
    pub secrets: BTreeMap<String, Secret>,
    /// Node name → labels. Empty when the nodes are not known (offline validation).
    pub nodes: BTreeMap<String, Labels>,
    /// Namespace name → labels, for `serviceAllocation.namespaceSelectors`.
    pub namespaces: BTreeMap<String, Labels>,
    /// The `metallb-system/config` ConfigMap, if present.
    pub legacy: Option<Object<LegacyConfig>>,
    /// The patterns of the `metallb-excludel2` ConfigMap, if present (valid ones only).
    pub interface_exclusions: Option<Vec<String>>,
    /// `ironlb.dev` StandaloneServices, which only `ironlb standalone` reads.
    pub services: Vec<Object<StandaloneServiceSpec>>,
}

impl Resources {
    /// The configuration `self` becomes when each object of `change` is created or
    /// replaced, matched by kind and name: what admission validates.
    pub fn upsert(&mut self, change: Resources) {
        replace(&mut self.pools, change.pools);
        replace(&mut self.l2_advertisements, change.l2_advertisements);
        replace(&mut self.bgp_advertisements, change.bgp_advertisements);
        replace(&mut self.peers, change.peers);
        replace(&mut self.bfd_profiles, change.bfd_profiles);
        replace(&mut self.communities, change.communities);
        self.secrets.extend(change.secrets);
        self.nodes.extend(change.nodes);
        self.namespaces.extend(change.namespaces);
    }

    /// The configuration without the metallb.io object `kind`/`name`; other kinds are kept.
    pub fn remove(&mut self, kind: &str, name: &str) {
        let keep = |o: &str| o != name;
        match kind {
            "IPAddressPool" => self.pools.retain(|o| keep(&o.name)),
            "L2Advertisement" => self.l2_advertisements.retain(|o| keep(&o.name)),
            "BGPAdvertisement" => self.bgp_advertisements.retain(|o| keep(&o.name)),
            "BGPPeer" => self.peers.retain(|o| keep(&o.name)),
            "BFDProfile" => self.bfd_profiles.retain(|o| keep(&o.name)),
            "Community" => self.communities.retain(|o| keep(&o.name)),
            _ => {}
        }
    }

    /// Whether any `metallb.io` configuration resource is present; when so, it wins over
    /// the legacy ConfigMap.
    pub fn has_custom_resources(&self) -> bool {
        !(self.pools.is_empty()
            && self.l2_advertisements.is_empty()
            && self.bgp_advertisements.is_empty()
            && self.peers.is_empty()
            && self.bfd_profiles.is_empty()
            && self.communities.is_empty())
    }
}

fn replace<T>(objects: &mut Vec<Object<T>>, change: Vec<Object<T>>) {
    for object in change {
        match objects.iter_mut().find(|o| o.name == object.name) {
            Some(old) => *old = object,
            None => objects.push(object),
        }
    }
}
