//! Multi-document YAML (files, `kubectl get -o yaml` output, the legacy ConfigMap) into
//! `Resources`. Every problem names the document, the object and the field.

use crate::problem::{ObjectRef, Problem, Report, Severity};
use crate::resources::{Labels, Object, Origin, Resources, Secret};
use api::legacy::{CONFIGMAP_KEY, CONFIGMAP_NAME, LegacyConfig};
use serde::de::DeserializeOwned;
use serde_json::Value;

const EXCLUDE_L2_NAME: &str = "metallb-excludel2";
const EXCLUDE_L2_KEY: &str = "excludel2.yaml";

/// Files larger than this are refused before parsing. The API server stores at most 1.5 MiB
/// per object, so a real configuration is far smaller.
pub const MAX_FILE_BYTES: usize = 16 << 20;

/// Options for reading documents.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// The namespace MetalLB (and ironlb) reads configuration from.
    pub namespace: String,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            namespace: api::legacy::CONFIGMAP_NAMESPACE.to_string(),
        }
    }
}

/// Reads every document of `text` into `out`, reporting problems into `problems`.
/// `source` names the input (a file path) in every problem.
pub fn read(
    text: &str,
    source: &str,
    options: &ReadOptions,
    out: &mut Resources,
    problems: &mut Vec<Problem>,
) {
    let mut file = Report::new(ObjectRef::new("File", source), None, problems);
    if text.len() > MAX_FILE_BYTES {
        file.error(
            "",
            format!(
                "the file is {:.1} MiB; ironlb reads configuration files of at most {} MiB",
                text.len() as f64 / (1 << 20) as f64,
                MAX_FILE_BYTES >> 20
            ),
            "split the file, or pass only the configuration resources",
        );
        return;
    }
    let documents = match parse_yaml(text) {
        Ok(documents) => documents,
        Err((message, fix)) => {
            file.error("", message, fix);
            return;
        }
    };
    let mut reader = Reader {
        source,
        options,
        out,
        problems,
    };
    for (index, document) in documents.into_iter().enumerate() {
        reader.document(index, document);
    }
}

/// Documents in one file: far above any real configuration, and still a bound on a storm of
/// separators. The parser's own default, 1,024, is below a large standalone file.
const MAX_DOCUMENTS: usize = 100_000;

/// The file's documents, or what is wrong with it and the fix.
fn parse_yaml(text: &str) -> Result<Vec<Value>, (String, &'static str)> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = MAX_DOCUMENTS;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    serde_saphyr::from_multiple_with_options::<Value>(text, options).map_err(|e| {
        if let serde_saphyr::Error::Budget { breach, .. } = e.without_snippet() {
            return (
                format!("the YAML goes beyond what ironlb reads in one file: {breach:?}"),
                "split the file into smaller ones",
            );
        }
        let message = match e.location() {
            Some(at) => format!(
                "malformed YAML at line {} column {}: {}",
                at.line(),
                at.column(),
                first_line(&e.to_string())
            ),
            None => format!("malformed YAML: {}", first_line(&e.to_string())),
        };
        (message, "correct the YAML syntax at that line")
    })
}

fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or(s);
    // The parser prefixes "error: line L column C: "; the location is already said.
    line.split_once(": ")
        .filter(|(head, _)| head.starts_with("error"))
        .map_or(line, |(_, rest)| {
            rest.split_once(": ")
                .filter(|(h, _)| h.starts_with("line "))
                .map_or(rest, |(_, r)| r)
        })
}

struct Reader<'a> {
    source: &'a str,
    options: &'a ReadOptions,
    out: &'a mut Resources,
    problems: &'a mut Vec<Problem>,
}

/// What a document says about itself.
struct Header {
    api_version: String,
    kind: String,
    name: String,
    namespace: Option<String>,
    labels: Labels,
}

impl Reader<'_> {
    fn report(&mut self, object: ObjectRef) -> Report<'_> {
        Report::new(object, Some(self.source.to_string()), self.problems)
    }

    fn document(&mut self, index: usize, document: Value) {
        let placeholder = ObjectRef::new(format!("document {}", index + 1), "");
        let Value::Object(_) = &document else {
            if !document.is_null() {
                self.report(placeholder).error(
                    "",
                    "a document must be a mapping with apiVersion, kind and metadata",
                    "write the resource as a YAML mapping",
                );
            }
            return;
        };
        let header = match header(&document) {
            Ok(header) => header,
            Err((field, message)) => {
                self.report(placeholder).error(
                    field,
                    message,
                    "every resource needs apiVersion, kind and metadata.name",
                );
                return;
            }
        };
        if header.kind == "List" && header.api_version == "v1" {
            let items = document.get("items").and_then(Value::as_array).cloned();
            for (i, item) in items.into_iter().flatten().enumerate() {
                self.document(i, item);
            }
            return;
        }
        let object = ObjectRef::new(&header.kind, &header.name);
        if header.name.is_empty() {
            self.report(object)
                .error("metadata.name", "missing name", "set metadata.name");
            return;
        }
        self.dispatch(header, document);
    }

    fn dispatch(&mut self, h: Header, document: Value) {
        let (group, version) = h
            .api_version
            .split_once('/')
            .unwrap_or(("", &h.api_version));
        let in_our_namespace = h
            .namespace
            .as_deref()
            .is_none_or(|ns| ns == self.options.namespace);
        match (group, version, h.kind.as_str()) {
            ("", "v1", "Node") => {
                self.out.nodes.insert(h.name, h.labels);
            }
            ("", "v1", "Namespace") => {
                self.out.namespaces.insert(h.name, h.labels);
            }
            _ if !in_our_namespace => self.elsewhere(&h, group == api::GROUP),
            ("", "v1", "Secret") => self.secret(h, document),
            ("", "v1", "ConfigMap") => self.configmap(h, document),
            (api::GROUP, "v1beta1", "IPAddressPool") => self.typed(&h, &document, |r| &mut r.pools),
            (api::GROUP, "v1beta1", "L2Advertisement") => {
                self.typed(&h, &document, |r| &mut r.l2_advertisements)
            }
            (api::GROUP, "v1beta1", "BGPAdvertisement") => {
                self.typed(&h, &document, |r| &mut r.bgp_advertisements)
            }
            (api::GROUP, "v1beta1", "BFDProfile") => {
                self.typed(&h, &document, |r| &mut r.bfd_profiles)
            }
            (api::GROUP, "v1beta1", "Community") => {
                self.typed(&h, &document, |r| &mut r.communities)
            }
            (api::GROUP, "v1beta2", "BGPPeer") => self.typed(&h, &document, |r| &mut r.peers),
            (api::standalone::GROUP, api::standalone::VERSION, api::standalone::KIND) => {
                self.typed(&h, &document, |r| &mut r.services)
            }
            (api::GROUP, "v1beta1", "BGPPeer") => self.v1beta1_peer(&h, &document),
            gvk => self.not_configuration(&h, gvk),
        }
    }

    /// An object outside the configured namespace. MetalLB's webhooks refuse its own kinds
    /// elsewhere; anything else is only not configuration.
    fn elsewhere(&mut self, h: &Header, metallb_kind: bool) {
        let ns = h.namespace.clone().unwrap_or_default();
        let want = self.options.namespace.clone();
        let fix = format!("move it to namespace {want:?}, or pass --namespace {ns}");
        let mut report = self.report(ObjectRef::new(&h.kind, &h.name));
        if metallb_kind {
            report.error(
                "metadata.namespace",
                format!(
                    "it is in namespace {ns:?}, but MetalLB configuration lives only in {want:?}"
                ),
                &fix,
            );
        } else {
            report.warning(
                "metadata.namespace",
                format!("ignored: it is in namespace {ns:?}, and configuration is read only from {want:?}"),
                &fix,
            );
        }
    }

    /// A BGPPeer in the deprecated v1beta1, read as v1beta2 with a warning.
    fn v1beta1_peer(&mut self, h: &Header, document: &Value) {
        let Some(old) = self.spec::<api::v1beta1::BGPPeerSpec>(h, document) else {
            return;
        };
        let object = ObjectRef::new(&h.kind, &h.name);
        self.report(object.clone()).warning(
            "apiVersion",
            "metallb.io/v1beta1 BGPPeer is deprecated; it was converted to v1beta2",
            "change apiVersion to metallb.io/v1beta2",
        );
        let o = Object {
            spec: old.spec.into(),
            name: old.name,
            labels: old.labels,
            source: old.source,
            origin: old.origin,
        };
        push_unique(&mut self.out.peers, o, object, self.problems);
    }

    /// Anything that is not configuration: status kinds, removed kinds, unserved versions,
    /// and other APIs' objects.
    fn not_configuration(&mut self, h: &Header, (group, version, kind): (&str, &str, &str)) {
        let mut report = self.report(ObjectRef::new(&h.kind, &h.name));
        match (group, version, kind) {
            (
                api::GROUP,
                "v1beta1",
                "ServiceL2Status" | "ServiceBGPStatus" | "ConfigurationState",
            ) => {
                report.warning(
                    "kind",
                    "status resources are written by the speakers and controller, not read as configuration; ignored",
                    "leave it out of the configuration",
                );
            }
            (api::GROUP, _, "AddressPool") => report.error(
                "kind",
                "the AddressPool CRD was removed in MetalLB 0.14 and is not supported",
                "rewrite it as an IPAddressPool plus an L2Advertisement or BGPAdvertisement",
            ),
            (api::GROUP, _, kind) if served_version(kind).is_some() => {
                let want = served_version(kind).unwrap_or_default();
                report.error(
                    "apiVersion",
                    format!("{} is not a served version of {kind}", h.api_version),
                    &format!("use apiVersion: {want}"),
                );
            }
            _ => report.error(
                "kind",
                format!(
                    "unknown kind {:?} with apiVersion {:?}",
                    h.kind, h.api_version
                ),
                "ironlb reads metallb.io resources, the legacy ConfigMap, Secrets, Nodes and Namespaces; remove other objects",
            ),
        }
    }

    /// Reads a typed object into the list `field` picks, refusing a second object of the same name.
    fn typed<T: DeserializeOwned + Default>(
        &mut self,
        h: &Header,
        document: &Value,
        field: fn(&mut Resources) -> &mut Vec<Object<T>>,
    ) {
        if let Some(o) = self.spec(h, document) {
            let object = ObjectRef::new(&h.kind, &h.name);
            push_unique(field(self.out), o, object, self.problems);
        }
    }

    /// Deserialises `spec` strictly: a wrong type names its path, an unknown field is an error.
    fn spec<T: DeserializeOwned + Default>(
        &mut self,
        h: &Header,
        document: &Value,
    ) -> Option<Object<T>> {
        let spec = document.get("spec").cloned().unwrap_or(Value::Null);
        let spec = if spec.is_null() {
            Value::Object(Default::default())
        } else {
            spec
        };
        let object = ObjectRef::new(&h.kind, &h.name);
        let spec = strict::<T>(spec, &mut self.report(object), "spec")?;
        Some(Object {
            name: h.name.clone(),
            labels: h.labels.clone(),
            spec,
            source: Some(self.source.to_string()),
            origin: Origin::Resource,
        })
    }

    fn secret(&mut self, h: Header, document: Value) {
        let mut report = Report::new(
            ObjectRef::new("Secret", &h.name),
            Some(self.source.to_string()),
            self.problems,
        );
        let Some(secret) = strict::<k8s_openapi::api::core::v1::Secret>(document, &mut report, "")
        else {
            return;
        };
        let mut data: std::collections::BTreeMap<String, String> = Default::default();
        for (k, v) in secret.data.unwrap_or_default() {
            data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
        }
        data.extend(secret.string_data.unwrap_or_default());
        let type_ = secret.type_.unwrap_or_else(|| "Opaque".to_string());
        self.out.secrets.insert(h.name, Secret { type_, data });
    }

    fn configmap(&mut self, h: Header, document: Value) {
        let object = ObjectRef::new("ConfigMap", &h.name);
        if h.name == EXCLUDE_L2_NAME {
            return self.exclude_l2(object, &document);
        }
        if h.name != CONFIGMAP_NAME {
            let fix = match h.name.as_str() {
                "bgpextras" => {
                    "raw FRR configuration is not supported by ironlb's native speaker; remove it"
                }
                _ => {
                    "only the ConfigMaps named \"config\" and \"metallb-excludel2\" are read; leave others out"
                }
            };
            self.report(object)
                .warning("metadata.name", "ConfigMap ignored", fix);
            return;
        }
        let text = document
            .get("data")
            .and_then(|d| d.get(CONFIGMAP_KEY))
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(text) = text else {
            self.report(object).error(
                "data.config",
                "the legacy ConfigMap has no data.config key",
                "put the MetalLB configuration YAML under data.config",
            );
            return;
        };
        let Some(legacy) = legacy_data(&text, &h.name, self.source, self.problems) else {
            return;
        };
        let mut report = Report::new(object, Some(self.source.to_string()), self.problems);
        if self.out.legacy.is_some() {
            report.error("", "the legacy ConfigMap is given twice", "pass it once");
            return;
        }
        self.out.legacy = Some(Object {
            labels: h.labels,
            ..legacy
        });
    }

    fn exclude_l2(&mut self, object: ObjectRef, document: &Value) {
        let field = format!("data[{EXCLUDE_L2_KEY}]");
        let mut report = Report::new(object, Some(self.source.to_string()), self.problems);
        let Some(text) = document
            .get("data")
            .and_then(|d| d.get(EXCLUDE_L2_KEY))
            .and_then(Value::as_str)
        else {
            report.error(
                &field,
                format!("the ConfigMap has no data key {EXCLUDE_L2_KEY}"),
                "put `announcedInterfacesToExclude: [patterns]` under that key",
            );
            return;
        };
        let Some(value) = embedded_yaml(text, &field, &mut report) else {
            return;
        };
        let Some(spec) = strict::<ExcludeL2>(value, &mut report, &field) else {
            return;
        };
        let mut valid = true;
        for (i, pattern) in spec.announced_interfaces_to_exclude.iter().enumerate() {
            if let Err(e) = regex::Regex::new(pattern) {
                valid = false;
                report.error(
                    &format!("{field}.announcedInterfacesToExclude[{i}]"),
                    format!("invalid regular expression {pattern:?}: {}", first_line(&e.to_string())),
                    "correct the pattern; it is matched against interface names, e.g. ^eth1$ or ^cni.*",
                );
            }
        }
        if self.out.interface_exclusions.is_some() {
            report.error(
                "",
                "the metallb-excludel2 ConfigMap is given twice",
                "pass it once",
            );
        } else if valid {
            self.out.interface_exclusions = Some(spec.announced_interfaces_to_exclude);
        }
    }
}

/// Parses the legacy configuration YAML (the value of the ConfigMap's `data.config`, or a
/// file holding only that) strictly, as MetalLB v0.12 did.
pub fn legacy_data(
    text: &str,
    configmap: &str,
    source: &str,
    problems: &mut Vec<Problem>,
) -> Option<Object<LegacyConfig>> {
    let mut report = Report::new(
        ObjectRef::new("ConfigMap", configmap),
        Some(source.to_string()),
        problems,
    );
    let value = embedded_yaml(text, "data.config", &mut report)?;
    let spec = strict::<LegacyConfig>(value, &mut report, "data.config")?;
    Some(Object {
        name: configmap.to_string(),
        labels: Labels::new(),
        spec,
        source: Some(source.to_string()),
        origin: Origin::Legacy(String::new()),
    })
}

/// Parses YAML held in a ConfigMap value (at `field`); an empty value is an empty mapping.
fn embedded_yaml(text: &str, field: &str, report: &mut Report<'_>) -> Option<Value> {
    match serde_saphyr::from_str::<Value>(text) {
        Ok(Value::Null) => Some(Value::Object(Default::default())),
        Ok(value) => Some(value),
        Err(e) => {
            let at = e
                .location()
                .map(|l| format!(" at line {} column {} of {field}", l.line(), l.column()))
                .unwrap_or_default();
            report.error(
                field,
                format!("malformed YAML{at}: {}", first_line(&e.to_string())),
                "correct the YAML syntax at that line",
            );
            None
        }
    }
}

/// The `metallb-excludel2` ConfigMap: interface-name patterns never answered on in layer 2.
/// Given, the list replaces the built-in one, as the file MetalLB mounts does.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExcludeL2 {
    #[serde(default)]
    announced_interfaces_to_exclude: Vec<String>,
}

/// The apiVersion a metallb.io kind is served at, for "wrong version" errors.
fn served_version(kind: &str) -> Option<&'static str> {
    match kind {
        "IPAddressPool" | "L2Advertisement" | "BGPAdvertisement" | "BFDProfile" | "Community"
        | "ServiceL2Status" | "ServiceBGPStatus" | "ConfigurationState" => {
            Some("metallb.io/v1beta1")
        }
        "BGPPeer" => Some("metallb.io/v1beta2"),
        _ => None,
    }
}

fn header(doc: &Value) -> Result<Header, (&'static str, String)> {
    let text = |field: &'static str, v: Option<&Value>| -> Result<String, (&'static str, String)> {
        match v {
            None | Some(Value::Null) => Err((field, format!("missing {field}"))),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err((field, format!("{field} must be a string, found {other}"))),
        }
    };
    let api_version = text("apiVersion", doc.get("apiVersion"))?;
    let kind = text("kind", doc.get("kind"))?;
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let labels = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Header {
        api_version,
        kind,
        name,
        namespace,
        labels,
    })
}

/// Deserialises `value` as `T`, reporting the exact path of a type error and every field that
/// `T` does not know (MetalLB's legacy parser and `kubectl apply` are both strict).
pub(crate) fn strict<T: DeserializeOwned>(
    value: Value,
    report: &mut Report<'_>,
    at: &str,
) -> Option<T> {
    let join = |path: &str| match (at.is_empty(), path.is_empty() || path == ".") {
        (_, true) => at.to_string(),
        (true, false) => path.to_string(),
        (false, false) => format!("{at}.{path}"),
    };
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result = {
        let de = serde_path_to_error::Deserializer::new(value, &mut track);
        serde_ignored::deserialize(de, |path| unknown.push(path.to_string()))
    };
    match result {
        Ok(parsed) => {
            for path in &unknown {
                report.error(
                    &join(path),
                    "unknown field",
                    "remove it or correct its spelling (field names are case-sensitive)",
                );
            }
            unknown.is_empty().then_some(parsed)
        }
        Err(e) => {
            let path = track.path().to_string();
            report.error(
                &join(&path),
                e.to_string(),
                "correct the value's type or format",
            );
            None
        }
    }
}

fn push_unique<T>(
    list: &mut Vec<Object<T>>,
    object: Object<T>,
    id: ObjectRef,
    problems: &mut Vec<Problem>,
) {
    if list.iter().any(|o| o.name == object.name) {
        problems.push(Problem {
            severity: Severity::Error,
            object: id,
            field: "metadata.name".to_string(),
            message: "defined more than once".to_string(),
            fix: "give each object a unique name, or remove the copy".to_string(),
            transient: false,
            source: object.source.clone(),
        });
        return;
    }
    list.push(object);
}
