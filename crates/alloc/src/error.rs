//! Why an allocation failed, worded as MetalLB words it so existing alerts still match.

use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("no available IPs")]
    NoAvailableIps,
    #[error("unknown pool {0:?}")]
    UnknownPool(String),
    #[error("pool {0} not compatible for ip assignment")]
    PoolNotAllowed(String),
    #[error("{0:?} is not allowed in config")]
    NotInAnyPool(IpAddr),
    #[error("requested IPs {0:?} are not in the same pool")]
    DifferentPools(Vec<IpAddr>),
    #[error("{ip:?} is not compatible with requested address pool {pool}")]
    NotInRequestedPool { ip: IpAddr, pool: String },
    #[error("requested loadBalancer IP(s) {0:?} does not match the ipFamily of the service")]
    FamilyMismatch(Vec<IpAddr>),
    #[error("existing service does not allow sharing")]
    ExistingDoesNotShare,
    #[error("new service does not allow sharing")]
    NewDoesNotShare,
    #[error("sharing key {new:?} does not match existing sharing key {existing:?}")]
    SharingKeyMismatch { new: String, existing: String },
    #[error(
        "backend key {new:?} does not match existing backend key {existing:?}: Services sharing an IP under externalTrafficPolicy Local must select the same pods"
    )]
    BackendKeyMismatch { new: String, existing: String },
    #[error("port {port} is already in use on {ip:?}")]
    PortInUse { port: String, ip: IpAddr },
}
