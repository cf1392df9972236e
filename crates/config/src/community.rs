//! BGP communities: standard `AA:NN` (RFC 1997) and large `large:G:L1:L2` (RFC 8092).

use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub enum Community {
    Standard(u16, u16),
    Large(u32, u32, u32),
}

impl From<Community> for String {
    fn from(c: Community) -> String {
        c.to_string()
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Standard(a, b) => write!(f, "{a}:{b}"),
            Community::Large(g, l1, l2) => write!(f, "large:{g}:{l1}:{l2}"),
        }
    }
}

/// Why a string is not a community. `NotACommunity` means it has the wrong number of parts,
/// so inside an advertisement it may be the name of an alias instead.
#[derive(Debug, PartialEq, Eq)]
pub enum CommunityError {
    NotACommunity,
    Invalid(String),
}

impl std::str::FromStr for Community {
    type Err = CommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [a, b] => Ok(Community::Standard(section(a, s)?, section(b, s)?)),
            [marker, g, l1, l2] => {
                if *marker != "large" {
                    return Err(CommunityError::Invalid(format!(
                        "{s:?}: expected community to be of format large:GLOBAL:LOCAL1:LOCAL2"
                    )));
                }
                Ok(Community::Large(
                    section(g, s)?,
                    section(l1, s)?,
                    section(l2, s)?,
                ))
            }
            _ => Err(CommunityError::NotACommunity),
        }
    }
}

fn section<T: std::str::FromStr>(part: &str, whole: &str) -> Result<T, CommunityError> {
    part.parse().map_err(|_| {
        CommunityError::Invalid(format!(
            "invalid community value {whole:?}: invalid section {part:?} (out of range or not a number)"
        ))
    })
}
