//! Which Service a plan speaks of, as the parts the API needs, so nothing joins a
//! `namespace/name` string only to split it again.

use std::fmt;

/// A Service by namespace and name. A standalone service has no namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ServiceKey {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// A standalone host's service, named in its file.
    pub fn standalone(name: impl Into<String>) -> ServiceKey {
        ServiceKey::new(String::new(), name)
    }
}

/// `namespace/name` as kubectl and MetalLB's logs write it; the bare name without a
/// namespace.
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_as_kubectl_writes_it() {
        assert_eq!(ServiceKey::new("default", "web").to_string(), "default/web");
        assert_eq!(ServiceKey::standalone("dns").to_string(), "dns");
    }
}
