//! A scripted Kubernetes API server for reconciler tests (the controller-rs fixtures pattern
//! over tower-test): each test lists the requests it expects, in order, with the replies; the
//! server fails the test on any other request, and the test fails if one is never made.

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use std::time::Duration;

pub enum Reply {
    /// This object.
    Json(Value),
    /// 404, as the API server words it.
    NotFound,
    /// The request's body back (what an apply of a fresh object returns, near enough).
    Echo,
    /// `base` with the request's body merged in (a status patch returns the whole object).
    MergeInto(Value),
    /// A refusal: this HTTP code, with a Status of this reason and message (a quota, an
    /// admission webhook, RBAC).
    Refuse(u16, &'static str, String),
}

pub struct Expect {
    pub method: &'static str,
    pub path: String,
    pub reply: Reply,
}

pub fn expect(method: &'static str, path: impl Into<String>, reply: Reply) -> Expect {
    Expect {
        method,
        path: path.into(),
        reply,
    }
}

/// A request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

pub struct ApiServer {
    task: tokio::task::JoinHandle<Vec<Seen>>,
}

/// A client whose API server answers `script`, in order.
pub fn client(script: Vec<Expect>) -> (Client, ApiServer) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for exp in script {
            let (request, send) = handle
                .next_request()
                .await
                .unwrap_or_else(|| panic!("no request came; expected {} {}", exp.method, exp.path));
            let method = request.method().to_string();
            let path = request.uri().path().to_string();
            let query = request.uri().query().unwrap_or_default().to_string();
            assert_eq!(
                (method.as_str(), path.as_str()),
                (exp.method, exp.path.as_str()),
                "unexpected request (after {:?})",
                seen.iter()
                    .map(|s: &Seen| format!("{} {}", s.method, s.path))
                    .collect::<Vec<_>>()
            );
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            let (status, reply) = match exp.reply {
                Reply::Json(v) => (200, v),
                Reply::NotFound => (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": format!("{path} not found"), "reason": "NotFound", "code": 404}),
                ),
                Reply::Echo => (200, body.clone()),
                Reply::MergeInto(mut base) => {
                    merge(&mut base, &body);
                    (200, base)
                }
                Reply::Refuse(code, reason, message) => (
                    code,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "reason": reason, "code": code}),
                ),
            };
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
            seen.push(Seen {
                method,
                path,
                query,
                body,
            });
        }
        seen
    });
    (Client::new(service, "default"), ApiServer { task })
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

impl ApiServer {
    /// Every scripted request, once the script has run out (fails if it does not in 1 s).
    pub async fn finish(self) -> Vec<Seen> {
        tokio::time::timeout(Duration::from_secs(1), self.task)
            .await
            .expect("the reconciler did not make every expected request")
            .expect("the API server script failed")
    }
}

/// Runs a reconcile against the script, failing if it hangs on an unexpected request.
pub async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(2), f)
        .await
        .expect("the reconciler hung: it made a request the script does not answer")
}
