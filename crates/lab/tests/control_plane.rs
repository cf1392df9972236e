//! The harness itself, against the real binaries: it starts, authenticates the admin and
//! ServiceAccounts, enforces RBAC, logs every request, survives a restart on the same etcd,
//! and compacts.

use ironlb_lab::control_plane::{self, ControlPlane, Options, apply_yaml, audit, block_on};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

#[test]
fn a_control_plane_enforces_rbac_logs_requests_and_restarts_on_the_same_etcd() {
    if !control_plane::ready() {
        return;
    }
    let plane = ControlPlane::start(Options::default());
    eprintln!(
        "control plane: the API server was ready in {:?}",
        plane.started_in
    );
    let admin = plane.admin_kubeconfig();
    block_on(move || async move {
        let client = control_plane::client_from(&admin).await;
        let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: harness}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: reader, namespace: harness}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, namespace: harness}\ndata: {a: b}\n";
        apply_yaml(&client, yaml, false).await.unwrap();
    });

    // The ServiceAccount's own token: refused until a Role grants it.
    let reader = plane.service_account_kubeconfig("harness", "reader", None);
    let list = |kubeconfig: std::path::PathBuf| {
        block_on(move || async move {
            let client = control_plane::client_from(&kubeconfig).await;
            let api: Api<ConfigMap> = Api::namespaced(client, "harness");
            api.list(&Default::default()).await.map(|l| l.items.len())
        })
    };
    let refused = list(reader.clone()).unwrap_err();
    assert!(refused.to_string().contains("forbidden"), "{refused}");
    let admin = plane.admin_kubeconfig();
    block_on(move || async move {
        let client = control_plane::client_from(&admin).await;
        let yaml = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: reader, namespace: harness}\nrules: [{apiGroups: [''], resources: [configmaps], verbs: [list]}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: reader, namespace: harness}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}\nsubjects: [{kind: ServiceAccount, name: reader, namespace: harness}]\n";
        apply_yaml(&client, yaml, false).await.unwrap();
    });
    let allowed = ironlb_lab::wait_for(std::time::Duration::from_secs(5), || {
        list(reader.clone()).ok()
    });
    assert!(allowed.is_some_and(|n| n >= 1), "the Role lets it list");

    // Both requests are in the audit log, the refusal marked.
    let user = audit::service_account("harness", "reader");
    let events: Vec<_> = plane
        .audit()
        .into_iter()
        .filter(|e| e.user == user)
        .collect();
    assert!(
        events.iter().any(|e| e.forbidden && e.verb == "list"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| !e.forbidden && e.verb == "list"),
        "{events:?}"
    );

    // A restart keeps what etcd holds; a compaction gives a revision.
    plane.kill_apiserver();
    assert!(
        list(reader.clone()).is_err(),
        "nothing answers while it is down"
    );
    plane.start_apiserver();
    assert!(list(reader).is_ok_and(|n| n >= 1));
    assert!(plane.compact_etcd() > 1);
}
