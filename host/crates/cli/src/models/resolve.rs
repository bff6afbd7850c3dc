//! `model-registry://NAME/VERSION`: a registered model version as an InferenceService's
//! component or storageUri, resolved through the registry to the digests of its component and
//! its model files in this home's stores. The name is looked up in one registry namespace
//! (for `wasm-run serve -f`, the InferenceService's own: see `inference_file`).

use super::client::{text, Client};
use crate::home::Home;
use anyhow::Result;
use weft_spec::model_registry as registry;

pub use registry::{Resolved, SCHEME};

/// NAME and VERSION of `model-registry://NAME/VERSION`.
pub fn parse(uri: &str) -> Result<(&str, &str)> {
    Ok(registry::parse(uri)?)
}

/// The component and model URI `uri` names; an error naming the model and version when either
/// is missing or archived (the reading of the registry's answers is `weft_spec::model_registry`,
/// the operator's too).
pub fn resolve(home: &Home, uri: &str, namespace: &str) -> Result<Resolved> {
    let (name, version) = parse(uri)?;
    let client = Client::open(home, namespace)?;
    let model = client.model(name)?;
    registry::check_model(name, &model)?;
    let found = client.version(&model, version)?;
    registry::check_version(name, version, &found)?;
    let artifacts = client.model_artifacts(text(&found, "id"))?;
    Ok(registry::served(name, version, &artifacts)?)
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
