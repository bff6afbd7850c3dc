//! What an inference service serves: its registered model (`/inference_services/{id}/model`)
//! and its model version (`/inference_services/{id}/version`: the one it names, or else the
//! model's latest by creation, as upstream's document says).

use crate::entity::from_row;
use crate::error::ApiError;
use crate::handlers::Got;
use crate::model::*;
use crate::ops::{self, blocking, Scoped};
use axum::extract::Path;
use axum::Json;
use weft_store::{RegistryKind, RegistryOrder, RegistryPage, RegistryWhere};

pub(crate) async fn model(s: Scoped, Path(id): Path<String>) -> Got<RegisteredModel> {
    blocking(move || {
        let service = service(&s, &id)?;
        let model = service.registered_model_id.unwrap_or_default();
        Ok(Json(from_row(&ops::get_row::<RegisteredModel>(
            &s, &model,
        )?)?))
    })
    .await
}

pub(crate) async fn version(s: Scoped, Path(id): Path<String>) -> Got<ModelVersion> {
    blocking(move || {
        let service = service(&s, &id)?;
        if let Some(v) = service.model_version_id.as_deref() {
            return Ok(Json(from_row(&ops::get_row::<ModelVersion>(&s, v)?)?));
        }
        let model = service.registered_model_id.unwrap_or_default();
        let model = ops::get_row::<RegisteredModel>(&s, &model)?;
        latest_version(&s, model.id)?.map(Json).ok_or_else(|| {
            ApiError::not_found(format!("registered model {} has no versions", model.id))
        })
    })
    .await
}

fn service(store: &Scoped, id: &str) -> Result<InferenceService, ApiError> {
    from_row(&ops::get_row::<InferenceService>(store, id)?)
}

/// The version of `model` made last.
fn latest_version(store: &Scoped, model: i64) -> Result<Option<ModelVersion>, ApiError> {
    let page = RegistryPage {
        order: RegistryOrder::CreateTime,
        descending: true,
        limit: 1,
        after: None,
    };
    let under = [RegistryWhere::eq("parent", model)];
    let (rows, _) = store.list(RegistryKind::ModelVersion, &under, &page)?;
    rows.first().map(from_row).transpose()
}
