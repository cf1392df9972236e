//! BGPPeer: AS numbers, addresses, timers, passwords and references.

use super::report_for;
use crate::model::{DynamicASNMode, Peer, PeerRemote, Timers};
use crate::problem::{Problem, Report};
use crate::resources::{Object, Resources};
use crate::selector;
use api::Duration as KubeDuration;
use api::v1beta2::BGPPeerSpec;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const KIND: &str = "BGPPeer";
const SECRET_TYPE: &str = "kubernetes.io/basic-auth";

pub fn validate(
    res: &Resources,
    bfd_profiles: &BTreeMap<String, bool>,
    out: &mut Vec<Problem>,
) -> BTreeMap<String, Peer> {
    let mut peers: BTreeMap<String, Peer> = BTreeMap::new();
    for object in &res.peers {
        let mut report = report_for(KIND, object, out);
        let Some(peer) = peer(res, object, bfd_profiles, &mut report) else {
            continue;
        };
        if let Some(twin) = peers.values().find(|p| same_session(res, p, &peer)) {
            report.error(
                "spec",
                format!(
                    "peer {} already exists as BGPPeer {:?}, which may be chosen on the same nodes",
                    peer.remote, twin.name
                ),
                "remove one of the two, or give them node selectors that no Node matches both",
            );
            continue;
        }
        peers.insert(object.name.clone(), peer);
    }
    peers
}

/// One BGPPeer as ironlb runs it; None when any of its fields is in error (each reported).
fn peer(
    res: &Resources,
    object: &Object<BGPPeerSpec>,
    bfd_profiles: &BTreeMap<String, bool>,
    report: &mut Report<'_>,
) -> Option<Peer> {
    let s = &object.spec;
    let before = report.errors();
    let peer_asn = asns(report, s);
    if s.vrf.as_deref().is_some_and(|v| !v.is_empty()) {
        // Not built: the machines ironlb is tested on have no kernel VRF
        // (CONFIG_NET_VRF), so it could not be shown to work. README, "Roadmap".
        report.error(
            "spec.vrf",
            "peering from a VRF is not supported yet by ironlb: it needs the session and its listener bound to the VRF device, and the VRF's own interfaces and routes, which are not built",
            "remove vrf and peer from the default VRF, or keep MetalLB's FRR mode for this peer",
        );
    }
    let remote = remote(report, s);
    let source_address = s
        .source_address
        .as_ref()
        .and_then(|a| ip(report, "spec.sourceAddress", a, "invalid source address"));
    let router_id = s.router_id.as_ref().and_then(|r| router_id(report, r));
    let port = port(report, s.peer_port);
    let timers = timers(report, s.hold_time.as_ref(), s.keepalive_time.as_ref());
    let connect_time = s
        .connect_time
        .as_ref()
        .and_then(|d| connect_time(report, d));
    session_options(report, s);
    let password = password(report, res, s.password.as_ref(), s.password_secret.as_ref());
    bfd(report, s, remote.as_ref(), bfd_profiles);
    let node_selectors = selector::parse_list(report, "spec.nodeSelectors", &s.node_selectors);
    let remote = remote.filter(|_| report.errors() == before)?;
    Some(Peer {
        name: object.name.clone(),
        my_asn: s.my_asn,
        peer_asn,
        remote,
        port,
        source_address,
        timers,
        connect_time,
        router_id,
        node_selectors,
        password,
        bfd_profile: s.bfd_profile.clone(),
        graceful_restart: s.enable_graceful_restart,
        ebgp_multihop: s.ebgp_multi_hop,
        dual_stack: s.dual_stack_address_family,
        local_asn: s.local_asn,
        dynamic_asn: s.peer_asn.is_none().then_some(s.dynamic_asn).flatten(),
    })
}

/// The AS numbers: ours, the router's (0 when it comes from the router's OPEN, with
/// dynamicASN), and localASN.
fn asns(report: &mut Report<'_>, s: &BGPPeerSpec) -> u32 {
    if s.my_asn == 0 {
        report.error(
            "spec.myASN",
            "missing local ASN",
            "set myASN to the cluster's AS number, for example 64513",
        );
    }
    let peer_asn = match (s.peer_asn, s.dynamic_asn) {
        (None, None) => {
            report.error(
                "spec.peerASN",
                "missing peer ASN and dynamicASN",
                "set peerASN to the router's AS number",
            );
            0
        }
        (Some(_), Some(_)) => {
            report.error(
                "spec.dynamicASN",
                "both peer ASN and dynamicASN specified",
                "keep only one of peerASN and dynamicASN",
            );
            0
        }
        // The router's AS comes from its OPEN.
        (None, Some(_)) => 0,
        (Some(0), None) => {
            report.error(
                "spec.peerASN",
                "peer ASN must not be 0",
                "set peerASN to the router's AS number",
            );
            0
        }
        (Some(asn), None) => asn,
    };
    if s.local_asn == Some(0) {
        report.error(
            "spec.localASN",
            "local ASN must not be 0",
            "set localASN to the AS the router should see, or remove it",
        );
    }
    peer_asn
}

/// Where the router is: its address, or the interface of an unnumbered session.
fn remote(report: &mut Report<'_>, s: &BGPPeerSpec) -> Option<PeerRemote> {
    // MetalLB treats an empty string as unset.
    let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    match (given(&s.peer_address), given(&s.interface)) {
        (Some(_), Some(_)) => {
            report.error(
                "spec.interface",
                "both peerAddress and interface specified",
                "keep only one of them",
            );
            None
        }
        (None, None) => {
            report.error(
                "spec.peerAddress",
                "missing peerAddress",
                "set peerAddress to the router's IP, or interface for unnumbered BGP",
            );
            None
        }
        (Some(a), None) => {
            ip(report, "spec.peerAddress", &a, "invalid BGPPeer address").map(PeerRemote::Address)
        }
        (None, Some(i)) => interface(report, i),
    }
}

fn port(report: &mut Report<'_>, port: Option<u16>) -> u16 {
    match port {
        Some(0) | Some(16385..) => {
            report.error(
                "spec.peerPort",
                "peerPort must be between 1 and 16384",
                "use 179 unless the router listens elsewhere",
            );
            179
        }
        p => p.unwrap_or(179),
    }
}

/// Options that depend on the kind of session: eBGP multihop, and the deprecated disableMP.
fn session_options(report: &mut Report<'_>, s: &BGPPeerSpec) {
    let ibgp = match s.dynamic_asn {
        Some(mode) => mode == DynamicASNMode::Internal,
        None => s.peer_asn == Some(s.local_asn.unwrap_or(s.my_asn)),
    };
    if s.ebgp_multi_hop && ibgp {
        report.error(
            "spec.ebgpMultiHop",
            "invalid ebgp-multihop parameter set for an ibgp peer",
            "remove ebgpMultiHop; iBGP sessions are not limited to one hop",
        );
    }
    if s.disable_mp {
        report.warning(
            "spec.disableMP",
            "disable mp is deprecated and has no effect since it's the default behavior now",
            "remove disableMP",
        );
    }
}

/// The BFD profile: it must exist, and neither an unnumbered peer nor (for echo mode) an
/// IPv6 or multihop one can run it. `bfd_profiles` says which profiles ask for echo.
fn bfd(
    report: &mut Report<'_>,
    s: &BGPPeerSpec,
    remote: Option<&PeerRemote>,
    bfd_profiles: &BTreeMap<String, bool>,
) {
    let Some(profile) = &s.bfd_profile else {
        return;
    };
    if matches!(remote, Some(PeerRemote::Interface(_))) {
        report.unsupported("spec.bfdProfile", "BFD on an unnumbered (interface) peer");
    }
    match bfd_profiles.get(profile) {
        Some(true) => echo_mode(report, remote, s.ebgp_multi_hop),
        Some(false) => {}
        None => report.transient(
            "spec.bfdProfile",
            format!("BFDProfile {profile:?} does not exist"),
            "create the BFDProfile, or correct the name",
        ),
    }
}

/// Two peers at one address and port are one session wherever a node may run both, as
/// MetalLB judges it: a catch-all overlaps anything, and with no Nodes known every pair is
/// assumed to share one.
fn same_session(res: &Resources, a: &Peer, b: &Peer) -> bool {
    let (x, y) = (&a.node_selectors, &b.node_selectors);
    a.remote == b.remote
        && a.port == b.port
        && (x.is_empty()
            || y.is_empty()
            || res.nodes.is_empty()
            || res
                .nodes
                .values()
                .any(|labels| selector::any_matches(x, labels) && selector::any_matches(y, labels)))
}

fn ip(report: &mut Report<'_>, field: &str, value: &str, what: &str) -> Option<IpAddr> {
    match value.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            report.error(
                field,
                format!("{what} {value:?}"),
                "write a plain IPv4 or IPv6 address, without a prefix length",
            );
            None
        }
    }
}

/// An interface name as Linux allows it: at most 15 bytes, no slash or whitespace.
fn interface(report: &mut Report<'_>, name: String) -> Option<PeerRemote> {
    if name.len() > 15 || name.contains(['/', ':']) || name.contains(char::is_whitespace) {
        report.error(
            "spec.interface",
            format!("invalid interface name {name:?}"),
            "name the node's interface toward the router as `ip link` shows it, for example eth0",
        );
        return None;
    }
    Some(PeerRemote::Interface(name))
}

fn router_id(report: &mut Report<'_>, value: &str) -> Option<Ipv4Addr> {
    match value.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Some(a),
        Ok(IpAddr::V6(_)) => {
            report.error(
                "spec.routerID",
                format!("router ID {value:?} is IPv6"),
                "a BGP router ID is 32 bits: write it as an IPv4 address",
            );
            None
        }
        Err(_) => {
            report.error(
                "spec.routerID",
                format!("invalid router ID {value:?}"),
                "write the router ID as an IPv4 address",
            );
            None
        }
    }
}

/// MetalLB's `parseTimers`: one timer derives the other; hold is 0 or at least 3 s (and at
/// most 65535 s, all that a BGP OPEN can carry), and
/// the keepalive is not longer than the hold time.
pub(crate) fn timers(
    report: &mut Report<'_>,
    hold: Option<&KubeDuration>,
    keepalive: Option<&KubeDuration>,
) -> Timers {
    let mut non_negative = |field: &str, d: Option<&KubeDuration>| {
        d.map(|d| {
            if d.is_negative() {
                report.error(
                    field,
                    format!("{d} is negative"),
                    "use a positive duration such as 90s",
                );
            }
            Duration::from(*d)
        })
    };
    let hold = non_negative("spec.holdTime", hold);
    let keepalive = non_negative("spec.keepaliveTime", keepalive);
    let (hold, keepalive) = match (hold, keepalive) {
        (None, None) => return Timers::default(),
        (Some(h), None) => (h, h / 3),
        (None, Some(k)) => (k * 3, k),
        (Some(h), Some(k)) => (h, k),
    };
    let whole = hold.as_secs();
    if whole != 0 && whole < 3 {
        report.error(
            "spec.holdTime",
            format!("invalid hold time {hold:?}: must be 0 or >=3s"),
            "use 0 (no keepalives) or at least 3s; 90s is usual",
        );
    }
    if whole > u64::from(u16::MAX) {
        report.error(
            "spec.holdTime",
            format!("invalid hold time {hold:?}: at most 65535s, the most a BGP OPEN can carry"),
            "use at most 65535s; 90s is usual",
        );
    }
    if keepalive > hold {
        report.error(
            "spec.keepaliveTime",
            format!(
                "invalid keepaliveTime {keepalive:?}: it is longer than the hold time {hold:?}"
            ),
            "make keepaliveTime at most the hold time; a third of it is usual",
        );
    }
    Timers { hold, keepalive }
}

fn connect_time(report: &mut Report<'_>, d: &KubeDuration) -> Option<Duration> {
    let value = Duration::from(*d);
    if d.is_negative() || value.subsec_nanos() != 0 || !(1..=65535).contains(&value.as_secs()) {
        report.error(
            "spec.connectTime",
            format!("connectTime {d} must be whole seconds between 1s and 65535s"),
            "use a whole number of seconds, such as 10s",
        );
        return None;
    }
    Some(value)
}

fn password(
    report: &mut Report<'_>,
    res: &Resources,
    inline: Option<&String>,
    secret: Option<&k8s_openapi::api::core::v1::SecretReference>,
) -> Option<String> {
    let secret_name = secret
        .and_then(|r| r.name.clone())
        .filter(|n| !n.is_empty());
    match (inline, secret_name) {
        (Some(_), Some(_)) => {
            report.error(
                "spec.passwordSecret",
                "can not have both password and secret ref set in peer config",
                "keep only one of password and passwordSecret",
            );
            None
        }
        (Some(p), None) => Some(p.clone()),
        (None, None) => None,
        (None, Some(name)) => {
            let Some(secret) = res.secrets.get(&name) else {
                report.transient(
                    "spec.passwordSecret",
                    format!("Secret {name:?} does not exist"),
                    "create the Secret (type kubernetes.io/basic-auth, key password) in the MetalLB namespace",
                );
                return None;
            };
            if secret.type_ != SECRET_TYPE {
                report.error(
                    "spec.passwordSecret",
                    format!("secret type mismatch on Secret {name:?}: it is {:?}, expected {SECRET_TYPE:?}", secret.type_),
                    "recreate the Secret with type kubernetes.io/basic-auth",
                );
                return None;
            }
            match secret.data.get("password") {
                Some(p) => Some(p.clone()),
                None => {
                    report.error(
                        "spec.passwordSecret",
                        format!("password not specified in the secret {name:?}"),
                        "add the key \"password\" to the Secret",
                    );
                    None
                }
            }
        }
    }
}

/// BFD echo mode runs on single-hop IPv4 sessions, as in FRR, whose IPv6 echo is a
/// software loop between bfdds rather than the forwarding-plane echo of RFC 5881.
fn echo_mode(report: &mut Report<'_>, remote: Option<&PeerRemote>, multihop: bool) {
    if matches!(remote, Some(PeerRemote::Address(IpAddr::V6(_)))) {
        report.unsupported("spec.bfdProfile", "BFD echo mode on an IPv6 peer");
    } else if multihop {
        report.warning(
            "spec.bfdProfile",
            "echo mode does not apply to a multihop session (RFC 5883); it runs on BFD control packets",
            "use a profile without echoMode for this peer",
        );
    }
}
