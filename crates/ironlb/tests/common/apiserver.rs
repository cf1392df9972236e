//! A stand-in Kubernetes API server for labs: it serves fixed objects to LIST, streams the
//! changes a test makes to WATCH, and records every write, so a speaker runs unmodified
//! against it (through a kubeconfig) and the test sees the exact requests it sends.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// A write the server received.
#[derive(Clone, Debug)]
pub struct Write {
    pub method: Method,
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    /// Collection path (`/api/v1/nodes`) → objects.
    objects: BTreeMap<String, Vec<Value>>,
    writes: Vec<Write>,
    version: u64,
}

pub struct FakeApiServer {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<(String, Value)>,
}

/// The collection an object's kind lives in.
fn collection(object: &Value) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let plural = match kind {
        "EndpointSlice" => "endpointslices".to_string(),
        other => format!("{}s", other.to_lowercase()),
    };
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    match object["metadata"]["namespace"].as_str() {
        // Cluster-wide lists (Services, EndpointSlices) are what the speaker asks for.
        Some(ns)
            if matches!(kind, "ConfigMap" | "Secret") || api_version.starts_with("metallb.io") =>
        {
            format!("{base}/namespaces/{ns}/{plural}")
        }
        _ => format!("{base}/{plural}"),
    }
}

impl FakeApiServer {
    pub fn new(objects: Vec<Value>) -> Arc<FakeApiServer> {
        let server = Arc::new(FakeApiServer {
            inner: Mutex::default(),
            changes: broadcast::channel(1024).0,
        });
        for o in objects {
            server.put(o);
        }
        server
    }

    /// Adds or replaces an object (by name), telling watchers.
    pub fn put(&self, mut object: Value) {
        let path = collection(&object);
        let mut inner = self.inner.lock().unwrap();
        inner.version += 1;
        object["metadata"]["resourceVersion"] = Value::from(inner.version.to_string());
        let list = inner.objects.entry(path.clone()).or_default();
        let name = object["metadata"]["name"].clone();
        let kind = match list.iter().position(|o| o["metadata"]["name"] == name) {
            Some(i) => {
                list[i] = object.clone();
                "MODIFIED"
            }
            None => {
                list.push(object.clone());
                "ADDED"
            }
        };
        let _ = self
            .changes
            .send((path, json!({"type": kind, "object": object})));
    }

    pub fn writes(&self) -> Vec<Write> {
        self.inner.lock().unwrap().writes.clone()
    }

    /// Serves on `addr` until `stop` resolves (inside a tokio runtime). Open WATCH streams
    /// are cut then, not waited for: their clients may never close them.
    pub async fn serve(
        self: Arc<Self>,
        addr: SocketAddr,
        stop: impl Future<Output = ()> + Send + 'static,
    ) {
        let app = axum::Router::new().fallback(handle).with_state(self);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("binding the fake API server");
        tokio::select! {
            served = axum::serve(listener, app).into_future() => served.expect("serving"),
            () = stop => {}
        }
    }
}

async fn handle(
    State(server): State<Arc<FakeApiServer>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if method == Method::GET
        && query
            .split('&')
            .any(|q| q == "watch=true" || q == "watch=1")
    {
        let mut changes = server.changes.subscribe();
        let stream = async_stream(move |tx| async move {
            while let Ok((at, event)) = changes.recv().await {
                if at == path
                    && tx
                        .send(Ok(Bytes::from(format!("{event}\n"))))
                        .await
                        .is_err()
                {
                    return;
                }
            }
        });
        return Response::new(Body::from_stream(stream));
    }
    if method == Method::GET {
        let inner = server.inner.lock().unwrap();
        let items = inner.objects.get(&path).cloned().unwrap_or_default();
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": inner.version.to_string()}, "items": items});
        return reply(StatusCode::OK, &list);
    }
    server.inner.lock().unwrap().writes.push(Write {
        method: method.clone(),
        path: path.clone(),
        body: body.clone(),
    });
    let name = path
        .trim_end_matches("/status")
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let answer = match method {
        Method::POST => {
            let mut created = body;
            if let Some(prefix) = created["metadata"]["generateName"].as_str() {
                created["metadata"]["name"] = Value::from(format!("{prefix}fake1"));
            }
            created
        }
        Method::DELETE => json!({"apiVersion": "v1", "kind": "Status", "status": "Success"}),
        _ if path.contains("/servicel2statuses/") => {
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status", "metadata": {"name": name}, "spec": {}})
        }
        _ if path.contains("/servicebgpstatuses/") => {
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceBGPStatus", "metadata": {"name": name}, "spec": {}})
        }
        _ => body,
    };
    let status = if method == Method::POST {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    reply(status, &answer)
}

fn reply(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

/// A stream fed by a task, for the WATCH body.
fn async_stream<F, Fut>(f: F) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A kubeconfig for a speaker to reach the server at `addr`.
pub fn kubeconfig(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: lab, cluster: {{server: 'http://{addr}'}}}}]\nusers: [{{name: lab, user: {{token: lab}}}}]\ncontexts: [{{name: lab, context: {{cluster: lab, user: lab}}}}]\ncurrent-context: lab\n"
    )
}
