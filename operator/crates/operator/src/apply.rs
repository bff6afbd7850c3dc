//! Writing children: server-side apply under one field manager, owned by their resource.

use crate::{Error, MANAGED_BY, MANAGER};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// Server-side applies `object` (forcing ownership of the fields it sets: the operator is
/// the only writer of its children).
pub async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let params = PatchParams::apply(MANAGER).force();
    Ok(api.patch(name, &params, &Patch::Apply(object)).await?)
}

/// Server-side applies `status` as the status of `name`.
pub async fn status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// Deletes `name`, taking "already gone" as done.
pub async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes every `K` in `api`'s namespace that `selector` selects (background propagation).
pub async fn delete_selected<K>(api: &Api<K>, selector: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    api.delete_collection(
        &DeleteParams::background(),
        &kube::api::ListParams::default().labels(selector),
    )
    .await?;
    Ok(())
}

/// The owner reference that makes `owner` the controller of a child (garbage-collected with it).
pub fn owner<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    owner
        .controller_owner_ref(&())
        .expect("a stored resource has a name and uid")
}

/// The labels of a child of `kind` named `name`.
pub fn labels(kind_label: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (kind_label.to_string(), name.to_string()),
    ])
}

/// A child's name: `base-suffix`, cut to Kubernetes' 63 characters.
pub fn child_name(base: &str, suffix: &str) -> String {
    let keep = 63 - suffix.len() - 1;
    let base = &base[..base.len().min(keep)];
    format!("{}-{suffix}", base.trim_end_matches('-'))
}
