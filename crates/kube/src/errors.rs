//! API errors as one readable line. kube's own Display prints the server's Status twice
//! (message, then the whole struct); the server's message already names the verb, the
//! resource and who asked, so that and the code are all a log line needs.

use kube::runtime::watcher;

/// `services "web" is forbidden: User "…" cannot patch resource "services/status" … (403 Forbidden)`.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status_line(status),
        other => other.to_string(),
    }
}

/// The same for a watch's errors, saying which step failed.
pub fn describe_watch(e: &watcher::Error) -> String {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s)) if s.code == 404 => {
            "listing: the API server does not serve this kind (404); for metallb.io kinds, install the CRDs: kubectl apply -f deploy/crds/".to_string()
        }
        watcher::Error::InitialListFailed(e) => format!("listing: {}", describe(e)),
        watcher::Error::WatchStartFailed(e) => format!("starting a watch: {}", describe(e)),
        watcher::Error::WatchFailed(e) => format!("watching: {}", describe(e)),
        watcher::Error::WatchError(status) => format!("watching: {}", status_line(status)),
        other => other.to_string(),
    }
}

fn status_line(status: &kube::core::Status) -> String {
    format!("{} ({} {})", status.message, status.code, status.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_one_line_naming_verb_and_resource_once() {
        let message = r#"services "web" is forbidden: User "system:serviceaccount:metallb-system:controller" cannot patch resource "services/status" in API group "" in the namespace "default""#;
        let status = kube::core::Status::failure(message, "Forbidden").with_code(403);
        let line = describe(&kube::Error::Api(status.boxed()));
        assert_eq!(line, format!("{message} (403 Forbidden)"));
        assert_eq!(line.matches("cannot patch").count(), 1);
        assert!(!line.contains('\n'));
    }
}
