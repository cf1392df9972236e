//! The API server's audit log, read back, and least privilege measured with it: which
//! (group, resource, verb) a user asked for, which were refused, and which granted rules
//! nobody used.

use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

/// Every request, with its body (`Request` level): a test can see what was written, not
/// only that something was.
pub const POLICY: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Request\n";

/// One request as the audit log tells it.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub user: String,
    pub verb: String,
    /// `None` for requests that are not about a resource (`/readyz`, discovery).
    pub access: Option<Access>,
    pub uri: String,
    pub code: u16,
    pub forbidden: bool,
    pub body: Value,
}

/// What a request touched, in RBAC's terms.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// "" for the core group.
    pub group: String,
    /// `services` or `services/status`.
    pub resource: String,
    pub verb: String,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {}.{}", self.verb, self.resource, group)
    }
}

/// Every event in the log at `path`, once each (a watch is logged when its response starts
/// and again when it ends; the first is kept).
pub fn read(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut seen = BTreeSet::new();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|v| event(&v))
        .filter(|e| seen.insert(e.id.clone()))
        .collect()
}

fn event(v: &Value) -> Option<Event> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let verb = text(&v["verb"]);
    let object = &v["objectRef"];
    let access = object["resource"].as_str().map(|resource| Access {
        group: text(&object["apiGroup"]),
        resource: match object["subresource"].as_str() {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        },
        verb: verb.clone(),
    });
    let code = v["responseStatus"]["code"].as_u64().unwrap_or_default() as u16;
    Some(Event {
        id: v["auditID"].as_str()?.to_string(),
        user: text(&v["user"]["username"]),
        verb,
        access,
        uri: text(&v["requestURI"]),
        code,
        forbidden: code == 403
            || v["annotations"]["authorization.k8s.io/decision"].as_str() == Some("forbid"),
        body: v["requestObject"].clone(),
    })
}

/// The user name a ServiceAccount's token authenticates as.
pub fn service_account(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// What the rules of a set of (Cluster)Roles grant, expanded to single accesses.
pub fn granted(roles: &[Value]) -> BTreeSet<Access> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut all = BTreeSet::new();
    for rule in roles
        .iter()
        .flat_map(|r| r["rules"].as_array().cloned().unwrap_or_default())
    {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    all.insert(Access {
                        group: group.clone(),
                        resource: resource.clone(),
                        verb,
                    });
                }
            }
        }
    }
    all
}

/// How a user's requests compare with what it was granted.
#[derive(Debug, Default)]
pub struct Privilege {
    /// Requests the API server refused, with their URIs.
    pub refused: Vec<String>,
    /// Every access the user made.
    pub used: BTreeSet<Access>,
    /// Granted accesses never used: candidates for removal.
    pub unused: BTreeSet<Access>,
}

pub fn privilege(events: &[Event], user: &str, granted: &BTreeSet<Access>) -> Privilege {
    let mine: Vec<&Event> = events.iter().filter(|e| e.user == user).collect();
    let used: BTreeSet<Access> = mine.iter().filter_map(|e| e.access.clone()).collect();
    Privilege {
        refused: mine
            .iter()
            .filter(|e| e.forbidden)
            .map(|e| format!("{} {}", e.verb, e.uri))
            .collect(),
        unused: granted.difference(&used).cloned().collect(),
        used,
    }
}
