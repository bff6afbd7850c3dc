//! `model-registry://NAME/VERSION`: a registered model version named as an InferenceService's
//! component or storageUri, and what it resolves to: the URI's parsing, the reading of the
//! registry's answers (Kubeflow Model Registry's REST API, v1alpha3), and the rules by which a
//! part's component and storageUri are replaced. The asking is each caller's own: the operator
//! asks over HTTP (`operator/src/registry.rs`); `wasm-run serve -f` asks in process
//! (`cli/src/models/resolve.rs`).

use serde_json::Value;

pub const SCHEME: &str = "model-registry://";
/// The model artifact's custom property naming the version's `weft:serve/predictor` component.
pub const COMPONENT: &str = "weft.component";
/// Where the registry's REST API is served, below the server's root.
pub const API_PREFIX: &str = "/api/model_registry/v1alpha3";

/// Why a string is not `model-registry://NAME/VERSION`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("`{0}` is not a {SCHEME} URI")]
    NotRegistry(String),
    #[error("write {SCHEME}NAME/VERSION (the model's name and its version's)")]
    Shape,
}

/// NAME and VERSION of `model-registry://NAME/VERSION` (a version may hold `/`).
pub fn parse(uri: &str) -> Result<(&str, &str), UriError> {
    let rest = uri
        .strip_prefix(SCHEME)
        .ok_or_else(|| UriError::NotRegistry(uri.to_string()))?;
    match rest.split_once('/') {
        Some((name, version)) if !name.is_empty() && !version.is_empty() => Ok((name, version)),
        _ => Err(UriError::Shape),
    }
}

/// What a registered version serves with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The `weft:serve/predictor` component (`sha256:` of the artifact holding it), if
    /// registered with one.
    pub component: Option<String>,
    /// The model artifact's URI, if it has one.
    pub uri: Option<String>,
}

/// Why a registered version is not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unservable {
    #[error("model `{model}` is archived: archived models are not served")]
    ModelArchived { model: String },
    #[error(
        "version `{version}` of model `{model}` is archived: archived versions are not served"
    )]
    VersionArchived { model: String, version: String },
    #[error("version `{version}` of model `{model}` has no model artifact")]
    NoArtifact { model: String, version: String },
    #[error("version `{version}` of model `{model}` has {count} model artifacts: serving needs exactly one")]
    ManyArtifacts {
        model: String,
        version: String,
        count: usize,
    },
}

impl Unservable {
    /// A short CamelCase name (a status condition's reason).
    pub fn reason(&self) -> &'static str {
        match self {
            Unservable::ModelArchived { .. } => "ModelArchived",
            Unservable::VersionArchived { .. } => "VersionArchived",
            Unservable::NoArtifact { .. } => "NoModelArtifact",
            Unservable::ManyArtifacts { .. } => "ManyModelArtifacts",
        }
    }
}

fn archived(entity: &Value) -> bool {
    entity["state"] == "ARCHIVED"
}

/// The registered model `model` (the registry's `RegisteredModel`) may be served.
pub fn check_model(model: &str, found: &Value) -> Result<(), Unservable> {
    if archived(found) {
        return Err(Unservable::ModelArchived {
            model: model.into(),
        });
    }
    Ok(())
}

/// Version `version` of `model` (the registry's `ModelVersion`) may be served.
pub fn check_version(model: &str, version: &str, found: &Value) -> Result<(), Unservable> {
    if archived(found) {
        return Err(Unservable::VersionArchived {
            model: model.into(),
            version: version.into(),
        });
    }
    Ok(())
}

/// Whether one of a version's artifacts is its model artifact (not, say, a doc artifact).
pub fn is_model_artifact(artifact: &Value) -> bool {
    artifact["artifactType"] == "model-artifact"
}

/// What a version serves with, from its model artifacts (exactly one): the component its
/// custom property [`COMPONENT`] names, and its `uri`.
pub fn served(model: &str, version: &str, artifacts: &[Value]) -> Result<Resolved, Unservable> {
    let artifact = match artifacts {
        [one] => one,
        [] => {
            return Err(Unservable::NoArtifact {
                model: model.into(),
                version: version.into(),
            })
        }
        more => {
            return Err(Unservable::ManyArtifacts {
                model: model.into(),
                version: version.into(),
                count: more.len(),
            })
        }
    };
    let component = artifact["customProperties"][COMPONENT]["string_value"]
        .as_str()
        .map(str::to_string);
    let uri = artifact["uri"]
        .as_str()
        .filter(|u| !u.is_empty())
        .map(str::to_string);
    Ok(Resolved { component, uri })
}

/// Which field of a predictor or canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Component,
    StorageUri,
}

impl Field {
    /// The field's name in the spec.
    pub fn name(self) -> &'static str {
        match self {
            Field::Component => "component",
            Field::StorageUri => "storageUri",
        }
    }
}

/// Why a part's registry URIs could not be replaced: the lookup's own error, or what the
/// version records does not serve as that field.
#[derive(Debug)]
pub enum PartError<E> {
    Lookup(E),
    Refused { field: Field, message: String },
}

/// The `model-registry://` URIs of a part's component and storageUri, in the order
/// [`substitute`] looks them up.
pub fn uris<'a>(component: &'a str, storage: Option<&'a str>) -> Vec<(Field, &'a str)> {
    let mut out = Vec::new();
    if component.starts_with(SCHEME) {
        out.push((Field::Component, component));
    }
    if let Some(s) = storage.filter(|s| s.starts_with(SCHEME)) {
        out.push((Field::StorageUri, s));
    }
    out
}

/// A part's component and storageUri with each `model-registry://NAME/VERSION` replaced by
/// what the version records (`lookup`): its component's digest, its model files' digest. A
/// component named so brings the version's model files too, unless storageUri says otherwise.
/// Model files must be in Weft's artifact store (`sha256:`), which is what `wasm-run serve`
/// serves.
pub fn substitute<E>(
    component: &str,
    storage: Option<&str>,
    mut lookup: impl FnMut(Field, &str) -> Result<Resolved, E>,
) -> Result<(String, Option<String>), PartError<E>> {
    let mut storage = storage.map(str::to_string);
    let mut source = component.to_string();
    if component.starts_with(SCHEME) {
        let field = Field::Component;
        let r = lookup(field, component).map_err(PartError::Lookup)?;
        source = r.component.ok_or_else(|| PartError::Refused {
            field,
            message: format!("{component}: the version was registered without a component (--component); name a component here and the version as storageUri"),
        })?;
        if storage.is_none() {
            storage = r.uri.map(|u| stored_uri(field, component, u)).transpose()?;
        }
    }
    if let Some(uri) = storage.clone().filter(|s| s.starts_with(SCHEME)) {
        let field = Field::StorageUri;
        let r = lookup(field, &uri).map_err(PartError::Lookup)?;
        let files = r.uri.ok_or_else(|| PartError::Refused {
            field,
            message: format!("{uri}: the version's model artifact has no uri (no model files)"),
        })?;
        storage = Some(stored_uri(field, &uri, files)?);
    }
    Ok((source, storage))
}

/// A registered model's files as served: an artifact in the store (`sha256:`), not another URI.
fn stored_uri<E>(field: Field, name: &str, uri: String) -> Result<String, PartError<E>> {
    if uri.starts_with("sha256:") {
        return Ok(uri);
    }
    Err(PartError::Refused {
        field,
        message: format!("{name}: the version's model files are at `{uri}`, outside Weft's artifact store; `wasm-run serve` serves stored artifacts (sha256:...)"),
    })
}

/// A query-string value, percent-encoded (everything but RFC 3986's unreserved characters).
pub fn encode(s: &str) -> String {
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
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_versions_are_parsed() {
        assert_eq!(parse("model-registry://iris/v1").unwrap(), ("iris", "v1"));
        assert_eq!(
            parse("model-registry://iris/2024/05").unwrap(),
            ("iris", "2024/05")
        );
        for bad in [
            "model-registry://iris",
            "model-registry://iris/",
            "model-registry:///v1",
        ] {
            assert_eq!(parse(bad), Err(UriError::Shape), "{bad}");
        }
        assert!(parse("s3://b/m")
            .unwrap_err()
            .to_string()
            .contains("`s3://b/m` is not a model-registry:// URI"));
    }

    #[test]
    fn archived_models_and_versions_are_not_served() {
        let live = json!({"state": "LIVE"});
        let gone = json!({"state": "ARCHIVED"});
        assert!(check_model("iris", &live).is_ok());
        assert_eq!(
            check_model("iris", &gone).unwrap_err().to_string(),
            "model `iris` is archived: archived models are not served"
        );
        assert!(check_version("iris", "v1", &json!({})).is_ok());
        let e = check_version("iris", "v1", &gone).unwrap_err();
        assert_eq!(e.reason(), "VersionArchived");
        assert!(e.to_string().contains("version `v1` of model `iris`"));
    }

    #[test]
    fn one_model_artifact_gives_the_component_and_files() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let a = json!({"artifactType": "model-artifact", "uri": digest,
            "customProperties": {COMPONENT: {"metadataType": "MetadataStringValue", "string_value": "sha256:c"}}});
        assert!(is_model_artifact(&a));
        assert!(!is_model_artifact(&json!({"artifactType": "doc-artifact"})));
        assert_eq!(
            served("iris", "v1", std::slice::from_ref(&a)).unwrap(),
            Resolved {
                component: Some("sha256:c".into()),
                uri: Some(digest)
            }
        );
        let bare = served("iris", "v1", &[json!({"uri": ""})]).unwrap();
        assert_eq!(
            bare,
            Resolved {
                component: None,
                uri: None
            }
        );
        assert_eq!(
            served("iris", "v1", &[]).unwrap_err().reason(),
            "NoModelArtifact"
        );
        assert!(served("iris", "v1", &[a.clone(), a])
            .unwrap_err()
            .to_string()
            .contains("has 2 model artifacts"));
    }

    #[test]
    fn parts_are_substituted_by_the_rules() {
        let files = format!("sha256:{}", "cd".repeat(32));
        let full = Resolved {
            component: Some("sha256:comp".into()),
            uri: Some(files.clone()),
        };
        let reg = "model-registry://iris/v1";
        let ok = |_: Field, _: &str| Ok::<_, ()>(full.clone());
        // A component brings the files; storageUri given by hand wins.
        assert_eq!(
            substitute(reg, None, ok).unwrap(),
            ("sha256:comp".into(), Some(files.clone()))
        );
        assert_eq!(
            substitute(reg, Some("models/iris"), ok).unwrap(),
            ("sha256:comp".into(), Some("models/iris".into()))
        );
        // A storageUri brings only the files.
        assert_eq!(
            substitute("iris.wasm", Some(reg), ok).unwrap(),
            ("iris.wasm".into(), Some(files.clone()))
        );
        // Nothing to look up: unchanged, and no lookup.
        let never = |_: Field, _: &str| -> Result<Resolved, ()> { panic!("looked up") };
        assert_eq!(
            substitute("sha256:x", Some("sha256:y"), never).unwrap(),
            ("sha256:x".into(), Some("sha256:y".into()))
        );
        assert_eq!(
            uris(reg, Some(reg)),
            vec![(Field::Component, reg), (Field::StorageUri, reg)]
        );
        // Refusals name the field and the URI.
        let no_component = |_: Field, _: &str| {
            Ok::<_, ()>(Resolved {
                component: None,
                uri: Some(files.clone()),
            })
        };
        match substitute(reg, None, no_component) {
            Err(PartError::Refused { field, message }) => {
                assert_eq!(field, Field::Component);
                assert!(
                    message.contains("registered without a component"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        let outside = |_: Field, _: &str| {
            Ok::<_, ()>(Resolved {
                component: Some("sha256:c".into()),
                uri: Some("s3://b/m".into()),
            })
        };
        match substitute("c.wasm", Some(reg), outside) {
            Err(PartError::Refused { field, message }) => {
                assert_eq!(field, Field::StorageUri);
                assert!(
                    message.contains("outside Weft's artifact store"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        match substitute(reg, None, |f, u| Err::<Resolved, _>((f, u.to_string()))) {
            Err(PartError::Lookup((Field::Component, u))) => assert_eq!(u, reg),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("iris v1&x=1/é"), "iris%20v1%26x%3D1%2F%C3%A9");
        assert_eq!(encode("a-b_c.d~"), "a-b_c.d~");
    }
}
