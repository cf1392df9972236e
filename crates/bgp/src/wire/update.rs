//! UPDATE: withdrawn IPv4 routes, path attributes, IPv4 NLRI (IPv6 travels in MP_REACH /
//! MP_UNREACH), and End-of-RIB markers (RFC 4724).

use super::attributes::{self, Attributes, MpUnreach};
use super::{AFI_IPV4, Codec, DecodeError, Reader, SAFI_UNICAST};
use ipnet::IpNet;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn IPv4 routes.
    pub withdrawn: Vec<IpNet>,
    pub attributes: Attributes,
    /// Announced IPv4 routes.
    pub nlri: Vec<IpNet>,
    /// Set on received UPDATEs whose attributes were malformed: their routes were moved to
    /// the withdrawn lists (RFC 7606), and this says why.
    pub treat_as_withdraw: Option<String>,
}

impl Update {
    /// The End-of-RIB marker for an address family.
    pub fn end_of_rib(afi: u16) -> Update {
        match afi {
            AFI_IPV4 => Update::default(),
            _ => Update {
                attributes: Attributes {
                    mp_unreach: Some(MpUnreach {
                        afi,
                        safi: SAFI_UNICAST,
                        withdrawn: Vec::new(),
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        }
    }

    /// The address family this UPDATE ends the initial table of, if it is End-of-RIB.
    pub fn end_of_rib_afi(&self) -> Option<u16> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        if self.attributes.is_empty() {
            return Some(AFI_IPV4);
        }
        let only_unreach = Attributes {
            mp_unreach: None,
            ..self.attributes.clone()
        }
        .is_empty();
        match &self.attributes.mp_unreach {
            Some(mp) if only_unreach && mp.withdrawn.is_empty() => Some(mp.afi),
            _ => None,
        }
    }

    /// Every prefix this UPDATE announces, both families.
    pub fn announced(&self) -> impl Iterator<Item = &IpNet> {
        self.nlri
            .iter()
            .chain(self.attributes.mp_reach.iter().flat_map(|m| &m.nlri))
    }

    /// Every prefix this UPDATE withdraws, both families.
    pub fn withdrawn_all(&self) -> impl Iterator<Item = &IpNet> {
        self.withdrawn
            .iter()
            .chain(self.attributes.mp_unreach.iter().flat_map(|m| &m.withdrawn))
    }
}

pub(super) fn decode(body: &[u8], codec: &Codec) -> Result<Update, DecodeError> {
    let malformed = |why: &str| DecodeError::new(3, 1, Vec::new(), why.to_string());
    let mut r = Reader::new(body);
    let withdrawn_len = usize::from(r.u16().ok_or_else(|| malformed("short UPDATE"))?);
    let withdrawn = r
        .take(withdrawn_len)
        .ok_or_else(|| malformed("withdrawn routes overrun the message"))?;
    let attrs_len = usize::from(r.u16().ok_or_else(|| malformed("short UPDATE"))?);
    let attrs = r
        .take(attrs_len)
        .ok_or_else(|| malformed("path attributes overrun the message"))?;
    let withdrawn = attributes::prefixes(withdrawn, AFI_IPV4)
        .ok_or_else(|| malformed("invalid withdrawn route"))?;
    let nlri = attributes::prefixes(r.rest(), AFI_IPV4)
        .ok_or_else(|| DecodeError::new(3, 10, Vec::new(), "invalid NLRI prefix"))?;
    let parsed = attributes::decode(attrs, codec)?;
    let mut update = Update {
        withdrawn,
        attributes: parsed.attributes,
        nlri,
        treat_as_withdraw: parsed.treat_as_withdraw,
    };
    let a = &update.attributes;
    if update.treat_as_withdraw.is_none() {
        let v4_missing = !update.nlri.is_empty()
            && (a.origin.is_none() || a.as_path.is_none() || a.next_hop.is_none());
        let mp_missing = a.mp_reach.as_ref().is_some_and(|m| !m.nlri.is_empty())
            && (a.origin.is_none() || a.as_path.is_none());
        if v4_missing || mp_missing {
            update.treat_as_withdraw =
                Some("a well-known mandatory attribute is missing".to_string());
        }
    }
    if update.treat_as_withdraw.is_some() {
        withdraw_everything(&mut update);
    }
    Ok(update)
}

/// RFC 7606 treat-as-withdraw: every route the UPDATE announced is withdrawn instead.
fn withdraw_everything(u: &mut Update) {
    let nlri = std::mem::take(&mut u.nlri);
    u.withdrawn.extend(nlri);
    let reach = u.attributes.mp_reach.take();
    let mut unreach = u.attributes.mp_unreach.take();
    if let Some(reach) = reach {
        let target = unreach.get_or_insert(MpUnreach {
            afi: reach.afi,
            safi: reach.safi,
            withdrawn: Vec::new(),
        });
        if target.afi == reach.afi {
            target.withdrawn.extend(reach.nlri);
        }
    }
    u.attributes = Attributes {
        mp_unreach: unreach,
        ..Default::default()
    };
}

pub(super) fn encode(u: &Update, codec: &Codec, out: &mut Vec<u8>) {
    let mut withdrawn = Vec::new();
    for net in &u.withdrawn {
        attributes::write_prefix(net, &mut withdrawn);
    }
    out.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    out.extend_from_slice(&withdrawn);
    let mut attrs = Vec::new();
    attributes::encode(&u.attributes, codec, &mut attrs);
    out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    out.extend_from_slice(&attrs);
    for net in &u.nlri {
        attributes::write_prefix(net, out);
    }
}
