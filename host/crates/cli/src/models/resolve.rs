//! `model-registry://NAME/VERSION`: a registered model version as an InferenceService's
//! component or storageUri, resolved through the registry to the digests of its component and
//! its model files in this home's stores. The name is looked up in one registry namespace
//! (for `wasm-run serve -f`, the InferenceService's own: see `inference_file`).

use super::client::{text, Client};
use super::register::COMPONENT;
use crate::home::Home;
use anyhow::{anyhow, bail, Result};

pub const SCHEME: &str = "model-registry://";

/// What a registered version serves with.
#[derive(Debug)]
pub struct Resolved {
    /// The `weft:serve/predictor` component (`sha256:` of the artifact holding it), if
    /// registered with one.
    pub component: Option<String>,
    /// The model artifact's URI, if it has one.
    pub uri: Option<String>,
}

/// NAME and VERSION of `model-registry://NAME/VERSION`.
pub fn parse(uri: &str) -> Result<(&str, &str)> {
    let rest = uri
        .strip_prefix(SCHEME)
        .ok_or_else(|| anyhow!("`{uri}` is not a {SCHEME} URI"))?;
    match rest.split_once('/') {
        Some((name, version)) if !name.is_empty() && !version.is_empty() => Ok((name, version)),
        _ => bail!("write {SCHEME}NAME/VERSION (the model's name and its version's)"),
    }
}

/// The component and model URI `uri` names; an error naming the model and version when either
/// is missing or archived.
pub fn resolve(home: &Home, uri: &str, namespace: &str) -> Result<Resolved> {
    let (name, version) = parse(uri)?;
    let client = Client::open(home, namespace)?;
    let model = client.model(name)?;
    if model["state"] == "ARCHIVED" {
        bail!("model `{name}` is archived: archived models are not served");
    }
    let found = client.version(&model, version)?;
    if found["state"] == "ARCHIVED" {
        bail!(
            "version `{version}` of model `{name}` is archived: archived versions are not served"
        );
    }
    let artifacts = client.model_artifacts(text(&found, "id"))?;
    let artifact = match artifacts.as_slice() {
        [one] => one,
        [] => bail!("version `{version}` of model `{name}` has no model artifact"),
        more => bail!(
            "version `{version}` of model `{name}` has {} model artifacts: serving needs exactly one",
            more.len()
        ),
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

#[cfg(test)]
mod tests {
    #[test]
    fn names_and_versions_are_parsed() {
        assert_eq!(
            super::parse("model-registry://iris/v1").unwrap(),
            ("iris", "v1")
        );
        assert_eq!(
            super::parse("model-registry://iris/2024/05").unwrap(),
            ("iris", "2024/05")
        );
        for bad in [
            "model-registry://iris",
            "model-registry://iris/",
            "model-registry:///v1",
        ] {
            let e = super::parse(bad).unwrap_err().to_string();
            assert!(e.contains("NAME/VERSION"), "{e}");
        }
    }
}
