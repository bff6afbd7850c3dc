//! InferenceServices naming `model-registry://NAME/VERSION`, resolved by the controller through
//! the real registry (weft-registry's router over an in-memory store, served on a loopback
//! port as `wasm-run ui` serves it) in the resource's namespace, against a scripted API server.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use weft_crd::InferenceService;
use weft_kube_mock::{client, expect, within, Expect, Reply, Seen};
use weft_operator::registry::Token;
use weft_operator::{inferenceservice, Config, Context};

const PREFIX: &str = "/api/model_registry/v1alpha3";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// The registry API on a loopback port; `url` is what WEFT_REGISTRY_URL would name.
struct Registry {
    url: String,
}

impl Registry {
    async fn start() -> Registry {
        let store = weft_registry::Registry::in_memory().unwrap();
        let app = weft_registry::router(Arc::new(store));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Registry {
            url: format!("http://{addr}"),
        }
    }

    async fn send(&self, method: &str, ns: &str, path: &str, body: Value) -> Value {
        let http: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{PREFIX}{path}?namespace={ns}", self.url))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let response = http.request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            status.is_success(),
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Registers version `version` of `model` in `ns` (the model too, unless `model_id`):
    /// a model artifact with `component` and files `uri`, as `wasm-run models register` does.
    async fn register(
        &self,
        ns: &str,
        model_id: Option<&str>,
        model: &str,
        version: &str,
        component: Option<&str>,
        uri: Option<&str>,
    ) -> (String, String) {
        let model_id = match model_id {
            Some(id) => id.to_string(),
            None => {
                let m = self
                    .send("POST", ns, "/registered_models", json!({"name": model}))
                    .await;
                m["id"].as_str().unwrap().to_string()
            }
        };
        let v = self
            .send(
                "POST",
                ns,
                &format!("/registered_models/{model_id}/versions"),
                json!({"name": version, "registeredModelId": model_id}),
            )
            .await;
        let version_id = v["id"].as_str().unwrap().to_string();
        let mut artifact =
            json!({"artifactType": "model-artifact", "name": version, "customProperties": {}});
        if let Some(c) = component {
            artifact["customProperties"]["weft.component"] =
                json!({"metadataType": "MetadataStringValue", "string_value": c});
        }
        if let Some(u) = uri {
            artifact["uri"] = json!(u);
        }
        self.send(
            "POST",
            ns,
            &format!("/model_versions/{version_id}/artifacts"),
            artifact,
        )
        .await;
        (model_id, version_id)
    }
}

fn paths(ns: &str) -> [String; 5] {
    [
        format!("/api/v1/namespaces/{ns}/configmaps/iris-serve"),
        format!("/apis/apps/v1/namespaces/{ns}/deployments/iris-predictor"),
        format!("/api/v1/namespaces/{ns}/services/iris"),
        format!("/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/iris-predictor"),
        format!("/apis/weft.dev/v1alpha1/namespaces/{ns}/inferenceservices/iris"),
    ]
}

/// The iris example in `ns`, its predictor and canary as given.
fn isvc(ns: &str, predictor: Value, canary: Value) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../examples/services/iris/inferenceservice.yaml");
    let mut v: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["metadata"]["namespace"] = json!(ns);
    v["metadata"]["uid"] = json!("uid-9");
    v["metadata"]["generation"] = json!(3);
    v["metadata"]["finalizers"] = json!([inferenceservice::FINALIZER]);
    v["spec"]["predictor"] = predictor;
    v["spec"]["canary"] = canary;
    v
}

/// A whole reconcile: the children applied, then the status.
fn deploys(ns: &str, object: &Value) -> Vec<Expect> {
    let [cm, deploy, svc, hpa, isvc] = paths(ns);
    vec![
        expect("PATCH", cm, Reply::Echo),
        expect("PATCH", deploy, Reply::Echo),
        expect("PATCH", svc, Reply::Echo),
        expect("PATCH", hpa, Reply::Echo),
        expect(
            "PATCH",
            format!("{isvc}/status"),
            Reply::MergeInto(object.clone()),
        ),
    ]
}

/// A reconcile that only writes the status (nothing resolved, so nothing applied).
fn status_only(ns: &str, object: &Value) -> Vec<Expect> {
    let [.., isvc] = paths(ns);
    vec![expect(
        "PATCH",
        format!("{isvc}/status"),
        Reply::MergeInto(object.clone()),
    )]
}

fn context(c: kube::Client, registry: Option<&str>) -> Arc<Context> {
    Context::new(
        c,
        Default::default(),
        Config {
            image: "registry.example/wasm-run:test".into(),
            registry_url: registry.map(str::to_string),
            ..Default::default()
        },
    )
}

async fn reconcile_with(
    ctx_of: impl FnOnce(kube::Client) -> Arc<Context>,
    object: &Value,
    script: Vec<Expect>,
) -> (kube::runtime::controller::Action, Vec<Seen>) {
    let (c, server) = client(script);
    let ctx = ctx_of(c);
    let isvc: InferenceService = serde_json::from_value(object.clone()).unwrap();
    let action = within(inferenceservice::reconcile(Arc::new(isvc), ctx))
        .await
        .unwrap();
    (action, server.finish().await)
}

async fn reconcile(
    registry: Option<&str>,
    object: &Value,
    script: Vec<Expect>,
) -> (kube::runtime::controller::Action, Vec<Seen>) {
    reconcile_with(|c| context(c, registry), object, script).await
}

/// The serve file the pods read.
fn served(seen: &[Seen]) -> weft_spec::inference::InferenceService {
    let file = seen[0].body["data"]["inferenceservice.yaml"]
        .as_str()
        .unwrap();
    serde_saphyr::from_str(file).unwrap()
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test]
async fn registered_versions_land_in_the_serve_file_as_digests_of_the_services_namespace() {
    let r = Registry::start().await;
    // The same names in two namespaces, with different digests: team-a's are served.
    let (iris, _) = r
        .register(
            "team-a",
            None,
            "iris",
            "v1",
            Some(&digest('a')),
            Some(&digest('b')),
        )
        .await;
    r.register(
        "team-a",
        Some(&iris),
        "iris",
        "v2",
        None,
        Some(&digest('c')),
    )
    .await;
    r.register(
        "default",
        None,
        "iris",
        "v1",
        Some(&digest('e')),
        Some(&digest('f')),
    )
    .await;
    let object = isvc(
        "team-a",
        json!({"component": "model-registry://iris/v1", "timeout": "5s"}),
        json!({"component": digest('d'), "storageUri": "model-registry://iris/v2", "trafficPercent": 10}),
    );
    let (action, seen) = reconcile(Some(&r.url), &object, deploys("team-a", &object)).await;
    let file = served(&seen);
    // A component name brings the version's component and model files; a storageUri name
    // only the files. No registry URI reaches the pods.
    assert_eq!(file.spec.predictor.component, digest('a'));
    assert_eq!(file.spec.predictor.storage_uri, Some(digest('b')));
    let canary = file.spec.canary.unwrap();
    assert_eq!(canary.component, digest('d'));
    assert_eq!(canary.storage_uri, Some(digest('c')));
    assert!(!seen[0].body.to_string().contains("model-registry://"));
    let status = &seen[4].body["status"];
    let resolved = condition(status, "ModelsResolved");
    assert_eq!(resolved["status"], "True");
    let message = resolved["message"].as_str().unwrap();
    assert!(
        message.contains("model-registry://iris/v1: component sha256:aaaa")
            && message.contains("model-registry://iris/v2: model sha256:cccc"),
        "{message}"
    );
    assert_eq!(condition(status, "Ready")["status"], "False");
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_secs(15))
    );

    // The default namespace's own version, for a service there.
    let object = isvc(
        "default",
        json!({"component": "model-registry://iris/v1"}),
        Value::Null,
    );
    let (_, seen) = reconcile(Some(&r.url), &object, deploys("default", &object)).await;
    assert_eq!(served(&seen).spec.predictor.component, digest('e'));
}

#[tokio::test]
async fn unknown_and_archived_versions_are_conditions_naming_them_and_checked_again() {
    let r = Registry::start().await;
    let (iris, _) = r
        .register(
            "team-a",
            None,
            "iris",
            "v1",
            Some(&digest('a')),
            Some(&digest('b')),
        )
        .await;
    let (_, v2) = r
        .register(
            "team-a",
            Some(&iris),
            "iris",
            "v2",
            Some(&digest('a')),
            Some(&digest('c')),
        )
        .await;
    r.send(
        "PATCH",
        "team-a",
        &format!("/model_versions/{v2}"),
        json!({"state": "ARCHIVED"}),
    )
    .await;
    r.register("team-a", None, "bare", "v1", Some(&digest('a')), None)
        .await;
    r.register("team-a", None, "s3", "v1", None, Some("s3://bucket/m"))
        .await;
    let recheck = kube::runtime::controller::Action::requeue(inferenceservice::RECHECK);
    let cases = [
        (
            json!({"component": "model-registry://iris/v9"}),
            "VersionNotFound",
            "spec.predictor.component model-registry://iris/v9: model `iris` has no version `v9` in namespace `team-a`",
        ),
        (
            json!({"component": "model-registry://nope/v1"}),
            "ModelNotFound",
            "no registered model `nope` in namespace `team-a`",
        ),
        (
            json!({"component": "model-registry://iris/v2"}),
            "VersionArchived",
            "version `v2` of model `iris` is archived",
        ),
        (
            json!({"component": digest('a'), "storageUri": "model-registry://bare/v1"}),
            "NotServable",
            "spec.predictor.storageUri: model-registry://bare/v1: the version's model artifact has no uri",
        ),
        (
            json!({"component": digest('a'), "storageUri": "model-registry://s3/v1"}),
            "NotServable",
            "outside Weft's artifact store",
        ),
    ];
    for (predictor, reason, text) in cases {
        let object = isvc("team-a", predictor, Value::Null);
        // Nothing applied: the status only.
        let (action, seen) = reconcile(Some(&r.url), &object, status_only("team-a", &object)).await;
        assert_eq!(action, recheck, "{reason}");
        let status = &seen[0].body["status"];
        for type_ in ["ModelsResolved", "Ready"] {
            let c = condition(status, type_);
            assert_eq!(c["status"], "False", "{reason}");
            assert_eq!(c["reason"], reason);
            assert!(c["message"].as_str().unwrap().contains(text), "{c}");
        }
        assert_eq!(status["observedGeneration"], 3);
    }

    // The archived model: the same, at the model.
    r.send(
        "PATCH",
        "team-a",
        &format!("/registered_models/{iris}"),
        json!({"state": "ARCHIVED"}),
    )
    .await;
    let object = isvc(
        "team-a",
        json!({"component": "model-registry://iris/v1"}),
        Value::Null,
    );
    let (_, seen) = reconcile(Some(&r.url), &object, status_only("team-a", &object)).await;
    let c = condition(&seen[0].body["status"], "ModelsResolved");
    assert_eq!(c["reason"], "ModelArchived");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("model `iris` is archived"),
        "{c}"
    );

    // Registered later: the next reconcile deploys it, and the condition turns True.
    let mut object = isvc(
        "team-a",
        json!({"component": "model-registry://later/v1"}),
        Value::Null,
    );
    let (_, seen) = reconcile(Some(&r.url), &object, status_only("team-a", &object)).await;
    object["status"] = seen[0].body["status"].clone();
    // Unchanged: no status write the second time.
    let (action, seen) = reconcile(Some(&r.url), &object, vec![]).await;
    assert_eq!((action, seen.len()), (recheck, 0));
    r.register(
        "team-a",
        None,
        "later",
        "v1",
        Some(&digest('7')),
        Some(&digest('8')),
    )
    .await;
    let (_, seen) = reconcile(Some(&r.url), &object, deploys("team-a", &object)).await;
    assert_eq!(served(&seen).spec.predictor.component, digest('7'));
    assert_eq!(
        condition(&seen[4].body["status"], "ModelsResolved")["status"],
        "True"
    );
}

#[tokio::test]
async fn an_unreachable_registry_is_retried_with_backoff_not_a_failure() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let object = isvc(
        "team-a",
        json!({"component": "model-registry://iris/v1"}),
        Value::Null,
    );
    let (c, server) = client(status_only("team-a", &object));
    let ctx = context(c, Some(&closed));
    let run = |o: &Value| {
        let isvc: InferenceService = serde_json::from_value(o.clone()).unwrap();
        inferenceservice::reconcile(Arc::new(isvc), ctx.clone())
    };
    let first = within(run(&object)).await.unwrap();
    let seen = server.finish().await;
    assert_eq!(
        first,
        kube::runtime::controller::Action::requeue(Duration::from_secs(5))
    );
    let status = &seen[0].body["status"];
    let c = condition(status, "ModelsResolved");
    assert_eq!(
        (&c["status"], &c["reason"]),
        (&json!("False"), &json!("RegistryUnavailable"))
    );
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("model-registry://iris/v1") && message.contains(&closed),
        "{message}"
    );

    // Again, with that status: no write, a longer wait; the same context keeps the count.
    let mut again = object.clone();
    again["status"] = status.clone();
    let (c2, server) = client(vec![]);
    let ctx2 = Context::new(c2, Default::default(), ctx.config.clone());
    ctx2.registry_failures
        .lock()
        .unwrap()
        .extend(ctx.registry_failures.lock().unwrap().clone());
    let isvc: InferenceService = serde_json::from_value(again).unwrap();
    let second = within(inferenceservice::reconcile(Arc::new(isvc), ctx2.clone()))
        .await
        .unwrap();
    assert!(server.finish().await.is_empty());
    assert_eq!(
        second,
        kube::runtime::controller::Action::requeue(Duration::from_secs(10))
    );
    assert_eq!(
        weft_operator::registry::backoff(20),
        Duration::from_secs(300)
    );
    assert!(ctx2.metrics.encode().contains("registry"));

    // A 5xx is the same; and a service already resolved and deployed at this generation
    // keeps its status (its pods serve it still) while the registry is away.
    let failing = axum::Router::new()
        .fallback(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "restarting") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, failing).await.unwrap() });
    let (_, seen) = reconcile(Some(&url), &object, status_only("team-a", &object)).await;
    let c = condition(&seen[0].body["status"], "ModelsResolved");
    assert_eq!(c["reason"], "RegistryUnavailable");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 503: restarting"),
        "{c}"
    );
    let mut deployed = object.clone();
    deployed["status"] = json!({"observedGeneration": 3, "readyReplicas": 2, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Ready", "message": "2 pod(s)", "lastTransitionTime": "2026-12-01T00:00:00Z"},
        {"type": "ModelsResolved", "status": "True", "reason": "Resolved", "message": "x", "lastTransitionTime": "2026-12-01T00:00:00Z"},
    ]});
    let (action, seen) = reconcile(Some(&url), &deployed, vec![]).await;
    assert!(seen.is_empty(), "{seen:?}");
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_secs(5))
    );
}

#[tokio::test]
async fn without_a_registry_a_registry_name_is_a_condition_and_plain_digests_need_none() {
    let object = isvc(
        "team-a",
        json!({"component": "model-registry://iris/v1"}),
        Value::Null,
    );
    let (action, seen) = reconcile(None, &object, status_only("team-a", &object)).await;
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    let c = condition(&seen[0].body["status"], "ModelsResolved");
    assert_eq!(c["reason"], "RegistryNotConfigured");
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("spec.predictor.component names model-registry://iris/v1")
            && message.contains("WEFT_REGISTRY_URL"),
        "{message}"
    );
    // A malformed name waits for a change of spec.
    let object = isvc(
        "team-a",
        json!({"component": "model-registry://iris"}),
        Value::Null,
    );
    let (action, seen) = reconcile(
        Some("http://127.0.0.1:9"),
        &object,
        status_only("team-a", &object),
    )
    .await;
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    let c = condition(&seen[0].body["status"], "ModelsResolved");
    assert_eq!(c["reason"], "InvalidModelURI");
    assert!(
        c["message"].as_str().unwrap().contains("NAME/VERSION"),
        "{c}"
    );
    // Digests only: no registry asked, no ModelsResolved condition.
    let object = isvc("team-a", json!({"component": digest('a')}), Value::Null);
    let (_, seen) = reconcile(None, &object, deploys("team-a", &object)).await;
    assert_eq!(served(&seen).spec.predictor.component, digest('a'));
    assert!(!seen[4].body.to_string().contains("ModelsResolved"));
}

#[tokio::test]
async fn the_registry_token_is_sent_and_the_url_is_checked() {
    // A registry behind a token: the operator's token gets through.
    let store = weft_registry::Registry::in_memory().unwrap();
    let app = weft_registry::router(Arc::new(store)).layer(axum::middleware::from_fn(
        |req: axum::extract::Request, next: axum::middleware::Next| async move {
            let ok = req
                .headers()
                .get("authorization")
                .is_some_and(|v| v == "Bearer s3cret");
            if ok || req.method() != axum::http::Method::GET {
                next.run(req).await
            } else {
                axum::http::StatusCode::UNAUTHORIZED.into_response()
            }
        },
    ));
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let r = Registry { url: url.clone() };
    r.register(
        "team-a",
        None,
        "iris",
        "v1",
        Some(&digest('a')),
        Some(&digest('b')),
    )
    .await;
    let object = isvc(
        "team-a",
        json!({"component": "model-registry://iris/v1"}),
        Value::Null,
    );
    let with_token = |c| {
        Context::new(
            c,
            Default::default(),
            Config {
                registry_url: Some(format!("{url}/")),
                registry_token: Some(Token("s3cret".into())),
                ..Default::default()
            },
        )
    };
    let (_, seen) = reconcile_with(with_token, &object, deploys("team-a", &object)).await;
    assert_eq!(served(&seen).spec.predictor.component, digest('a'));
    // Without it: refused, a condition saying so.
    let (_, seen) = reconcile(Some(&url), &object, status_only("team-a", &object)).await;
    let c = condition(&seen[0].body["status"], "ModelsResolved");
    assert_eq!(c["reason"], "RegistryRefused");
    assert!(c["message"].as_str().unwrap().contains("HTTP 401"), "{c}");
    for bad in ["https://ui:8585", "ui:8585", "http://", "http://ui/?x=1"] {
        let e = weft_operator::registry::Registry::new(bad, None).unwrap_err();
        assert!(e.contains("WEFT_REGISTRY_URL"), "{e}");
    }
    assert!(!format!("{:?}", Token("s3cret".into())).contains("s3cret"));
}
