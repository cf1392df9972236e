//! The webhooks' CA and serving certificate: made here, and judged when read back from the
//! Secret (also one MetalLB's rotator or a person wrote).

use k8s_openapi::ByteString;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The CA outlives many serving certificates; the serving certificate is renewed yearly.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
const SERVING_LIFETIME: Duration = Duration::from_secs(365 * 86_400);
/// Renewal starts this long before either expires: a controller that is down for weeks
/// still comes back to a working certificate.
pub const RENEW_BEFORE: Duration = Duration::from_secs(90 * 86_400);

/// The Secret's keys, as MetalLB's rotator names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    pub ca_crt: String,
    pub ca_key: String,
    pub tls_crt: String,
    pub tls_key: String,
}

#[derive(Debug, thiserror::Error)]
#[error("making the webhook certificates: {0}")]
pub struct IssueError(#[from] rcgen::Error);

impl Keys {
    /// A new CA and a serving certificate it signs for `names` (DNS names or IP addresses).
    pub fn issue(names: &[String], now: SystemTime) -> Result<Keys, IssueError> {
        // Back-dated a little, for API servers whose clocks run behind.
        let from = time::OffsetDateTime::from(now - Duration::from_secs(300));
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name
            .push(DnType::CommonName, "ironlb webhook CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        (ca.not_before, ca.not_after) = (from, from + CA_LIFETIME);
        let ca_crt = ca.self_signed(&ca_key)?.pem();
        let ca_key_pem = ca_key.serialize_pem();
        let issuer = Issuer::new(ca, ca_key);

        let mut serving = CertificateParams::new(Vec::<String>::new())?;
        let first = names.first().map_or("ironlb-webhook", String::as_str);
        serving.distinguished_name.push(DnType::CommonName, first);
        serving.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
        serving.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        serving.use_authority_key_identifier_extension = true;
        (serving.not_before, serving.not_after) = (from, from + SERVING_LIFETIME);
        let key = KeyPair::generate()?;
        let tls_crt = serving.signed_by(&key, &issuer)?.pem();
        Ok(Keys {
            ca_crt,
            ca_key: ca_key_pem,
            tls_crt,
            tls_key: key.serialize_pem(),
        })
    }

    /// The keys a Secret holds, when it holds all four.
    pub fn from_secret(data: &BTreeMap<String, ByteString>) -> Option<Keys> {
        let text = |key: &str| {
            let bytes = &data.get(key)?.0;
            (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned())
        };
        Some(Keys {
            ca_crt: text("ca.crt")?,
            ca_key: text("ca.key")?,
            tls_crt: text("tls.crt")?,
            tls_key: text("tls.key")?,
        })
    }

    pub fn to_secret(&self) -> BTreeMap<String, ByteString> {
        [
            ("ca.crt", &self.ca_crt),
            ("ca.key", &self.ca_key),
            ("tls.crt", &self.tls_crt),
            ("tls.key", &self.tls_key),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect()
    }

    /// Why these keys must be replaced to serve `names` from `now`, if they must: unreadable,
    /// not for these names, not from this CA, or within `RENEW_BEFORE` of expiry.
    pub fn unusable(&self, names: &[String], now: SystemTime) -> Option<String> {
        let ca = der(&self.ca_crt).ok_or("ca.crt is not a PEM certificate");
        let tls = der(&self.tls_crt).ok_or("tls.crt is not a PEM certificate");
        let (ca, tls) = match (ca, tls) {
            (Ok(ca), Ok(tls)) => (ca, tls),
            (Err(why), _) | (_, Err(why)) => return Some(why.to_string()),
        };
        let (Some(ca), Some(tls)) = (parse(&ca), parse(&tls)) else {
            return Some("a certificate does not parse".into());
        };
        let key = KeyPair::from_pem(&self.tls_key).ok();
        let public = &tls.public_key().subject_public_key.data;
        if key.is_none_or(|k| k.public_key_raw() != public.as_ref()) {
            return Some("tls.key does not belong to tls.crt".into());
        }
        if tls.verify_signature(Some(ca.public_key())).is_err() {
            return Some("tls.crt is not signed by ca.crt".into());
        }
        let missing: Vec<&String> = names.iter().filter(|n| !covers(&tls, n)).collect();
        if !missing.is_empty() {
            return Some(format!("tls.crt is not valid for {missing:?}"));
        }
        let renew = time::OffsetDateTime::from(now + RENEW_BEFORE);
        for (what, cert) in [("ca.crt", &ca), ("tls.crt", &tls)] {
            let until = cert.validity().not_after.to_datetime();
            if until < renew {
                let days = (until - time::OffsetDateTime::from(now)).whole_days();
                return Some(format!("{what} expires in {days} days"));
            }
        }
        None
    }
}

fn san(name: &str) -> Result<SanType, rcgen::Error> {
    Ok(match name.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(name.try_into()?),
    })
}

fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(der).ok().map(|(_, c)| c)
}

fn der(pem: &str) -> Option<Vec<u8>> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    (block.label == "CERTIFICATE").then_some(block.contents)
}

fn covers(cert: &X509Certificate, name: &str) -> bool {
    let ip = name.parse::<IpAddr>().ok();
    let Ok(Some(sans)) = cert.subject_alternative_name() else {
        return false;
    };
    sans.value.general_names.iter().any(|g| match (g, ip) {
        (GeneralName::DNSName(dns), None) => dns.eq_ignore_ascii_case(name),
        (GeneralName::IPAddress(bytes), Some(IpAddr::V4(v4))) => *bytes == v4.octets(),
        (GeneralName::IPAddress(bytes), Some(IpAddr::V6(v6))) => *bytes == v6.octets(),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn names() -> Vec<String> {
        vec![
            "metallb-webhook-service.metallb-system.svc".into(),
            "127.0.0.1".into(),
        ]
    }

    #[test]
    fn issued_keys_serve_their_names_until_renewal_is_due() {
        let now = SystemTime::now();
        let keys = Keys::issue(&names(), now).unwrap();
        assert_eq!(keys.unusable(&names(), now), None);
        assert_eq!(Keys::from_secret(&keys.to_secret()), Some(keys.clone()));
        let later = now + SERVING_LIFETIME - RENEW_BEFORE + DAY;
        let why = keys.unusable(&names(), later).unwrap();
        assert!(why.contains("tls.crt expires in"), "{why}");
    }

    #[test]
    fn keys_for_other_names_another_ca_or_another_key_are_replaced() {
        let now = SystemTime::now();
        let keys = Keys::issue(&names(), now).unwrap();
        let other = Keys::issue(&names(), now).unwrap();
        let why = keys.unusable(&["elsewhere.svc".into()], now).unwrap();
        assert!(why.contains("elsewhere.svc"), "{why}");
        let foreign_ca = Keys {
            ca_crt: other.ca_crt.clone(),
            ..keys.clone()
        };
        assert!(
            foreign_ca
                .unusable(&names(), now)
                .unwrap()
                .contains("not signed")
        );
        let foreign_key = Keys {
            tls_key: other.tls_key,
            ..keys.clone()
        };
        assert!(
            foreign_key
                .unusable(&names(), now)
                .unwrap()
                .contains("tls.key")
        );
        let garbage = Keys {
            tls_crt: "nonsense".into(),
            ..keys
        };
        assert!(garbage.unusable(&names(), now).is_some());
        assert_eq!(Keys::from_secret(&BTreeMap::new()), None);
    }
}
