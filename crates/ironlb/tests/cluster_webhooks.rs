//! The controller's admission and conversion webhooks against a real API server: the
//! ValidatingWebhookConfiguration of `deploy/controller.yaml` and the BGPPeer CRD's
//! conversion, both pointed at the controller by URL (a lab has no Service routing), with
//! the certificates the controller makes itself and its own ServiceAccount's RBAC.
//!
//! One scenario, in order: the API server's calls reach the controller only once it has
//! written the CA bundle; bad objects are refused with ironlb's words at create, warnings
//! reach the client, a BFDProfile in use cannot be deleted, BGPPeers convert both ways field
//! by field, a deleted Secret is made again, and a stopped controller makes the API server
//! name the webhook it could not call.

use ironlb_lab::control_plane::{self, ControlPlane, Process, free_port};
use ironlb_lab::seed_cluster::{deploy_dir, manifests, rbac_of};
use ironlb_lab::wait_for;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const NS: &str = "metallb-system";

/// A request as kubectl makes it: the status, the Warning headers and the answer.
struct Answer {
    code: u16,
    warnings: Vec<String>,
    body: Value,
}

impl Answer {
    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

fn call(plane: &ControlPlane, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let (method, path) = (method.to_string(), path.to_string());
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    plane.with_client(move |client| async move {
        let request = http::Request::builder()
            .method(method.as_str())
            .uri(path)
            .header("content-type", "application/json")
            .body(kube::client::Body::from(bytes))
            .unwrap();
        let response = client.send(request).await.expect("the API server answers");
        let warnings = response
            .headers()
            .get_all("warning")
            .iter()
            .map(|w| w.to_str().unwrap_or_default().to_string())
            .collect();
        let code = response.status().as_u16();
        let bytes = response.into_body().collect_bytes().await.unwrap();
        Answer {
            code,
            warnings,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    })
}

fn create(plane: &ControlPlane, object: &Value) -> Answer {
    let (version, kind) = (
        object["apiVersion"].as_str().unwrap(),
        object["kind"].as_str().unwrap(),
    );
    let ns = object["metadata"]["namespace"].as_str().unwrap_or(NS);
    call(
        plane,
        "POST",
        &format!("/apis/{version}/namespaces/{ns}/{}", plural(kind)),
        Some(object),
    )
}

/// The plural of each kind this test creates.
fn plural(kind: &str) -> String {
    format!("{}s", kind.to_lowercase())
}

fn object(version: &str, kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": format!("metallb.io/{version}"), "kind": kind,
           "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

fn pool(name: &str, addresses: &[&str]) -> Value {
    object(
        "v1beta1",
        "IPAddressPool",
        name,
        json!({"addresses": addresses}),
    )
}

/// `deploy/`'s webhook configuration and BGPPeer CRD, calling `url` instead of the Service.
fn register(plane: &ControlPlane, url: &str) {
    let controller = std::fs::read_to_string(deploy_dir().join("controller.yaml")).unwrap();
    let mut config = control_plane::documents(&controller)
        .into_iter()
        .find(|d| d["kind"] == "ValidatingWebhookConfiguration")
        .expect("deploy/ registers the webhooks");
    for hook in config["webhooks"].as_array_mut().unwrap() {
        let path = hook["clientConfig"]["service"]["path"]
            .as_str()
            .unwrap()
            .to_string();
        hook["clientConfig"] = json!({"url": format!("{url}{path}")});
    }
    plane.apply(&config.to_string());
    let mut peers = control_plane::documents(&manifests(&deploy_dir().join("crds")))
        .into_iter()
        .find(|c| c["metadata"]["name"] == "bgppeers.metallb.io")
        .unwrap();
    peers["spec"]["conversion"]["webhook"]["clientConfig"] =
        json!({"url": format!("{url}/convert")});
    plane.apply(&peers.to_string());
}

fn controller(plane: &ControlPlane, port: u16) -> Process {
    let kubeconfig = plane.service_account_kubeconfig(NS, "ironlb-controller", None);
    let args = [
        "controller".to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--webhook-addr=127.0.0.1:{port}"),
        "--webhook-host=127.0.0.1".into(),
        format!("--metrics-addr=127.0.0.1:{}", free_port()),
        "--health-probe-port=0".into(),
    ];
    control_plane::spawn(
        Path::new(env!("CARGO_BIN_EXE_ironlb")),
        &args,
        &[
            ("METALLB_NAMESPACE", NS),
            ("METALLB_POD_NAME", "webhooks-0"),
            ("IRONLB_LOG_FORMAT", "text"),
        ],
        &plane.dir().join("webhooks.log"),
    )
}

fn bundle(plane: &ControlPlane) -> (String, String) {
    let config = plane
        .get("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/metallb-webhook-configuration")
        .unwrap_or_default();
    let crd = plane
        .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/bgppeers.metallb.io")
        .unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        text(&config["webhooks"][0]["clientConfig"]["caBundle"]),
        text(&crd["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"]),
    )
}

/// Until creating `object` is admitted: how long the webhooks took to answer.
fn until_admitted(plane: &ControlPlane, object: &Value) -> Duration {
    let began = Instant::now();
    wait_for(Duration::from_secs(20), || {
        (create(plane, object).code == 201).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "never admitted: {}\n{}",
            create(plane, object).message(),
            plane.log("webhooks")
        )
    });
    began.elapsed()
}

/// `ironlb doctor --webhooks` as an administrator runs it: whether it passed, and what it said.
fn doctor(plane: &ControlPlane) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ironlb"))
        .args(["doctor", "--webhooks", "--namespace", NS, "--kubeconfig"])
        .arg(plane.admin_kubeconfig())
        .output()
        .expect("running doctor");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_webhooks_refuse_warn_convert_and_keep_their_certificates() {
    if !control_plane::ready() {
        return;
    }
    let plane = ControlPlane::shared_with_crds();
    plane.namespace(NS);
    plane.namespace("elsewhere");
    plane.apply(&rbac_of("controller.yaml"));
    let port = free_port();
    register(plane, &format!("https://127.0.0.1:{port}"));
    let (passed, said) = doctor(plane);
    assert!(!passed, "no controller yet:\n{said}");
    assert!(said.contains("without a CA bundle"), "{said}");
    let mut process = controller(plane, port);
    let took = until_admitted(plane, &pool("lan", &["192.0.2.0/25"]));
    eprintln!("webhooks lab: admitted {took:?} after the controller started");
    let (config_ca, crd_ca) = bundle(plane);
    assert!(
        !config_ca.is_empty() && config_ca == crd_ca,
        "one CA bundle in both"
    );

    refusals(plane);
    warnings_reach_the_client(plane);
    profile_in_use(plane);
    conversion_both_ways(plane);
    the_controller_reports_an_unreachable_webhook(plane, port);
    deleted_secret_is_made_again(plane, &config_ca);

    process.kill();
    let answer = create(plane, &pool("after", &["203.0.113.0/28"]));
    assert_eq!(answer.code, 500, "{}", answer.body);
    assert!(
        answer
            .message()
            .contains("failed calling webhook \"ipaddresspoolvalidationwebhook.metallb.io\""),
        "{}",
        answer.message()
    );
}

fn refusals(plane: &ControlPlane) {
    let bad = create(plane, &pool("bad", &["192.0.2.0/33"]));
    assert_eq!(bad.code, 403, "{}", bad.body);
    let message = bad.message();
    assert!(
        message.contains("admission webhook \"ipaddresspoolvalidationwebhook.metallb.io\" denied the request: IPAddressPool \"bad\" spec.addresses[0]: "),
        "{message}"
    );
    assert!(message.contains("; fix: "), "{message}");
    let overlap = create(plane, &pool("overlap", &["192.0.2.64/26"]));
    assert_eq!(overlap.code, 403, "{}", overlap.body);
    assert!(
        overlap.message().contains("overlaps"),
        "{}",
        overlap.message()
    );
    let mut elsewhere = pool("elsewhere", &["198.51.100.0/28"]);
    elsewhere["metadata"]["namespace"] = json!("elsewhere");
    let answer = create(plane, &elsewhere);
    assert_eq!(answer.code, 403, "{}", answer.body);
    assert!(
        answer
            .message()
            .contains("only in namespace \"metallb-system\""),
        "{}",
        answer.message()
    );
    assert!(
        plane
            .get(&format!(
                "/apis/metallb.io/v1beta1/namespaces/{NS}/ipaddresspools/bad"
            ))
            .is_none()
    );
}

fn warnings_reach_the_client(plane: &ControlPlane) {
    let peer = object(
        "v1beta2",
        "BGPPeer",
        "gateway",
        json!({"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1", "disableMP": true, "bfdProfile": "fast"}),
    );
    let answer = create(plane, &peer);
    assert_eq!(answer.code, 201, "{}", answer.body);
    let warnings = answer.warnings.join("\n");
    assert!(warnings.contains("disableMP"), "{warnings}");
    assert!(
        warnings.contains("BFDProfile \\\"fast\\\" does not exist")
            || warnings.contains("BFDProfile \"fast\" does not exist"),
        "{warnings}"
    );
}

fn profile_in_use(plane: &ControlPlane) {
    let profile = object(
        "v1beta1",
        "BFDProfile",
        "fast",
        json!({"receiveInterval": 300}),
    );
    assert_eq!(create(plane, &profile).code, 201);
    let path = format!("/apis/metallb.io/v1beta1/namespaces/{NS}/bfdprofiles/fast");
    let refused = call(plane, "DELETE", &path, None);
    assert_eq!(refused.code, 403, "{}", refused.body);
    assert!(
        refused.message().contains("used by BGPPeer gateway"),
        "{}",
        refused.message()
    );
    let peer = format!("/apis/metallb.io/v1beta2/namespaces/{NS}/bgppeers/gateway");
    assert_eq!(call(plane, "DELETE", &peer, None).code, 200);
    assert_eq!(call(plane, "DELETE", &path, None).code, 200, "unused now");
}

fn conversion_both_ways(plane: &ControlPlane) {
    let at = |version: &str, name: &str| {
        format!("/apis/metallb.io/{version}/namespaces/{NS}/bgppeers/{name}")
    };
    // Created as v1beta1, read as v1beta2 and as v1beta1: the same fields.
    let old_spec = json!({"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.2", "holdTime": "90s",
                          "nodeSelectors": [{"matchLabels": {"rack": "r1"}, "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]});
    let created = create(
        plane,
        &object("v1beta1", "BGPPeer", "old", old_spec.clone()),
    );
    assert_eq!(created.code, 201, "{}", created.body);
    let as_new = call(plane, "GET", &at("v1beta2", "old"), None).body;
    for (field, value) in old_spec.as_object().unwrap() {
        assert_eq!(&as_new["spec"][field], value, "v1beta2 {field}: {as_new}");
    }
    // The API server adds v1beta2's defaults (peerPort 179) on the way; nothing else.
    let as_old = call(plane, "GET", &at("v1beta1", "old"), None).body;
    let mut expected = old_spec.clone();
    expected["peerPort"] = json!(179);
    assert_eq!(as_old["spec"], expected, "{as_old}");
    assert!(as_old["metadata"]["annotations"].is_null(), "{as_old}");
    // Created as v1beta2 with fields v1beta1 lacks: read and written back as v1beta1, they
    // are all still there.
    let new_spec = json!({"myASN": 64512, "peerASN": 64514, "peerAddress": "192.0.2.3", "enableGracefulRestart": true,
                          "connectTime": "10s", "passwordSecret": {"name": "md5", "namespace": NS}, "peerPort": 179});
    assert_eq!(
        create(
            plane,
            &object("v1beta2", "BGPPeer", "new", new_spec.clone())
        )
        .code,
        201
    );
    let mut old = call(plane, "GET", &at("v1beta1", "new"), None).body;
    assert!(old["spec"]["enableGracefulRestart"].is_null(), "{old}");
    old["spec"]["holdTime"] = json!("30s");
    let written = call(plane, "PUT", &at("v1beta1", "new"), Some(&old));
    assert_eq!(written.code, 200, "{}", written.body);
    let back = call(plane, "GET", &at("v1beta2", "new"), None).body;
    for (field, value) in new_spec.as_object().unwrap() {
        assert_eq!(
            &back["spec"][field], value,
            "{field} after a v1beta1 write: {back}"
        );
    }
    assert_eq!(back["spec"]["holdTime"], "30s");
    assert!(
        back["metadata"]["annotations"]
            .get(api::conversion::V1BETA2_FIELDS_ANNOTATION)
            .is_none(),
        "{back}"
    );
}

/// Points the BGPPeer conversion at `url`, as a re-applied manifest with a wrong address would.
fn convert_at(plane: &ControlPlane, url: String) {
    plane.with_client(move |client| async move {
        let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = kube::Api::all(client);
        let patch = json!({"spec": {"conversion": {"webhook": {"clientConfig": {"url": url}}}}});
        crds.patch("bgppeers.metallb.io", &Default::default(), &kube::api::Patch::Merge(&patch))
            .await
            .expect("patching the CRD");
    });
}

/// With BGPPeers to convert, the controller asks the API server to call it and says, once,
/// when that fails, in the API server's words and with the fix; then when it works again.
fn the_controller_reports_an_unreachable_webhook(plane: &ControlPlane, port: u16) {
    let log = || plane.log("webhooks");
    let began = Instant::now();
    convert_at(plane, format!("https://127.0.0.1:{}/convert", free_port()));
    wait_for(Duration::from_secs(20), || {
        log()
            .contains("the API server cannot call the webhooks")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no report\n{}", log()));
    eprintln!(
        "webhooks lab: the controller reported the broken conversion after {:?}",
        began.elapsed()
    );
    let line = log()
        .lines()
        .find(|l| l.contains("cannot call the webhooks"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("connection refused") && line.contains("--webhook-mode"),
        "{line}"
    );
    let condition = || {
        let state = plane
            .get(&format!(
                "/apis/metallb.io/v1beta1/namespaces/{NS}/configurationstates/controller"
            ))
            .unwrap_or_default();
        let conditions = state["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conditions
            .into_iter()
            .find(|c| c["type"] == "webhooksReachable")
    };
    let down = wait_for(Duration::from_secs(20), || {
        condition().filter(|c| c["status"] == "False")
    })
    .unwrap_or_else(|| panic!("no condition: {:?}\n{}", condition(), log()));
    assert!(
        down["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{down}"
    );
    let reports = |what: &str| log().matches(what).count();
    convert_at(plane, format!("https://127.0.0.1:{port}/convert"));
    wait_for(Duration::from_secs(20), || {
        (reports("the API server calls the webhooks") >= 1).then_some(())
    })
    .unwrap_or_else(|| panic!("no recovery\n{}", log()));
    assert_eq!(
        reports("the API server cannot call the webhooks"),
        1,
        "said once\n{}",
        log()
    );
    wait_for(Duration::from_secs(20), || {
        condition().filter(|c| c["status"] == "True")
    })
    .unwrap_or_else(|| panic!("condition not back: {:?}", condition()));
    // Beside the reconciler's own condition, not instead of it.
    let state = plane
        .get(&format!(
            "/apis/metallb.io/v1beta1/namespaces/{NS}/configurationstates/controller"
        ))
        .unwrap();
    assert!(state.to_string().contains("poolReconcilerValid"), "{state}");
}

fn deleted_secret_is_made_again(plane: &ControlPlane, old_ca: &str) {
    plane.delete(&format!(
        "/api/v1/namespaces/{NS}/secrets/metallb-webhook-cert"
    ));
    let began = Instant::now();
    wait_for(Duration::from_secs(20), || {
        let (config, crd) = bundle(plane);
        (!config.is_empty() && config != old_ca && config == crd).then_some(())
    })
    .unwrap_or_else(|| panic!("the bundle was not renewed\n{}", plane.log("webhooks")));
    let published = began.elapsed();
    let took = until_admitted(plane, &pool("renewed", &["198.51.100.0/28"]));
    eprintln!(
        "webhooks lab: after the Secret was deleted, new keys were published in {published:?}; admission answered {took:?} later"
    );
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
}
