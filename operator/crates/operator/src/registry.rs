//! `model-registry://NAME/VERSION` in an InferenceService's component or storageUri, resolved
//! through the model registry's REST API (Kubeflow Model Registry v1alpha3, as `wasm-run ui`
//! serves it: the chart's `-ui` Service) in the InferenceService's own namespace, so the
//! serving pods get plain digests. The URI's parsing, the reading of the registry's answers and
//! the substitution rules are weft-spec's (`weft_spec::model_registry`), the ones of `wasm-run
//! serve -f`; this module does the asking, over HTTP.
//!
//! The HTTP client is hyper-util's (legacy) client over hyper 1: kube's own client is built on
//! them, so they are in the operator's tree already at the versions kube pins, and they are
//! async like the reconciler. ureq, also in the workspace, would block a runtime thread per
//! request, and reqwest would add a second HTTP stack. Plain HTTP only: the registry is a
//! Service inside the cluster.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use weft_spec::inference::InferenceServiceSpec;
use weft_spec::model_registry::{self as mr, Field, PartError, Resolved};

/// The longest a request may take, answer included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of one answer read.
const MAX_BODY: usize = 4 << 20;
/// The most pages of a version's artifacts read.
const MAX_PAGES: usize = 10;

/// A bearer token, kept out of `Debug` output.
#[derive(Clone)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The registry's REST API at one URL.
#[derive(Clone)]
pub struct Registry {
    /// `http://host:port[/path]`, no trailing `/`: where `wasm-run ui` serves.
    base: String,
    token: Option<Token>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base)
            .finish()
    }
}

/// How a resolution failed, which decides what the reconcile does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The registry did not answer, or failed (5xx, a timeout): retried with backoff.
    Transient,
    /// The registry answered no (no such model or version, archived, nothing to serve):
    /// checked again on the next reconcile, so registering it later fixes the service.
    Recheck,
    /// Only a change of the spec or of the operator's settings fixes it.
    Final,
}

/// Why the InferenceService's registry names could not be resolved: a status condition's
/// reason and message (naming the field, the model and the version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    fn new(kind: Kind, reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            kind,
            reason,
            message: message.into(),
        }
    }
}

/// The spec with its registry names replaced, and what each resolved to (empty when it names
/// none).
#[derive(Debug)]
pub struct Resolution {
    pub spec: InferenceServiceSpec,
    pub resolved: BTreeMap<String, Resolved>,
}

impl Resolution {
    /// What the spec's registry names resolved to, for a status condition.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .resolved
            .iter()
            .map(|(uri, r)| {
                let mut s = format!("{uri}:");
                if let Some(c) = &r.component {
                    s.push_str(&format!(" component {c}"));
                }
                if let Some(u) = &r.uri {
                    s.push_str(&format!(" model {u}"));
                }
                s
            })
            .collect();
        parts.join("; ")
    }
}

/// What a request came back with, short of a success.
enum Answer {
    NotFound,
    /// Another 4xx, with the registry's message.
    Refused(u16, String),
    /// No answer, a 5xx, or one that is not JSON: the registry's trouble.
    Unavailable(String),
}

impl Registry {
    /// The registry at `url` (`WEFT_REGISTRY_URL`: the `http://` address of `wasm-run ui`),
    /// sending `token` as `Authorization: Bearer` when given.
    pub fn new(url: &str, token: Option<Token>) -> Result<Self, String> {
        let bad = |why: &str| format!("WEFT_REGISTRY_URL `{url}`: {why}");
        let base = url.trim_end_matches('/');
        if !base.starts_with("http://") {
            return Err(bad(
                "write http://HOST[:PORT] (the registry is served in the cluster over plain HTTP)",
            ));
        }
        let parsed: http::Uri = base.parse().map_err(|e| bad(&format!("{e}")))?;
        if parsed.authority().is_none() || parsed.query().is_some() {
            return Err(bad("write http://HOST[:PORT][/PATH]"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(TIMEOUT));
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Registry {
            base: base.to_string(),
            token,
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// `GET` of an API path (with its query) in namespace `ns`: the answer's JSON.
    async fn get(&self, ns: &str, path: &str) -> Result<Value, Answer> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let uri = format!(
            "{}{}{path}{sep}namespace={}",
            self.base,
            mr::API_PREFIX,
            mr::encode(ns)
        );
        let mut request = http::Request::get(&uri).header("accept", "application/json");
        if let Some(t) = &self.token {
            request = request.header("authorization", format!("Bearer {}", t.0));
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| Answer::Unavailable(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| Answer::Unavailable(error_chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| Answer::Unavailable(format!("reading its answer: {e}")))?
                .to_bytes();
            Ok::<_, Answer>((status, body))
        };
        let (status, body) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| Answer::Unavailable(format!("no answer within {TIMEOUT:?}")))??;
        let value: Option<Value> = serde_json::from_slice(&body).ok();
        if status.is_success() {
            return value.ok_or_else(|| Answer::Unavailable("its answer is not JSON".into()));
        }
        let message = value
            .as_ref()
            .and_then(|v| v["message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| {
                weft_spec::text::truncate(&String::from_utf8_lossy(&body), 200).into_owned()
            });
        match status.as_u16() {
            404 => Err(Answer::NotFound),
            code @ 400..=499 => Err(Answer::Refused(code, message)),
            code => Err(Answer::Unavailable(format!("HTTP {code}: {message}"))),
        }
    }

    /// Version `version` of model `model` in namespace `ns`: what it serves with, or why not.
    pub async fn resolve(&self, ns: &str, model: &str, version: &str) -> Result<Resolved, Failure> {
        let asked = |a: Answer, not_found: (&'static str, String)| match a {
            Answer::NotFound => Failure::new(Kind::Recheck, not_found.0, not_found.1),
            Answer::Refused(code, message) => Failure::new(
                Kind::Recheck,
                "RegistryRefused",
                format!(
                    "the model registry at {} refused (HTTP {code}): {message}",
                    self.base
                ),
            ),
            Answer::Unavailable(why) => Failure::new(
                Kind::Transient,
                "RegistryUnavailable",
                format!("the model registry at {} is unavailable: {why}", self.base),
            ),
        };
        let no_model = || {
            (
                "ModelNotFound",
                format!("no registered model `{model}` in namespace `{ns}`"),
            )
        };
        let no_version = || {
            (
                "VersionNotFound",
                format!("model `{model}` has no version `{version}` in namespace `{ns}`"),
            )
        };
        let unservable = |e: mr::Unservable| Failure::new(Kind::Recheck, e.reason(), e.to_string());

        let found = self
            .get(ns, &format!("/registered_model?name={}", mr::encode(model)))
            .await
            .map_err(|a| asked(a, no_model()))?;
        mr::check_model(model, &found).map_err(unservable)?;
        let model_id = id(&found);
        let found = self
            .get(
                ns,
                &format!(
                    "/model_version?name={}&parentResourceId={}",
                    mr::encode(version),
                    mr::encode(&model_id)
                ),
            )
            .await
            .map_err(|a| asked(a, no_version()))?;
        mr::check_version(model, version, &found).map_err(unservable)?;
        let version_id = id(&found);
        let mut artifacts = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let page = self
                .get(
                    ns,
                    &format!(
                        "/model_versions/{}/artifacts?pageSize=100&nextPageToken={}",
                        mr::encode(&version_id),
                        mr::encode(&token)
                    ),
                )
                .await
                .map_err(|a| asked(a, no_version()))?;
            if let Some(items) = page["items"].as_array() {
                artifacts.extend(items.iter().filter(|a| mr::is_model_artifact(a)).cloned());
            }
            token = page["nextPageToken"].as_str().unwrap_or("").to_string();
            if token.is_empty() {
                break;
            }
        }
        mr::served(model, version, &artifacts).map_err(unservable)
    }
}

/// An entity's id (a string in the API; a number tolerated).
fn id(v: &Value) -> String {
    match &v["id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An error and its sources, `: `-joined (hyper's own message is only the outermost).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(&format!(": {c}"));
        source = c.source();
    }
    s
}

/// `spec` with every `model-registry://NAME/VERSION` of its predictor and canary resolved in
/// namespace `ns` through `registry` (an error saying why there is none), each name asked
/// once.
pub async fn resolve_spec(
    registry: &Result<Registry, String>,
    ns: &str,
    spec: &InferenceServiceSpec,
) -> Result<Resolution, Failure> {
    let p = &spec.predictor;
    let mut named: Vec<(String, &str)> = Vec::new();
    let mut parts = vec![("predictor", p.component.as_str(), p.storage_uri.as_deref())];
    if let Some(c) = &spec.canary {
        parts.push(("canary", c.component.as_str(), c.storage_uri.as_deref()));
    }
    for (part, component, storage) in &parts {
        for (field, uri) in mr::uris(component, *storage) {
            named.push((format!("spec.{part}.{}", field.name()), uri));
        }
    }
    let mut resolved = BTreeMap::new();
    if named.is_empty() {
        return Ok(Resolution {
            spec: spec.clone(),
            resolved,
        });
    }
    let registry = registry.as_ref().map_err(|why| {
        let (at, uri) = &named[0];
        Failure::new(
            Kind::Final,
            "RegistryNotConfigured",
            format!("{at} names {uri}, but the operator has no model registry: {why}"),
        )
    })?;
    for (at, uri) in &named {
        if resolved.contains_key(*uri) {
            continue;
        }
        let (model, version) = mr::parse(uri)
            .map_err(|e| Failure::new(Kind::Final, "InvalidModelURI", format!("{at}: {e}")))?;
        let r = registry
            .resolve(ns, model, version)
            .await
            .map_err(|f| Failure {
                message: format!("{at} {uri}: {}", f.message),
                ..f
            })?;
        resolved.insert(uri.to_string(), r);
    }
    let lookup = |_: Field, uri: &str| resolved.get(uri).cloned().ok_or(());
    let substitute = |part: &str, component: &str, storage: Option<&str>| {
        mr::substitute(component, storage, lookup).map_err(|e| match e {
            PartError::Refused { field, message } => Failure::new(
                Kind::Recheck,
                "NotServable",
                format!("spec.{part}.{}: {message}", field.name()),
            ),
            // Every name was resolved above; a miss would be this module's fault.
            PartError::Lookup(()) => Failure::new(
                Kind::Final,
                "InvalidModelURI",
                format!("spec.{part}: a registry name was not resolved"),
            ),
        })
    };
    let mut out = spec.clone();
    let (component, storage) = substitute("predictor", &p.component, p.storage_uri.as_deref())?;
    out.predictor.component = component;
    out.predictor.storage_uri = storage;
    if let Some(c) = out.canary.as_mut() {
        let (component, storage) = substitute("canary", &c.component, c.storage_uri.as_deref())?;
        c.component = component;
        c.storage_uri = storage;
    }
    Ok(Resolution {
        spec: out,
        resolved,
    })
}

/// The wait before retrying after the `n`th transient failure in a row (from 0): 5 s,
/// doubling, at most 5 minutes.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << n.min(6)).min(300))
}
