//! One case per configuration rule. Each asserts the specific problem: object, field and
//! message, never just "some error".

mod common;
use common::{Expect, Expect::*, check};

fn doc(api: &str, kind: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: {api}\nkind: {kind}\nmetadata: {{name: {name}, namespace: metallb-system}}\nspec: {spec}\n"
    )
}
fn pool(name: &str, spec: &str) -> String {
    doc("metallb.io/v1beta1", "IPAddressPool", name, spec)
}
fn peer(name: &str, spec: &str) -> String {
    doc("metallb.io/v1beta2", "BGPPeer", name, spec)
}
fn bgp(name: &str, spec: &str) -> String {
    doc("metallb.io/v1beta1", "BGPAdvertisement", name, spec)
}
fn l2(name: &str, spec: &str) -> String {
    doc("metallb.io/v1beta1", "L2Advertisement", name, spec)
}
fn bfd(name: &str, spec: &str) -> String {
    doc("metallb.io/v1beta1", "BFDProfile", name, spec)
}
fn community(name: &str, spec: &str) -> String {
    doc("metallb.io/v1beta1", "Community", name, spec)
}
fn secret(name: &str, type_: &str, data: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: metallb-system}}\ntype: {type_}\nstringData: {data}\n"
    )
}
fn legacy(config: &str) -> String {
    let indented: String = config.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: config, namespace: metallb-system}}\ndata:\n  config: |\n{indented}"
    )
}
fn excludel2(value: &str) -> String {
    let indented: String = value.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: metallb-excludel2, namespace: metallb-system}}\ndata:\n  excludel2.yaml: |\n{indented}"
    )
}
fn lan() -> String {
    pool("lan", "{addresses: [192.0.2.128/25]}")
}
fn gw() -> String {
    peer(
        "gw",
        "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}",
    )
}
fn ibgp() -> String {
    peer(
        "gw",
        "{myASN: 64512, peerASN: 64512, peerAddress: 192.0.2.1}",
    )
}
fn with(parts: &[String]) -> String {
    parts.concat()
}

const P: &str = "IPAddressPool \"p\"";
const GW: &str = "BGPPeer \"gw\"";
const AD: &str = "BGPAdvertisement \"ad\"";
const CM: &str = "ConfigMap \"metallb-system/config\"";
const EX: &str = "ConfigMap \"metallb-excludel2\"";

fn cases() -> Vec<(&'static str, String, Expect)> {
    vec![
        // IPAddressPool
        ("valid cidr pool", lan(), Valid),
        ("valid ipv6 pool", pool("p", "{addresses: ['2001:db8::/120']}"), Valid),
        ("valid range with spaces", pool("p", "{addresses: [192.0.2.10 - 192.0.2.20]}"), Valid),
        ("valid ipv6 range", pool("p", "{addresses: ['2001:db8::10-2001:db8::20']}"), Valid),
        ("host bits are masked", pool("p", "{addresses: [198.51.100.10/24]}"), Valid),
        ("single /32 is fine", pool("p", "{addresses: [192.0.2.5/32]}"), Valid),
        ("no addresses", pool("p", "{addresses: []}"), Error(P, "spec.addresses", "pool has no prefixes defined")),
        ("missing addresses field", pool("p", "{autoAssign: false}"), Error(P, "spec", "missing field `addresses`")),
        ("bare ipv4", pool("p", "{addresses: [192.0.2.5]}"), Error(P, "spec.addresses[0]", "write it as 192.0.2.5/32")),
        ("bare ipv6", pool("p", "{addresses: ['2001:db8::5']}"), Error(P, "spec.addresses[0]", "write it as 2001:db8::5/128")),
        ("bad cidr", pool("p", "{addresses: [192.0.2.0/33]}"), Error(P, "spec.addresses[0]", "is not a valid CIDR")),
        ("cidr with spaces around", pool("p", "{addresses: [' 192.0.2.0/28 ']}"), Error(P, "spec.addresses[0]", "has spaces around it")),
        ("range with spaces around", pool("p", "{addresses: [' 192.0.2.10-192.0.2.20 ']}"), Valid),
        ("garbage entry", pool("p", "{addresses: [lan]}"), Error(P, "spec.addresses[0]", "neither a CIDR")),
        ("range reversed", pool("p", "{addresses: [192.0.2.20-192.0.2.10]}"), Error(P, "spec.addresses[0]", "starts after it ends")),
        ("range mixes families", pool("p", "{addresses: ['192.0.2.1-2001:db8::1']}"), Error(P, "spec.addresses[0]", "mixes IPv4 and IPv6")),
        ("range bad ip", pool("p", "{addresses: [192.0.2.1-192.0.2.300]}"), Error(P, "spec.addresses[0]", "not a valid IP address")),
        ("overlap inside pool", pool("p", "{addresses: [192.0.2.0/24, 192.0.2.128/25]}"), Error(P, "spec.addresses[1]", "overlaps with already defined CIDR \"192.0.2.0/24\"")),
        ("overlap across pools", with(&[lan(), pool("p", "{addresses: [192.0.2.200-192.0.2.210]}")]), Error(P, "spec.addresses[0]", "in pool \"lan\"")),
        ("overlap ipv6 across pools", with(&[pool("a", "{addresses: ['2001:db8::/64']}"), pool("p", "{addresses: ['2001:db8::8/125']}")]), Error(P, "spec.addresses[0]", "overlaps")),
        ("adjacent pools do not overlap", with(&[pool("a", "{addresses: [192.0.2.0/25]}"), pool("p", "{addresses: [192.0.2.128/25]}")]), Valid),
        ("duplicate namespaces", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {namespaces: [a, a]}}"), Error(P, "spec.serviceAllocation.namespaces[1]", "duplicate definition")),
        ("negative priority", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {priority: -1}}"), Error(P, "spec.serviceAllocation.priority", "must not be negative")),
        ("duplicate service selectors", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {serviceSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]}}"), Error(P, "spec.serviceAllocation.serviceSelectors[1]", "duplicate definition")),
        ("equal selectors written differently", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {namespaceSelectors: [{matchExpressions: [{key: k, operator: In, values: [x, z]}]}, {matchExpressions: [{key: k, operator: In, values: [z, x]}]}]}}"), Error(P, "spec.serviceAllocation.namespaceSelectors[1]", "duplicate definition")),
        ("bad selector operator", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {serviceSelectors: [{matchExpressions: [{key: k, operator: Equals, values: [x]}]}]}}"), Error(P, "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator", "unknown operator")),
        ("In without values", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {serviceSelectors: [{matchExpressions: [{key: k, operator: In}]}]}}"), Error(P, "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values", "needs at least one value")),
        ("Exists with values", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {serviceSelectors: [{matchExpressions: [{key: k, operator: Exists, values: [x]}]}]}}"), Error(P, "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values", "takes no values")),
        ("duplicate selector values", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {serviceSelectors: [{matchExpressions: [{key: k, operator: In, values: [x, x]}]}]}}"), Error(P, "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values", "duplicate values")),
        ("expression without a key", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {serviceSelectors: [{matchExpressions: [{operator: Exists}]}]}}"), Error(P, "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].key", "has no key")),
        ("expression with an empty key", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {serviceSelectors: [{matchExpressions: [{key: '', operator: In, values: [x]}]}]}}"), Error(P, "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].key", "has no key")),
        ("label key that is not a label name", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {serviceSelectors: [{matchLabels: {'a b': x}}]}}"), Error(P, "spec.serviceAllocation.serviceSelectors[0].matchLabels", "not a valid label key")),
        ("label value that is not a label value", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {serviceSelectors: [{matchLabels: {app: 'a b'}}]}}"), Error(P, "spec.serviceAllocation.serviceSelectors[0].matchLabels", "not a valid label value")),
        ("prefixed label key", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {serviceSelectors: [{matchLabels: {'example.com/tier': web}}]}}"), Valid),
        ("duplicate match expressions", pool("p", "{addresses: [192.0.2.0/28], serviceAllocation: {serviceSelectors: [{matchExpressions: [{key: k, operator: Exists}, {key: k, operator: Exists}]}]}}"), Error(P, "spec.serviceAllocation.serviceSelectors[0].matchExpressions[1]", "duplicate match expression")),
        ("wrong type for autoAssign", pool("p", "{addresses: [192.0.2.0/28], autoAssign: maybe}"), Error(P, "spec.autoAssign", "invalid type")),
        ("unknown field", pool("p", "{addresses: [192.0.2.0/28], autoassign: false}"), Error(P, "spec.autoassign", "unknown field")),
        ("same pool twice", with(&[lan(), pool("lan", "{addresses: [203.0.113.0/24]}")]), Error("IPAddressPool \"lan\"", "metadata.name", "defined more than once")),
        // BGPPeer
        ("valid peer", gw(), Valid),
        ("valid ipv6 peer", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: '2001:db8::1'}"), Valid),
        ("missing myASN value", peer("gw", "{myASN: 0, peerASN: 64512, peerAddress: 192.0.2.1}"), Error(GW, "spec.myASN", "missing local ASN")),
        ("missing peerASN", peer("gw", "{myASN: 64513, peerAddress: 192.0.2.1}"), Error(GW, "spec.peerASN", "missing peer ASN and dynamicASN")),
        ("peerASN and dynamicASN", peer("gw", "{myASN: 64513, peerASN: 1, dynamicASN: external, peerAddress: 192.0.2.1}"), Error(GW, "spec.dynamicASN", "both peer ASN and dynamicASN")),
        ("dynamicASN external", peer("gw", "{myASN: 64513, dynamicASN: external, peerAddress: 192.0.2.1}"), Valid),
        ("dynamicASN internal is iBGP: no multihop", peer("gw", "{myASN: 64513, dynamicASN: internal, ebgpMultiHop: true, peerAddress: 192.0.2.1}"), Error(GW, "spec.ebgpMultiHop", "ibgp")),
        ("bad dynamicASN value", peer("gw", "{myASN: 64513, dynamicASN: sideways, peerAddress: 192.0.2.1}"), Error(GW, "spec.dynamicASN", "unknown variant")),
        ("localASN accepted", peer("gw", "{myASN: 64513, peerASN: 64512, localASN: 65000, peerAddress: 192.0.2.1}"), Valid),
        ("localASN 0", peer("gw", "{myASN: 64513, peerASN: 64512, localASN: 0, peerAddress: 192.0.2.1}"), Error(GW, "spec.localASN", "must not be 0")),
        ("localASN makes it iBGP: no multihop", peer("gw", "{myASN: 64513, peerASN: 64512, localASN: 64512, ebgpMultiHop: true, peerAddress: 192.0.2.1}"), Error(GW, "spec.ebgpMultiHop", "ibgp")),
        ("vrf unsupported", peer("gw", "{myASN: 64513, peerASN: 64512, vrf: red, peerAddress: 192.0.2.1}"), Error(GW, "spec.vrf", "bound to the VRF device")),
        ("unnumbered peer", peer("gw", "{myASN: 64513, peerASN: 64512, interface: eth0}"), Valid),
        ("unnumbered peer with dynamicASN", peer("gw", "{myASN: 64513, dynamicASN: external, interface: eth0}"), Valid),
        ("unnumbered peer, empty peerAddress", peer("gw", "{myASN: 64513, peerASN: 64512, interface: eth0, peerAddress: ''}"), Valid),
        ("empty interface and no address", peer("gw", "{myASN: 64513, peerASN: 64512, interface: ''}"), Error(GW, "spec.peerAddress", "missing peerAddress")),
        ("interface name too long", peer("gw", "{myASN: 64513, peerASN: 64512, interface: enp0s31f6-uplink0}"), Error(GW, "spec.interface", "invalid interface name")),
        ("interface name with a slash", peer("gw", "{myASN: 64513, peerASN: 64512, interface: eth0/1}"), Error(GW, "spec.interface", "invalid interface name")),
        ("unnumbered peer with BFD", with(&[bfd("fast", "{receiveInterval: 100}"), peer("gw", "{myASN: 64513, peerASN: 64512, interface: eth0, bfdProfile: fast}")]), Error(GW, "spec.bfdProfile", "not supported yet")),
        ("one interface twice", with(&[peer("a", "{myASN: 64513, peerASN: 64512, interface: eth0}"), peer("b", "{myASN: 64513, peerASN: 64514, interface: eth0}")]), Error("BGPPeer \"b\"", "spec", "peer interface eth0 already exists as BGPPeer \"a\"")),
        ("two interfaces", with(&[peer("a", "{myASN: 64513, peerASN: 64512, interface: eth0}"), peer("b", "{myASN: 64513, peerASN: 64512, interface: eth1}")]), Valid),
        ("address and interface", peer("gw", "{myASN: 64513, peerASN: 64512, interface: eth0, peerAddress: 192.0.2.1}"), Error(GW, "spec.interface", "both peerAddress and interface")),
        ("missing address", peer("gw", "{myASN: 64513, peerASN: 64512}"), Error(GW, "spec.peerAddress", "missing peerAddress")),
        ("bad address", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: gateway}"), Error(GW, "spec.peerAddress", "invalid BGPPeer address")),
        ("address with prefix", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1/24}"), Error(GW, "spec.peerAddress", "invalid BGPPeer address")),
        ("bad source address", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, sourceAddress: x}"), Error(GW, "spec.sourceAddress", "invalid source address")),
        ("bad router id", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, routerID: r1}"), Error(GW, "spec.routerID", "invalid router ID")),
        ("ipv6 router id", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, routerID: '2001:db8::1'}"), Error(GW, "spec.routerID", "is IPv6")),
        ("port zero", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, peerPort: 0}"), Error(GW, "spec.peerPort", "between 1 and 16384")),
        ("port too high", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, peerPort: 20000}"), Error(GW, "spec.peerPort", "between 1 and 16384")),
        ("port out of u16", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, peerPort: 70000}"), Error(GW, "spec.peerPort", "invalid value")),
        ("hold time 2s", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, holdTime: 2s}"), Error(GW, "spec.holdTime", "must be 0 or >=3s")),
        ("hold time over 16 bits", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, holdTime: 65536s}"), Error(GW, "spec.holdTime", "at most 65535s")),
        ("hold time 65535s ok", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, holdTime: 65535s}"), Valid),
        ("keepalive deriving a hold over 16 bits", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, keepaliveTime: 30000s}"), Error(GW, "spec.holdTime", "at most 65535s")),
        ("hold time 0 ok", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, holdTime: 0s}"), Valid),
        ("keepalive over hold", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, holdTime: 9s, keepaliveTime: 10s}"), Error(GW, "spec.keepaliveTime", "invalid keepaliveTime")),
        ("keepalive alone derives hold", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, keepaliveTime: 1s}"), Valid),
        ("negative hold", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, holdTime: -5s}"), Error(GW, "spec.holdTime", "is negative")),
        ("bad duration", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, holdTime: 90}"), Error(GW, "spec.holdTime", "invalid type")),
        ("connect time fractional", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, connectTime: 1500ms}"), Error(GW, "spec.connectTime", "whole seconds")),
        ("connect time too long", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, connectTime: 20h}"), Error(GW, "spec.connectTime", "between 1s and 65535s")),
        ("connect time ok", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, connectTime: 10s}"), Valid),
        ("password and secret", with(&[secret("s", "kubernetes.io/basic-auth", "{password: x}"), peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, password: a, passwordSecret: {name: s}}")]), Error(GW, "spec.passwordSecret", "can not have both password and secret ref")),
        ("secret missing is transient", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, passwordSecret: {name: s}}"), Transient(GW, "spec.passwordSecret", "Secret \"s\" does not exist")),
        ("secret wrong type", with(&[secret("s", "Opaque", "{password: x}"), peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, passwordSecret: {name: s}}")]), Error(GW, "spec.passwordSecret", "secret type mismatch")),
        ("secret without password key", with(&[secret("s", "kubernetes.io/basic-auth", "{username: x}"), peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, passwordSecret: {name: s}}")]), Error(GW, "spec.passwordSecret", "password not specified")),
        ("secret resolves", with(&[secret("s", "kubernetes.io/basic-auth", "{password: x}"), peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, passwordSecret: {name: s}}")]), Valid),
        ("missing bfd profile is transient", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, bfdProfile: fast}"), Transient(GW, "spec.bfdProfile", "BFDProfile \"fast\" does not exist")),
        ("bfd profile resolves", with(&[bfd("fast", "{receiveInterval: 100}"), peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, bfdProfile: fast}")]), Valid),
        ("multihop on ibgp", peer("gw", "{myASN: 64512, peerASN: 64512, peerAddress: 192.0.2.1, ebgpMultiHop: true}"), Error(GW, "spec.ebgpMultiHop", "ibgp peer")),
        ("one address, a catch-all and a selector", with(&[gw(), peer("gw2", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, nodeSelectors: [{matchLabels: {rack: a}}]}")]), Error("BGPPeer \"gw2\"", "spec", "already exists as BGPPeer \"gw\"")),
        ("one address, different ASNs, nodes unknown", with(&[peer("a", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, nodeSelectors: [{matchLabels: {rack: a}}]}"), peer("b", "{myASN: 64514, peerASN: 64512, peerAddress: 192.0.2.1, nodeSelectors: [{matchLabels: {rack: b}}]}")]), Error("BGPPeer \"b\"", "spec", "already exists as BGPPeer \"a\"")),
        ("one address, disjoint racks", with(&["---\napiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {rack: a}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n2, labels: {rack: b}}\n".to_string(), peer("a", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, nodeSelectors: [{matchLabels: {rack: a}}]}"), peer("b", "{myASN: 64514, peerASN: 64512, peerAddress: 192.0.2.1, nodeSelectors: [{matchLabels: {rack: b}}]}")]), Valid),
        ("one address, overlapping expressions", with(&["---\napiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {rack: a}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n2, labels: {rack: b}}\n".to_string(), peer("a", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, nodeSelectors: [{matchExpressions: [{key: rack, operator: In, values: [a, b]}]}]}"), peer("b", "{myASN: 64514, peerASN: 64512, peerAddress: 192.0.2.1, nodeSelectors: [{matchExpressions: [{key: rack, operator: In, values: [b]}]}]}")]), Error("BGPPeer \"b\"", "spec", "already exists as BGPPeer \"a\"")),
        ("one address, other ports", with(&[gw(), peer("gw2", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, peerPort: 1179}")]), Valid),
        ("identical peers", with(&[gw(), peer("gw2", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}")]), Error("BGPPeer \"gw2\"", "spec", "already exists as BGPPeer \"gw\"")),
        ("disableMP warns", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, disableMP: true}"), Warning(GW, "spec.disableMP", "deprecated")),
        ("peer duplicate node selectors", peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, nodeSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]}"), Error(GW, "spec.nodeSelectors[1]", "duplicate definition")),
        ("v1beta1 peer converts", doc("metallb.io/v1beta1", "BGPPeer", "gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, nodeSelectors: [{matchExpressions: [{key: k, operator: In, values: [a]}]}]}"), Warning(GW, "apiVersion", "deprecated")),
        // BFDProfile
        ("valid bfd", bfd("b", "{receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}"), Valid),
        ("receive interval low", bfd("b", "{receiveInterval: 9}"), Error("BFDProfile \"b\"", "spec.receiveInterval", "out of range 10..60000")),
        ("transmit interval high", bfd("b", "{transmitInterval: 60001}"), Error("BFDProfile \"b\"", "spec.transmitInterval", "out of range")),
        ("multiplier low", bfd("b", "{detectMultiplier: 1}"), Error("BFDProfile \"b\"", "spec.detectMultiplier", "out of range 2..255")),
        ("echo interval low", bfd("b", "{echoInterval: 5}"), Error("BFDProfile \"b\"", "spec.echoInterval", "out of range")),
        ("minimum ttl high", bfd("b", "{minimumTtl: 255}"), Error("BFDProfile \"b\"", "spec.minimumTtl", "out of range 1..254")),
        ("echo mode", bfd("b", "{echoMode: true, echoInterval: 50}"), Valid),
        ("echo mode on an IPv4 peer", with(&[bfd("e", "{echoMode: true}"), peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, bfdProfile: e}")]), Valid),
        ("echo mode on an IPv6 peer", with(&[bfd("e", "{echoMode: true}"), peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: '2001:db8::1', bfdProfile: e}")]), Error(GW, "spec.bfdProfile", "BFD echo mode on an IPv6 peer is not supported yet")),
        ("echo mode on a multihop peer", with(&[bfd("e", "{echoMode: true}"), peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, ebgpMultiHop: true, bfdProfile: e}")]), Warning(GW, "spec.bfdProfile", "does not apply to a multihop session")),
        ("echo mode off on an IPv6 peer", with(&[bfd("e", "{echoMode: false}"), peer("gw", "{myASN: 64513, peerASN: 64512, peerAddress: '2001:db8::1', bfdProfile: e}")]), Valid),
        // Community
        ("valid aliases", community("c", "{communities: [{name: no-export, value: '65535:65281'}, {name: big, value: 'large:64512:1:2'}]}"), Valid),
        ("alias bad section", community("c", "{communities: [{name: x, value: '70000:1'}]}"), Error("Community \"c\"", "spec.communities[0].value", "invalid section")),
        ("alias bad format", community("c", "{communities: [{name: x, value: '1:2:3'}]}"), Error("Community \"c\"", "spec.communities[0].value", "invalid community format")),
        ("alias bad large marker", community("c", "{communities: [{name: x, value: 'big:1:2:3'}]}"), Error("Community \"c\"", "spec.communities[0].value", "expected community to be of format large")),
        ("alias duplicate across resources", with(&[community("a", "{communities: [{name: x, value: '1:1'}]}"), community("c", "{communities: [{name: x, value: '1:2'}]}")]), Error("Community \"c\"", "spec.communities[0].name", "duplicate definition of community \"x\"")),
        // BGPAdvertisement
        ("valid advertisement", with(&[lan(), gw(), bgp("ad", "{ipAddressPools: [lan], communities: ['64512:100', 'large:64512:1:1']}")]), Valid),
        ("aggregation over 32", with(&[lan(), bgp("ad", "{aggregationLength: 33}")]), Error(AD, "spec.aggregationLength", "between 1 and 32")),
        ("aggregation zero", with(&[lan(), bgp("ad", "{aggregationLength: 0}")]), Error(AD, "spec.aggregationLength", "between 1 and 32")),
        ("aggregation v6 over 128", with(&[lan(), bgp("ad", "{aggregationLengthV6: 129}")]), Error(AD, "spec.aggregationLengthV6", "between 1 and 128")),
        ("aggregation shorter than pool", with(&[lan(), bgp("ad", "{aggregationLength: 24}")]), Error(AD, "spec.aggregationLength", "prefix 25 in pool \"lan\" is more specific")),
        ("aggregation of a range", with(&[pool("r", "{addresses: [192.0.2.8-192.0.2.23]}"), bgp("ad", "{aggregationLength: 28}")]), Error(AD, "spec.aggregationLength", "prefix 29")),
        ("aggregation equal to pool", with(&[lan(), bgp("ad", "{aggregationLength: 25}")]), Valid),
        ("aggregation v6 shorter than pool", with(&[pool("v6", "{addresses: ['2001:db8::/120']}"), bgp("ad", "{aggregationLengthV6: 64}")]), Error(AD, "spec.aggregationLengthV6", "prefix 120")),
        ("community out of range", with(&[lan(), bgp("ad", "{communities: ['65536:1']}")]), Error(AD, "spec.communities[0]", "invalid section")),
        ("large community bad marker", with(&[lan(), bgp("ad", "{communities: ['huge:1:2:3']}")]), Error(AD, "spec.communities[0]", "large:GLOBAL")),
        ("unknown alias is transient", with(&[lan(), bgp("ad", "{communities: [no-export]}")]), Transient(AD, "spec.communities[0]", "nor a known Community alias")),
        ("alias resolves", with(&[lan(), community("c", "{communities: [{name: no-export, value: '65535:65281'}]}"), bgp("ad", "{communities: [no-export]}")]), Valid),
        ("duplicate communities", with(&[lan(), bgp("ad", "{communities: ['1:1', '1:1']}")]), Error(AD, "spec.communities[1]", "duplicate definition")),
        ("too many communities", with(&[lan(), bgp("ad", &format!("{{communities: [{}]}}", (0..64).map(|i| format!("'1:{i}'")).collect::<Vec<_>>().join(",")))]), Error(AD, "spec.communities", "at most 63")),
        ("duplicate pools", with(&[lan(), bgp("ad", "{ipAddressPools: [lan, lan]}")]), Error(AD, "spec.ipAddressPools[1]", "duplicate definition")),
        ("unknown pool warns", with(&[lan(), bgp("ad", "{ipAddressPools: [lna]}")]), Warning(AD, "spec.ipAddressPools[0]", "does not exist")),
        ("duplicate peers", with(&[lan(), gw(), bgp("ad", "{peers: [gw, gw]}")]), Error(AD, "spec.peers[1]", "duplicate definition")),
        ("unknown peer warns", with(&[lan(), gw(), bgp("ad", "{peers: [gateway]}")]), Warning(AD, "spec.peers[0]", "does not exist")),
        ("service selectors with aggregation", with(&[lan(), bgp("ad", "{aggregationLength: 26, serviceSelectors: [{matchLabels: {a: b}}]}")]), Error(AD, "spec.serviceSelectors", "mutually exclusive")),
        ("identical advertisements", with(&[lan(), bgp("a1", "{ipAddressPools: [lan]}"), bgp("ad", "{ipAddressPools: [lan]}")]), Error(AD, "spec", "equal to BGPAdvertisement \"a1\"")),
        ("local pref conflict", with(&[lan(), ibgp(), bgp("a1", "{localPref: 100}"), bgp("ad", "{localPref: 200}")]), Error(AD, "spec.localPref", "invalid local preference 200")),
        ("local pref split by peers", with(&[lan(), ibgp(), peer("gw2", "{myASN: 64512, peerASN: 64512, peerAddress: 192.0.2.2}"), bgp("a1", "{localPref: 100, peers: [gw]}"), bgp("ad", "{localPref: 200, peers: [gw2]}")]), Valid),
        ("local pref split by aggregation", with(&[lan(), ibgp(), bgp("a1", "{localPref: 100, aggregationLength: 25, aggregationLengthV6: 120}"), bgp("ad", "{localPref: 200}")]), Valid),
        ("local pref split by v4 aggregation in a v4 pool", with(&[lan(), ibgp(), bgp("a1", "{localPref: 100, aggregationLength: 26}"), bgp("ad", "{localPref: 200}")]), Valid),
        ("local pref, v4 aggregation only, dual-stack pool", with(&[pool("ds", "{addresses: [192.0.2.128/25, '2001:db8::/120']}"), ibgp(), bgp("a1", "{localPref: 100, aggregationLength: 26}"), bgp("ad", "{localPref: 200}")]), Error(AD, "spec.localPref", "invalid local preference 200")),
        ("local pref split by known nodes", with(&["---\napiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {rack: a}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n2, labels: {rack: b}}\n".to_string(), lan(), ibgp(), bgp("a1", "{localPref: 100, nodeSelectors: [{matchLabels: {rack: a}}]}"), bgp("ad", "{localPref: 200, nodeSelectors: [{matchLabels: {rack: b}}]}")]), Valid),
        ("local pref on ebgp warns", with(&[lan(), gw(), bgp("ad", "{localPref: 100}")]), Warning(AD, "spec.localPref", "only sent on iBGP")),
        ("pool selector selects", with(&[pool("p", "{addresses: [192.0.2.0/28]}"), bgp("ad", "{ipAddressPoolSelectors: [{matchLabels: {tier: x}}]}")]), Valid),
        // L2Advertisement
        ("valid l2", with(&[lan(), l2("l", "{ipAddressPools: [lan], interfaces: [eth0]}")]), Valid),
        ("l2 duplicate pools", with(&[lan(), l2("l", "{ipAddressPools: [lan, lan]}")]), Error("L2Advertisement \"l\"", "spec.ipAddressPools[1]", "duplicate definition")),
        ("l2 duplicate node selectors", with(&[lan(), l2("l", "{nodeSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]}")]), Error("L2Advertisement \"l\"", "spec.nodeSelectors[1]", "duplicate definition")),
        ("l2 duplicate interfaces", with(&[lan(), l2("l", "{interfaces: [eth0, eth0]}")]), Error("L2Advertisement \"l\"", "spec.interfaces[1]", "duplicate definition")),
        ("l2 preferred nodes", with(&[lan(), l2("l", "{preferredNodeSelectors: [{weight: 10, preference: {matchLabels: {disk: ssd}}}]}")]), Valid),
        ("l2 preferred weight out of range", with(&[lan(), l2("l", "{preferredNodeSelectors: [{weight: 0, preference: {}}]}")]), Error("L2Advertisement \"l\"", "spec.preferredNodeSelectors[0].weight", "outside 1-100")),
        // Documents
        ("unknown kind", doc("metallb.io/v1beta1", "AddressPoool", "x", "{}"), Error("AddressPoool \"x\"", "kind", "unknown kind")),
        ("foreign kind", doc("apps/v1", "Deployment", "x", "{}"), Error("Deployment \"x\"", "kind", "unknown kind")),
        ("wrong api version", doc("metallb.io/v1", "IPAddressPool", "x", "{addresses: [192.0.2.0/28]}"), Error("IPAddressPool \"x\"", "apiVersion", "not a served version of IPAddressPool")),
        ("peer wrong api version", doc("metallb.io/v1alpha1", "BGPPeer", "x", "{}"), Error("BGPPeer \"x\"", "apiVersion", "not a served version of BGPPeer")),
        ("old AddressPool crd", doc("metallb.io/v1beta1", "AddressPool", "x", "{}"), Error("AddressPool \"x\"", "kind", "removed in MetalLB 0.14")),
        ("missing name", "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {}\nspec: {addresses: []}\n".to_string(), Error("IPAddressPool", "metadata.name", "missing name")),
        ("missing kind", "apiVersion: metallb.io/v1beta1\nmetadata: {name: x}\n".to_string(), Error("document 1", "kind", "missing kind")),
        ("not a mapping", "- a\n- b\n".to_string(), Error("document 1", "", "must be a mapping")),
        ("malformed yaml has line and column", "apiVersion: v1\nkind: [Secret\nmetadata: x\n".to_string(), Error("File \"test.yaml\"", "", "line 3 column")),
        ("thousands of documents are read", format!("{}{}", "---\n".repeat(5000), doc("metallb.io/v1beta1", "IPAddressPool", "x", "{addresses: [192.0.2.0]}")), Error("IPAddressPool \"x\"", "spec.addresses[0]", "single IP")),
        ("too deep is beyond the reader, not a syntax error", format!("{}1{}", "[".repeat(100), "]".repeat(100)), Error("File \"test.yaml\"", "", "beyond what ironlb reads")),
        ("a status kind is not configuration", doc("metallb.io/v1beta1", "ServiceL2Status", "x", "{}"), Warning("ServiceL2Status \"x\"", "kind", "not read as configuration")),
        ("a v1beta1 BGPPeer is read as v1beta2", doc("metallb.io/v1beta1", "BGPPeer", "x", "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}"), Warning("BGPPeer \"x\"", "apiVersion", "converted to v1beta2")),
        ("another API's object elsewhere is only ignored", "apiVersion: v1\nkind: Secret\nmetadata: {name: x, namespace: default}\n".to_string(), Warning("Secret \"x\"", "metadata.namespace", "ignored: it is in namespace \"default\"")),
        ("other namespace is refused", "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: x, namespace: default}\nspec: {addresses: [192.0.2.0/28]}\n".to_string(), Error("IPAddressPool \"x\"", "metadata.namespace", "lives only in \"metallb-system\"")),
        ("a Secret in another namespace warns", format!("{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: default}}\nstringData: {{password: x}}\n", lan()), Warning("Secret \"s\"", "metadata.namespace", "ignored")),
        ("kubectl list is read", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: metallb.io/v1beta1\n  kind: IPAddressPool\n  metadata: {name: p}\n  spec: {addresses: [192.0.2.0]}\n".to_string(), Error(P, "spec.addresses[0]", "single IP")),
        ("status kind warns", doc("metallb.io/v1beta1", "ServiceL2Status", "s", "{}"), Warning("ServiceL2Status \"s\"", "kind", "ignored")),
        // Legacy ConfigMap
        ("legacy valid", legacy("address-pools:\n- name: lan\n  protocol: layer2\n  addresses: [192.0.2.128/25]\n"), Valid),
        ("legacy missing protocol", legacy("address-pools:\n- name: lan\n  addresses: [192.0.2.128/25]\n"), Error(CM, "address-pools[0].protocol", "missing the protocol field")),
        ("legacy unknown protocol", legacy("address-pools:\n- name: lan\n  protocol: l2\n  addresses: [192.0.2.128/25]\n"), Error(CM, "address-pools[0].protocol", "unknown protocol \"l2\"")),
        ("legacy null advertisement is a default one", legacy("peers:\n- {peer-address: 192.0.2.1, peer-asn: 64512, my-asn: 64513}\naddress-pools:\n- name: routed\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n  bgp-advertisements:\n  -\n"), Valid),
        ("legacy ads on layer2", legacy("address-pools:\n- name: lan\n  protocol: layer2\n  addresses: [192.0.2.128/25]\n  bgp-advertisements: [{localpref: 100}]\n"), Error(CM, "address-pools[0].bgp-advertisements", "not allowed on a layer2 pool")),
        ("legacy pool without name", legacy("address-pools:\n- protocol: bgp\n  addresses: [198.51.100.0/24]\n"), Error(CM, "address-pools[0].name", "missing the name field")),
        ("legacy duplicate pool names", legacy("address-pools:\n- {name: a, protocol: bgp, addresses: [198.51.100.0/25]}\n- {name: a, protocol: bgp, addresses: [198.51.100.128/25]}\n"), Error(CM, "address-pools[].name[1]", "duplicate definition")),
        ("legacy bad address points at configmap", legacy("address-pools:\n- {name: a, protocol: bgp, addresses: [198.51.100.1]}\n"), Error(CM, "address-pools[0].addresses[0]", "single IP")),
        ("legacy avoid-buggy-ips type", legacy("address-pools:\n- {name: a, protocol: bgp, addresses: [198.51.100.0/24], avoid-buggy-ips: often}\n"), Error("ConfigMap \"config\"", "data.config.address-pools[0].avoid-buggy-ips", "invalid type")),
        ("legacy unknown key is strict", legacy("address-pools:\n- {name: a, protocol: bgp, addresses: [198.51.100.0/24], autoassign: false}\n"), Error("ConfigMap \"config\"", "data.config.address-pools.0.autoassign", "unknown field")),
        ("legacy aggregation", legacy("address-pools:\n- name: a\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n  bgp-advertisements: [{aggregation-length: 16}]\n"), Error(CM, "address-pools[0].bgp-advertisements[0].aggregation-length", "more specific")),
        ("legacy localpref conflict", legacy("peers: [{my-asn: 64512, peer-asn: 64512, peer-address: 192.0.2.1}]\naddress-pools:\n- name: a\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n  bgp-advertisements: [{localpref: 100}, {localpref: 200}]\n"), Error(CM, "address-pools[0].bgp-advertisements[1].localpref", "invalid local preference")),
        ("legacy peer missing my-asn", legacy("peers: [{peer-asn: 64512, peer-address: 192.0.2.1}]\n"), Error(CM, "peers[0].my-asn", "missing local ASN")),
        ("legacy peer missing peer-asn", legacy("peers: [{my-asn: 64513, peer-address: 192.0.2.1}]\n"), Error(CM, "peers[0].peer-asn", "must not be 0")),
        ("legacy peer missing address", legacy("peers: [{my-asn: 64513, peer-asn: 64512}]\n"), Error(CM, "peers[0].peer-address", "missing peerAddress")),
        ("legacy hold time syntax", legacy("peers: [{my-asn: 64513, peer-asn: 64512, peer-address: 192.0.2.1, hold-time: 90 seconds}]\n"), Error(CM, "peers[0].hold-time", "invalid duration")),
        ("legacy hold time rule", legacy("peers: [{my-asn: 64513, peer-asn: 64512, peer-address: 192.0.2.1, hold-time: 1s}]\n"), Error(CM, "peers[0].hold-time", "must be 0 or >=3s")),
        ("legacy multihop on ibgp", legacy("peers: [{my-asn: 64512, peer-asn: 64512, peer-address: 192.0.2.1, ebgp-multihop: true}]\n"), Error(CM, "peers[0].ebgp-multihop", "ibgp peer")),
        ("legacy community alias", legacy("bgp-communities: {no-export: '65535:65281'}\npeers: [{my-asn: 64513, peer-asn: 64512, peer-address: 192.0.2.1}]\naddress-pools:\n- name: a\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n  bgp-advertisements: [{communities: [no-export]}]\n"), Valid),
        ("legacy bad community alias value", legacy("bgp-communities: {no-export: '65535'}\n"), Error(CM, "bgp-communities.communities[0].value", "invalid community format")),
        ("legacy bfd range", legacy("bfd-profiles: [{name: b, detect-multiplier: 1}]\n"), Error(CM, "bfd-profiles[0].detect-multiplier", "out of range")),
        ("legacy malformed inner yaml", legacy("address-pools: [\n"), Error("ConfigMap \"config\"", "data.config", "malformed YAML")),
        ("legacy and crs: crs win", with(&[lan(), legacy("address-pools:\n- {name: b, protocol: bgp, addresses: [192.0.2.128/25]}\n")]), Warning(CM, "", "the resources win")),
        // The metallb-excludel2 ConfigMap
        ("excludel2 patterns", with(&[lan(), excludel2("announcedInterfacesToExclude: ['^docker.*', '^eth2$']\n")]), Valid),
        ("excludel2 bad pattern", excludel2("announcedInterfacesToExclude: ['^lo$', '^eth(']\n"), Error(EX, "data[excludel2.yaml].announcedInterfacesToExclude[1]", "invalid regular expression \"^eth(\"")),
        ("excludel2 unknown key", excludel2("announcedInterfaces: ['^lo$']\n"), Error(EX, "data[excludel2.yaml].announcedInterfaces", "unknown field")),
        ("excludel2 malformed yaml", excludel2("announcedInterfacesToExclude: [\n"), Error(EX, "data[excludel2.yaml]", "malformed YAML")),
        ("excludel2 missing key", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: metallb-excludel2}\ndata: {}\n".to_string(), Error(EX, "data[excludel2.yaml]", "no data key excludel2.yaml")),
        ("other configmaps are ignored", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bgpextras}\ndata: {}\n".to_string(), Warning("ConfigMap \"bgpextras\"", "metadata.name", "ConfigMap ignored")),
        ("legacy missing data key", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata: {}\n".to_string(), Error("ConfigMap \"config\"", "data.config", "no data.config key")),
    ]
}

#[test]
fn the_excludel2_patterns_replace_the_built_in_list() {
    let given = common::validate(&excludel2("announcedInterfacesToExclude: ['^eth2$']\n"));
    assert_eq!(
        given.config.unwrap().interface_exclusions,
        Some(vec!["^eth2$".to_string()])
    );
    let absent = common::validate(&lan());
    assert_eq!(absent.config.unwrap().interface_exclusions, None);
    let with_legacy = common::validate(&with(&[
        legacy("address-pools:\n- {name: b, protocol: layer2, addresses: [192.0.2.128/25]}\n"),
        excludel2("announcedInterfacesToExclude: ['^eth2$']\n"),
    ]));
    assert!(with_legacy.config.unwrap().interface_exclusions.is_some());
}

#[test]
fn every_rule_reports_its_specific_problem() {
    let cases = cases();
    assert!(
        cases.len() >= 80,
        "the table must cover at least 80 cases, has {}",
        cases.len()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, yaml, expect)| check(name, yaml, expect).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
