//! The model registry, called in process: weft-registry's router over the home's metadata
//! database, driven request by request (`tower::ServiceExt::oneshot`), so the CLI speaks the
//! same REST API (Kubeflow Model Registry v1alpha3) as every other client and never the
//! registry's tables. Every request is in one namespace (`X-Weft-Namespace`), the client's.

use crate::home::Home;
use anyhow::{anyhow, Context, Result};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

const PREFIX: &str = "/api/model_registry/v1alpha3";

/// A failed registry request: the API's status and message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub struct Client {
    router: axum::Router,
    rt: tokio::runtime::Runtime,
    namespace: String,
}

impl Client {
    /// The registry in the home's metadata database, or in the one `--metadata` names (a
    /// SQLite file or a `postgres://` URL), working in `namespace`.
    pub fn open(home: &Home, namespace: &str) -> Result<Self> {
        let store = match home.metadata_location() {
            Some(location) => weft_registry::Registry::connect(location)
                .context("opening the model registry in the metadata database")?,
            None => {
                let db = home.metadata_db();
                if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                weft_registry::Registry::open(&db)
                    .with_context(|| format!("opening the model registry in {}", db.display()))?
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Client {
            router: weft_registry::router(Arc::new(store)),
            rt,
            namespace: namespace.to_string(),
        })
    }

    /// ` --namespace NS` for a hint naming a command, when not the default namespace.
    fn flag(&self) -> String {
        if self.namespace == weft_registry::namespace::DEFAULT_NAMESPACE {
            String::new()
        } else {
            format!(" --namespace {}", self.namespace)
        }
    }

    /// One request: the answer's body, or the API's error (a store failure marked as the
    /// host's, so the CLI exits with 3 for it).
    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let request = Request::builder()
            .method(method.clone())
            .uri(format!("{PREFIX}{path}"))
            .header("content-type", "application/json")
            .header(weft_registry::namespace::NAMESPACE_HEADER, &self.namespace)
            .body(match body {
                Some(v) => Body::from(serde_json::to_vec(v)?),
                None => Body::empty(),
            })?;
        let (status, bytes) = self.rt.block_on(async {
            let response = self.router.clone().oneshot(request).await?;
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            anyhow::Ok((status, bytes))
        })?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let message = value["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        let e = ApiError { status, message };
        if status.is_server_error() {
            let what = format!("the model registry failed ({method} {path})");
            return Err(anyhow::Error::new(weft_pipeline::HostFailure)
                .context(e)
                .context(what));
        }
        Err(e.into())
    }

    /// `GET path`, with a 404 as `None`.
    fn get_opt(&self, path: &str) -> Result<Option<Value>> {
        match self.call(Method::GET, path, None) {
            Ok(v) => Ok(Some(v)),
            Err(e) if status_of(&e) == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every item of a paged list.
    fn list_all(&self, path: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let page = self.call(
                Method::GET,
                &format!("{path}?pageSize=1000&nextPageToken={}", encode(&token)),
                None,
            )?;
            if let Some(list) = page["items"].as_array() {
                items.extend(list.iter().cloned());
            }
            token = page["nextPageToken"].as_str().unwrap_or("").to_string();
            if token.is_empty() {
                return Ok(items);
            }
        }
    }

    pub fn find_model(&self, name: &str) -> Result<Option<Value>> {
        self.get_opt(&format!("/registered_model?name={}", encode(name)))
    }

    pub fn find_version(&self, model_id: &str, name: &str) -> Result<Option<Value>> {
        self.get_opt(&format!(
            "/model_version?name={}&parentResourceId={}",
            encode(name),
            encode(model_id)
        ))
    }

    pub fn models(&self) -> Result<Vec<Value>> {
        self.list_all("/registered_models")
    }

    pub fn versions(&self, model_id: &str) -> Result<Vec<Value>> {
        self.list_all(&format!("/registered_models/{}/versions", encode(model_id)))
    }

    /// The model artifacts of a version (its doc artifacts left out).
    pub fn model_artifacts(&self, version_id: &str) -> Result<Vec<Value>> {
        let all = self.list_all(&format!("/model_versions/{}/artifacts", encode(version_id)))?;
        Ok(all
            .into_iter()
            .filter(|a| a["artifactType"] == "model-artifact")
            .collect())
    }

    pub fn create_model(&self, body: &Value) -> Result<Value> {
        self.call(Method::POST, "/registered_models", Some(body))
    }

    pub fn create_version(&self, model_id: &str, body: &Value) -> Result<Value> {
        let path = format!("/registered_models/{}/versions", encode(model_id));
        self.call(Method::POST, &path, Some(body))
    }

    pub fn create_artifact(&self, version_id: &str, body: &Value) -> Result<Value> {
        let path = format!("/model_versions/{}/artifacts", encode(version_id));
        self.call(Method::POST, &path, Some(body))
    }

    pub fn update_model(&self, id: &str, body: &Value) -> Result<Value> {
        let path = format!("/registered_models/{}", encode(id));
        self.call(Method::PATCH, &path, Some(body))
    }

    pub fn update_version(&self, id: &str, body: &Value) -> Result<Value> {
        let path = format!("/model_versions/{}", encode(id));
        self.call(Method::PATCH, &path, Some(body))
    }

    /// The model `name`, or an error naming it and the namespace.
    pub fn model(&self, name: &str) -> Result<Value> {
        self.find_model(name)?.ok_or_else(|| {
            anyhow!(
                "no registered model `{name}` in namespace `{}` (see `wasm-run models{} list`)",
                self.namespace,
                self.flag()
            )
        })
    }

    /// Version `version` of the model `model` (as [`Client::model`] returns it), or an error
    /// naming both and the namespace.
    pub fn version(&self, model: &Value, version: &str) -> Result<Value> {
        let name = text(model, "name");
        self.find_version(text(model, "id"), version)?
            .ok_or_else(|| {
                anyhow!(
                    "model `{name}` has no version `{version}` in namespace `{}` (see `wasm-run models{} list --versions {name}`)",
                    self.namespace,
                    self.flag()
                )
            })
    }
}

/// The registry status an error carries, if it is the registry's answer.
pub fn status_of(e: &anyhow::Error) -> Option<StatusCode> {
    e.chain()
        .find_map(|c| c.downcast_ref::<ApiError>())
        .map(|a| a.status)
}

/// A string field of an entity ("" when absent).
pub fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or("")
}

/// A query-string value, percent-encoded (everything but RFC 3986's unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(super::encode("iris v1&x=1/é"), "iris%20v1%26x%3D1%2F%C3%A9");
        assert_eq!(super::encode("a-b_c.d~"), "a-b_c.d~");
    }
}
