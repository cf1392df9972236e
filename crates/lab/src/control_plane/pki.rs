//! The certificates a control plane needs, made in the test process: a CA, the API server's
//! serving certificate, an admin client certificate (`system:masters`) and the key that
//! signs ServiceAccount tokens. All keys are ECDSA P-256.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Where the PEM files are, as the API server's flags and kubeconfigs name them.
#[derive(Clone, Debug)]
pub struct Pki {
    pub ca: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    /// Signs ServiceAccount tokens, and the public key that checks them.
    pub service_account_key: PathBuf,
    pub service_account_pub: PathBuf,
}

impl Pki {
    /// Writes every file into `dir`. The serving certificate holds `localhost`, the
    /// loopback addresses and `addresses` (where lab namespaces reach the server).
    pub fn create(dir: &Path, addresses: &[IpAddr]) -> Pki {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ironlb-test-ca");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("a CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let mut serving = leaf("kube-apiserver", None, ExtendedKeyUsagePurpose::ServerAuth);
        serving.subject_alt_names = ["localhost", "kubernetes", "kubernetes.default.svc"]
            .into_iter()
            .map(|name| SanType::DnsName(name.try_into().expect("a DNS name")))
            .chain(
                [
                    IpAddr::from([127, 0, 0, 1]),
                    IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
                ]
                .into_iter()
                .chain(addresses.iter().copied())
                .map(SanType::IpAddress),
            )
            .collect();
        let admin = leaf(
            "ironlb-test-admin",
            Some("system:masters"),
            ExtendedKeyUsagePurpose::ClientAuth,
        );

        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            path
        };
        let sign = |params: &CertificateParams| {
            let key = KeyPair::generate().expect("a key");
            let cert = params
                .signed_by(&key, &issuer)
                .expect("a signed certificate");
            (cert.pem(), key.serialize_pem())
        };
        let (serving_cert, serving_key) = sign(&serving);
        let (admin_cert, admin_key) = sign(&admin);
        let tokens = KeyPair::generate().expect("a token signing key");
        Pki {
            ca: write("ca.crt", ca_cert.pem()),
            serving_cert: write("apiserver.crt", serving_cert),
            serving_key: write("apiserver.key", serving_key),
            admin_cert: write("admin.crt", admin_cert),
            admin_key: write("admin.key", admin_key),
            service_account_key: write("service-account.key", tokens.serialize_pem()),
            service_account_pub: write("service-account.pub", tokens.public_key_pem()),
        }
    }
}

fn leaf(
    common_name: &str,
    organization: Option<&str>,
    usage: ExtendedKeyUsagePurpose,
) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params
}
