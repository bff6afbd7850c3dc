//! Weft's model registry: Kubeflow Model Registry's REST API (v1alpha3) over the metadata
//! store, so the `model-registry` Python client works against it unchanged.
//!
//! Served under `/api/model_registry/v1alpha3/` and, with the same handlers, under
//! `/api/model_registry/v1/`, the prefix the current PyPI client (0.3) speaks:
//!
//! - registered models (`/registered_models`, `/registered_model`, `/{id}`, `/{id}/versions`);
//! - model versions (`/model_versions`, `/model_version`, `/{id}`, `/{id}/artifacts`);
//! - artifacts: model artifacts (`/model_artifacts`, `/model_artifact`, `/{id}`) and all
//!   artifact types (`/artifacts`, `/artifact`, `/{id}`: model, doc, dataset, metric,
//!   parameter);
//! - serving environments (`/serving_environments`, `/serving_environment`, `/{id}`,
//!   `/{id}/inference_services`);
//! - inference services (`/inference_services`, `/inference_service`, `/{id}`, `/{id}/model`,
//!   `/{id}/version`, `/{id}/serves` of `ServeModel`s);
//! - experiments (`/experiments`, `/experiment`, `/{id}`, `/{id}/experiment_runs`) and
//!   experiment runs (`/experiment_runs`, `/experiment_run`, `/{id}`, `/{id}/artifacts`,
//!   `/{id}/metric_history`, and `/experiment_runs/metric_history` across runs).
//!
//! Each kind has list (paged by `pageSize`/`nextPageToken`, ordered by `orderBy`/`sortOrder`,
//! filtered by `filterQuery`: see [`filter`]), find (by `name`/`externalId`, with
//! `parentResourceId` where upstream has it), get, create (POST) and update (PATCH); errors
//! are `{code, message}`: 400 naming the field at fault, 404 for unknown ids, 409 for taken
//! names. A metric posted to a run's artifacts is also kept in the run's metric history (one
//! entry per post, filtered by `name` and `stepIds`).
//!
//! Beyond upstream (which has no DELETE: kubeflow/hub#468), `DELETE` on
//! `/registered_models/{id}`, `/model_versions/{id}`, `/model_artifacts/{id}` and
//! `/artifacts/{id}`: 204 when done, 404 for an unknown id, 409 naming the inference service
//! while one that is `DEPLOYED` serves the model, the version (named, or as the model's latest
//! when it names none) or the artifact's version. Deleting a model deletes its versions and
//! their artifacts, a version its artifacts, in one transaction. Undeployed services naming
//! what was deleted are kept; their `/model` and `/version` answer 404.
//!
//! The API's OpenAPI 3.1 document, made from the code ([`openapi`]), is served as
//! `openapi.json` and `openapi.yaml` under each prefix.
//!
//! Every row is in a namespace, and every request works in one: named by the query
//! parameter `namespace` or the header `X-Weft-Namespace` (both at once must agree), else the
//! server's default (`default`). A row of another namespace is not there for the request: its
//! get, patch or delete is a 404, lists, finds and `filterQuery` see the request's namespace
//! only, names (and external ids) are unique per namespace, a parent must be in the
//! namespace, and DELETE's check for a deployed inference service looks in the namespace. A
//! server may accept some namespaces only ([`router_for`], [`restrict`]: `wasm-run ui
//! --namespace NS`): a request for another is a 403, refused before anything is read or
//! stored. See [`namespace`].
//!
//! The store is the metadata store's database, SQLite or PostgreSQL
//! ([`RegistryStore::connect`] takes the location `MetadataStore::connect` does); the same
//! API, `filterQuery` included, on both.

mod artifacts;
mod entity;
pub mod error;
pub mod filter;
mod handlers;
pub mod model;
pub mod namespace;
pub mod openapi;
mod ops;
pub mod paging;
mod serving;

use axum::routing::get;
use axum::Router;
use entity::MetricRecord;
use error::ApiError;
use handlers::{create, create_under, delete, find, list, list_under, update};
use model::*;
use std::sync::Arc;
use weft_store::RegistryStore;

pub use namespace::{restrict, router_for, Namespaces};
pub use weft_store::RegistryStore as Registry;

/// Where the API is served: the prefix of the spec, and the one the current client uses.
pub const PREFIXES: &[&str] = &["/api/model_registry/v1alpha3", "/api/model_registry/v1"];

/// The registry's routes over `store`, for any namespace (`default` when a request names none).
pub fn router(store: Arc<RegistryStore>) -> Router {
    let api = models(Router::new())
        .merge(serving_routes(Router::new()))
        .merge(experiment_routes(Router::new()))
        .route("/openapi.json", get(openapi::json))
        .route("/openapi.yaml", get(openapi::yaml))
        .with_state(store);
    let mut router = Router::new();
    for prefix in PREFIXES {
        router = router.nest(prefix, api.clone());
    }
    router.fallback(|| async { ApiError::not_found("no such path in the model registry API") })
}

type Routes = Router<ops::Store>;

fn models(r: Routes) -> Routes {
    type M = RegisteredModel;
    type V = ModelVersion;
    type A = Artifact;
    type MA = ModelArtifact;
    r.route("/registered_models", get(list::<M>).post(create::<M, M>))
        .route("/registered_model", get(find::<M>))
        .route(
            "/registered_models/{id}",
            get(handlers::get::<M>)
                .patch(update::<M>)
                .delete(delete::<M>),
        )
        .route(
            "/registered_models/{id}/versions",
            get(list_under::<M, V>).post(create_under::<M, V>),
        )
        .route("/model_versions", get(list::<V>).post(create::<M, V>))
        .route("/model_version", get(find::<V>))
        .route(
            "/model_versions/{id}",
            get(handlers::get::<V>)
                .patch(update::<V>)
                .delete(delete::<V>),
        )
        .route(
            "/model_versions/{id}/artifacts",
            get(list_under::<V, A>).post(artifacts::upsert_for_version),
        )
        .route("/model_artifacts", get(list::<MA>).post(create::<MA, MA>))
        .route("/model_artifact", get(find::<MA>))
        .route(
            "/model_artifacts/{id}",
            get(handlers::get::<MA>)
                .patch(update::<MA>)
                .delete(delete::<MA>),
        )
        .route("/artifacts", get(list::<A>).post(create::<A, A>))
        .route("/artifact", get(find::<A>))
        .route(
            "/artifacts/{id}",
            get(handlers::get::<A>)
                .patch(update::<A>)
                .delete(delete::<A>),
        )
}

fn serving_routes(r: Routes) -> Routes {
    type E = ServingEnvironment;
    type S = InferenceService;
    r.route("/serving_environments", get(list::<E>).post(create::<E, E>))
        .route("/serving_environment", get(find::<E>))
        .route(
            "/serving_environments/{id}",
            get(handlers::get::<E>).patch(update::<E>),
        )
        .route(
            "/serving_environments/{id}/inference_services",
            get(list_under::<E, S>).post(create_under::<E, S>),
        )
        .route("/inference_services", get(list::<S>).post(create::<E, S>))
        .route("/inference_service", get(find::<S>))
        .route(
            "/inference_services/{id}",
            get(handlers::get::<S>).patch(update::<S>),
        )
        .route("/inference_services/{id}/model", get(serving::model))
        .route("/inference_services/{id}/version", get(serving::version))
        .route(
            "/inference_services/{id}/serves",
            get(list_under::<S, ServeModel>).post(create_under::<S, ServeModel>),
        )
}

fn experiment_routes(r: Routes) -> Routes {
    type X = Experiment;
    type R = ExperimentRun;
    r.route("/experiments", get(list::<X>).post(create::<X, X>))
        .route("/experiment", get(find::<X>))
        .route(
            "/experiments/{id}",
            get(handlers::get::<X>).patch(update::<X>),
        )
        .route(
            "/experiments/{id}/experiment_runs",
            get(list_under::<X, R>).post(create_under::<X, R>),
        )
        .route("/experiment_runs", get(list::<R>).post(create::<X, R>))
        .route("/experiment_run", get(find::<R>))
        .route("/experiment_runs/metric_history", get(list::<MetricRecord>))
        .route(
            "/experiment_runs/{id}",
            get(handlers::get::<R>).patch(update::<R>),
        )
        .route(
            "/experiment_runs/{id}/artifacts",
            get(list_under::<R, Artifact>).post(artifacts::upsert_for_run),
        )
        .route(
            "/experiment_runs/{id}/metric_history",
            get(list_under::<R, MetricRecord>),
        )
}
