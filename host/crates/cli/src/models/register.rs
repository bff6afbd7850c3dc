//! A new model version: the registered model (made on first use), the version with its
//! custom properties, and its model artifact, written through the registry's API. Everything
//! that can be refused is checked before anything is written.

use super::client::{text, Client};
use anyhow::{bail, Result};
use serde_json::{json, Map, Value};
use weft_spec::ParamValue;

/// Custom properties Weft writes itself; `--property` may not set them.
pub const RESERVED: &str = "weft.";
/// The model artifact's custom property naming its `weft:serve/predictor` component.
pub const COMPONENT: &str = weft_spec::model_registry::COMPONENT;

/// What made a version: a task's output artifact in a pipeline run.
pub struct Source {
    pub run_id: String,
    pub pipeline: String,
    pub task: String,
    pub output: String,
    pub digest: String,
}

/// A version to register.
#[derive(Default)]
pub struct NewVersion {
    pub model: String,
    pub version: String,
    /// Where the model's files are: `sha256:<hex>` (an artifact in the store) or any URI.
    pub uri: Option<String>,
    /// The serving component, `sha256:<hex>` of the artifact holding it.
    pub component: Option<String>,
    pub format: Option<String>,
    pub format_version: Option<String>,
    pub description: Option<String>,
    pub author: Option<String>,
    pub metadata: Vec<(String, Value)>,
    pub source: Option<Source>,
}

/// The entities registered.
pub struct Registered {
    pub model: Value,
    pub version: Value,
    pub artifact: Value,
}

/// `--property KEY=VALUE` (type inferred) or `KEY:TYPE=VALUE` as a custom property.
pub fn parse_metadata(arg: &str) -> Result<(String, Value), String> {
    let (key, value) = ParamValue::parse_assignment(arg).map_err(|e| format!("`{arg}`: {e}"))?;
    if key.starts_with(RESERVED) {
        return Err(format!(
            "`{arg}`: keys starting with `{RESERVED}` are Weft's own (lineage, component)"
        ));
    }
    let value = match value {
        ParamValue::Float(x) if !x.is_finite() => {
            return Err(format!("`{arg}`: {x} is not a finite number"))
        }
        other => metadata_value(&other),
    };
    Ok((key, value))
}

/// A parameter value as a `MetadataValue`; JSON as its text.
fn metadata_value(v: &ParamValue) -> Value {
    match v {
        ParamValue::String(s) => string_value(s),
        ParamValue::Int(i) => {
            json!({"metadataType": "MetadataIntValue", "int_value": i.to_string()})
        }
        ParamValue::Float(x) => json!({"metadataType": "MetadataDoubleValue", "double_value": x}),
        ParamValue::Bool(b) => json!({"metadataType": "MetadataBoolValue", "bool_value": b}),
        ParamValue::Json(j) => string_value(&j.to_string()),
    }
}

fn string_value(s: &str) -> Value {
    json!({"metadataType": "MetadataStringValue", "string_value": s})
}

/// A custom property as text, whatever its type.
pub fn property_text(v: &Value) -> String {
    for field in ["string_value", "int_value", "double_value", "bool_value"] {
        match &v[field] {
            Value::Null => continue,
            Value::String(s) => return s.clone(),
            other => return other.to_string(),
        }
    }
    v.to_string()
}

/// Checks that `version` of `model` can be registered: a usable name, the model (if it
/// exists) live, the version not taken. Returns the model, if it exists.
pub fn check_new(client: &Client, model: &str, version: &str) -> Result<Option<Value>> {
    if model.is_empty() || model.contains('/') {
        bail!("model name `{model}`: give a non-empty name without `/` (it is the NAME of model-registry://NAME/VERSION)");
    }
    if version.is_empty() {
        bail!("model `{model}`: the version name is empty");
    }
    let Some(found) = client.find_model(model)? else {
        return Ok(None);
    };
    if found["state"] == "ARCHIVED" {
        bail!("model `{model}` is archived: no new versions can be registered under it");
    }
    if client.find_version(text(&found, "id"), version)?.is_some() {
        bail!("model `{model}` already has a version `{version}`: versions are immutable, name a new one");
    }
    Ok(Some(found))
}

/// Registers `new`, after [`check_new`].
pub fn register(client: &Client, new: &NewVersion) -> Result<Registered> {
    let found = check_new(client, &new.model, &new.version)?;
    let model = match found {
        Some(m) => m,
        None => {
            let mut body = json!({"name": new.model});
            if let Some(author) = &new.author {
                body["owner"] = json!(author);
            }
            client.create_model(&body)?
        }
    };
    let version = client.create_version(text(&model, "id"), &version_body(new))?;
    let artifact = client.create_artifact(text(&version, "id"), &artifact_body(new))?;
    Ok(Registered {
        model,
        version,
        artifact,
    })
}

fn version_body(new: &NewVersion) -> Value {
    let mut props: Map<String, Value> = new.metadata.iter().cloned().collect();
    if let Some(s) = &new.source {
        for (k, v) in [
            ("weft.run", &s.run_id),
            ("weft.pipeline", &s.pipeline),
            ("weft.task", &s.task),
            ("weft.output", &s.output),
            ("weft.digest", &s.digest),
        ] {
            props.insert(k.into(), string_value(v));
        }
    }
    let mut body = json!({"name": new.version, "customProperties": props});
    if let Some(d) = &new.description {
        body["description"] = json!(d);
    }
    if let Some(a) = &new.author {
        body["author"] = json!(a);
    }
    body
}

/// The model artifact: its URI and format, the component, and, from a run, upstream's
/// `modelSource*` fields as KFP fills them (kind, class `pipelinerun`, the run's id and name).
fn artifact_body(new: &NewVersion) -> Value {
    let mut props = Map::new();
    if let Some(c) = &new.component {
        props.insert(COMPONENT.into(), string_value(c));
    }
    let mut body = json!({
        "artifactType": "model-artifact",
        "name": new.version,
        "state": "LIVE",
        "customProperties": props,
    });
    let fields = [
        ("uri", new.uri.as_deref()),
        ("modelFormatName", new.format.as_deref()),
        ("modelFormatVersion", new.format_version.as_deref()),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    if let Some(s) = &new.source {
        body["modelSourceKind"] = json!("weft");
        body["modelSourceClass"] = json!("pipelinerun");
        body["modelSourceGroup"] = json!(s.pipeline);
        body["modelSourceId"] = json!(s.run_id);
        body["modelSourceName"] = json!(format!("{}.{}", s.task, s.output));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_typed_like_parameters() {
        let v = |a: &str| parse_metadata(a).unwrap().1;
        assert_eq!(v("epochs=300")["int_value"], "300");
        assert_eq!(v("accuracy=0.97")["double_value"], 0.97);
        assert_eq!(v("ok=true")["bool_value"], true);
        assert_eq!(v("tag=x")["string_value"], "x");
        assert_eq!(v("n:string=3")["string_value"], "3");
        assert_eq!(property_text(&v("epochs=300")), "300");
    }

    #[test]
    fn bad_metadata_is_named() {
        for bad in ["novalue", "=x", "n:int=abc", "weft.run=x", "x=1e999"] {
            let e = parse_metadata(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
