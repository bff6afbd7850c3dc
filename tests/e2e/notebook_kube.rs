//! `wasm-run notebook stop|start NAME [-n NS]` against a stand-in API server named by a
//! kubeconfig: the stop annotation set (a time) and removed, by merge patch; a missing
//! notebook named in the error.

use crate::support::*;
use axum::routing::patch;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

/// An API server with Notebook `team-a/lab` (and no other), recording each patch.
fn api_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/apis/weft.dev/v1alpha1/namespaces/{ns}/notebooks/{name}",
        patch(
            move |axum::extract::Path((ns, name)): axum::extract::Path<(String, String)>,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let record = record.clone();
                let body: Value = serde_json::from_slice(&body).unwrap();
                let kind = headers["content-type"].to_str().unwrap().to_string();
                async move {
                    record
                        .lock()
                        .unwrap()
                        .push((format!("{ns}/{name}"), kind, body.clone()));
                    if (ns.as_str(), name.as_str()) != ("team-a", "lab") {
                        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "reason": "NotFound", "code": 404,
                            "message": format!("notebooks.weft.dev \"{name}\" not found")});
                        return (axum::http::StatusCode::NOT_FOUND, axum::Json(status));
                    }
                    let nb = json!({"apiVersion": "weft.dev/v1alpha1", "kind": "Notebook",
                        "metadata": {"name": name, "namespace": ns, "annotations": {}}});
                    (axum::http::StatusCode::OK, axum::Json(nb))
                }
            },
        ),
    );
    (serve_in_background(app), seen)
}

#[test]
fn notebook_stop_and_start_set_and_clear_the_stop_annotation() {
    let (url, seen) = api_server();
    let s = Scratch::new();
    let kubeconfig = s.path("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{url}\"}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: c, context: {{cluster: fake, user: u, namespace: team-a}}}}]\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    let out = succeed(
        s.wasm_run()
            .env("KUBECONFIG", &kubeconfig)
            .args(["notebook", "stop", "lab", "-n", "team-a"]),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("notebook team-a/lab: stopping"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The context's namespace when -n is not given.
    succeed(
        s.wasm_run()
            .env("KUBECONFIG", &kubeconfig)
            .args(["notebook", "start", "lab"]),
    );
    let (code, err) = fails(
        s.wasm_run()
            .env("KUBECONFIG", &kubeconfig)
            .args(["notebook", "stop", "nope", "-n", "team-a"]),
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("no Notebook nope in namespace team-a"),
        "{err}"
    );

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let (target, kind, body) = &seen[0];
    assert_eq!(target, "team-a/lab");
    assert_eq!(kind, "application/merge-patch+json");
    let at = body["metadata"]["annotations"]["kubeflow-resource-stopped"]
        .as_str()
        .unwrap();
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "not RFC 3339: {at}"
    );
    assert_eq!(seen[1].0, "team-a/lab");
    assert_eq!(
        seen[1].2,
        json!({"metadata": {"annotations": {"kubeflow-resource-stopped": null}}})
    );
}
