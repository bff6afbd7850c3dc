//! The API's OpenAPI 3.1 document, made from the code: the schemas are the `ToSchema` derives
//! of [`crate::model`] (so field names are the ones serde writes: camelCase, custom properties
//! as `MetadataValue`s tagged by `metadataType`), the query parameters are the fields of the
//! query types the handlers read ([`ListQuery`], [`FindQuery`]), and the operations follow
//! the router route by route (the handlers are generic over the entity, so one annotated
//! function could not name each path; `tests/openapi.rs` checks every route the router
//! answers is here with its methods, and no other).
//!
//! Every operation takes the request's namespace ([`crate::namespace`]) as the query parameter
//! `namespace` or the header `X-Weft-Namespace`, and may answer 400 for a bad one and 403 for
//! one a restricted server does not serve.
//!
//! Served as `openapi.json` and `openapi.yaml` under each prefix; its paths are relative to
//! the servers it lists, the two prefixes.

use crate::entity::Entity;
use crate::model::*;
use crate::namespace::DEFAULT_NAMESPACE;
use crate::ops::FindQuery;
use crate::paging::{ListQuery, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::PREFIXES;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::sync::OnceLock;
use utoipa::openapi::path::Parameter as Param;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::schema::{AnyOfBuilder, Discriminator, SchemaType, Type};
use utoipa::openapi::*;
use utoipa::{PartialSchema, ToSchema};
use weft_store::RegistryKind;

/// The document, made once.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(build)
}

/// `GET openapi.json`.
pub(crate) async fn json() -> impl IntoResponse {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(|| document().to_pretty_json().expect("the document is JSON"));
    ([(CONTENT_TYPE, "application/json")], text.as_str())
}

/// `GET openapi.yaml`.
pub(crate) async fn yaml() -> impl IntoResponse {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(|| document().to_yaml().expect("the document is YAML"));
    ([(CONTENT_TYPE, "application/yaml")], text.as_str())
}

const DESCRIPTION: &str = "Kubeflow Model Registry's REST API (v1alpha3) as Weft serves it. \
Lists are paged by `pageSize`/`nextPageToken`, ordered by `orderBy`/`sortOrder` and filtered \
by `filterQuery`; finds take a `name` or an `externalId`. Every error is an `Error`: `code` is \
the status as text. Beyond upstream, Weft serves `DELETE` on registered models, model \
versions and artifacts (marked `x-weft-extension`). Every row is in a namespace and every \
request works in one, named by the query parameter `namespace` or the header \
`X-Weft-Namespace` (the two agreeing when both are given), else the server's default: another \
namespace's rows are not there for it (404), and names are unique per namespace. A server \
restricted to some namespaces answers a request for another with 403.";

fn build() -> OpenApi {
    let mut d = Doc::default();
    models(&mut d);
    serving(&mut d);
    experiments(&mut d);
    d.document_routes();
    let servers = PREFIXES.iter().map(|p| Server::new(*p));
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Weft model registry")
                .version("v1alpha3")
                .description(Some(DESCRIPTION))
                .license(Some(License::new("Apache-2.0")))
                .build(),
        )
        .servers(Some(servers))
        .paths(d.paths.build())
        .components(Some(schemas()))
        .build()
}

/// The operations, as `crate::router` routes them.
fn models(d: &mut Doc) {
    type M = RegisteredModel;
    type V = ModelVersion;
    type A = Artifact;
    type MA = ModelArtifact;
    d.collection::<M, M>("/registered_models", "/registered_model", true);
    d.children::<M, V>("/registered_models/{id}/versions");
    d.collection::<M, V>("/model_versions", "/model_version", true);
    d.list::<V, A>("/model_versions/{id}/artifacts");
    d.upsert_artifact("/model_versions/{id}/artifacts", "model version");
    d.collection::<MA, MA>("/model_artifacts", "/model_artifact", true);
    d.collection::<A, A>("/artifacts", "/artifact", true);
}

fn serving(d: &mut Doc) {
    type E = ServingEnvironment;
    type S = InferenceService;
    type M = RegisteredModel;
    d.collection::<E, E>("/serving_environments", "/serving_environment", false);
    d.children::<E, S>("/serving_environments/{id}/inference_services");
    d.collection::<E, S>("/inference_services", "/inference_service", false);
    d.got::<S, M>(
        "/inference_services/{id}/model",
        "The registered model the service serves.",
    );
    d.got::<S, ModelVersion>(
        "/inference_services/{id}/version",
        "The model version the service serves: the one it names, or else its model's latest.",
    );
    d.children::<S, ServeModel>("/inference_services/{id}/serves");
}

fn experiments(d: &mut Doc) {
    type X = Experiment;
    type R = ExperimentRun;
    d.collection::<X, X>("/experiments", "/experiment", false);
    d.children::<X, R>("/experiments/{id}/experiment_runs");
    d.collection::<X, R>("/experiment_runs", "/experiment_run", false);
    d.metric_history(None);
    d.list::<R, Artifact>("/experiment_runs/{id}/artifacts");
    d.upsert_artifact("/experiment_runs/{id}/artifacts", "experiment run");
    d.metric_history(Some("/experiment_runs/{id}/metric_history"));
}

/// The component schemas: every API type, a `<Type>List` page of each listed type, a
/// `<Type>Update` (every field optional) for each type a PATCH takes, and `Error`.
fn schemas() -> Components {
    let mut all = Vec::new();
    fn add<T: ToSchema>(all: &mut Vec<(String, RefOr<Schema>)>) {
        T::schemas(all);
        all.push((T::name().into_owned(), T::schema()));
    }
    fn listed<T: ToSchema>(all: &mut Vec<(String, RefOr<Schema>)>, update: bool) {
        add::<T>(all);
        all.push((format!("{}List", T::name()), List::<T>::schema()));
        if update {
            let mut s = T::schema();
            if let RefOr::T(Schema::Object(o)) = &mut s {
                o.required.clear();
                o.description = Some(format!(
                    "The fields of a `{}` to change (`name`, `id` and the times cannot be).",
                    T::name()
                ));
            }
            all.push((format!("{}Update", T::name()), s));
        }
    }
    add::<MetadataValue>(&mut all);
    add::<Error>(&mut all);
    listed::<RegisteredModel>(&mut all, true);
    listed::<ModelVersion>(&mut all, true);
    listed::<ModelArtifact>(&mut all, true);
    add::<DocArtifact>(&mut all);
    add::<DataSet>(&mut all);
    listed::<Metric>(&mut all, false);
    add::<Parameter>(&mut all);
    listed::<Artifact>(&mut all, false);
    listed::<ServingEnvironment>(&mut all, true);
    listed::<InferenceService>(&mut all, true);
    listed::<ServeModel>(&mut all, false);
    listed::<Experiment>(&mut all, true);
    listed::<ExperimentRun>(&mut all, true);
    let typed = [
        (ModelArtifact::name(), MODEL_ARTIFACT),
        (DocArtifact::name(), DOC_ARTIFACT),
        (DataSet::name(), DATASET_ARTIFACT),
        (Metric::name(), METRIC),
        (Parameter::name(), PARAMETER),
    ];
    for (name, schema) in &mut all {
        if let Some((_, t)) = typed.iter().find(|(n, _)| n == name) {
            // Each artifact type names itself: `artifactType` tells them apart.
            if let RefOr::T(Schema::Object(o)) = schema {
                let own = ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                    .enum_values(Some([Some(*t), None]))
                    .description(Some(format!("`{t}`; set when stored.")));
                o.properties.insert("artifactType".into(), own.into());
            }
        }
        if name == "Artifact" {
            if let RefOr::T(Schema::OneOf(one)) = schema {
                let mapping = typed
                    .iter()
                    .map(|(n, t)| (*t, format!("#/components/schemas/{n}")));
                one.discriminator = Some(Discriminator::with_mapping("artifactType", mapping));
                one.description = Some(
                    "Any artifact, told apart by `artifactType` (required when a request \
                     names no type otherwise)."
                        .into(),
                );
            }
        }
        if name == "MetadataValue" {
            // Unknown fields are refused (`deny_unknown_fields`), as in every other type.
            if let RefOr::T(Schema::OneOf(one)) = schema {
                for v in &mut one.items {
                    if let RefOr::T(Schema::Object(o)) = v {
                        o.additional_properties =
                            Some(Box::new(AdditionalProperties::FreeForm(false)));
                    }
                }
            }
        }
    }
    let updates = [
        ModelArtifact::name(),
        DocArtifact::name(),
        DataSet::name(),
        Metric::name(),
        Parameter::name(),
    ];
    let mut any = AnyOfBuilder::new().description(Some(
        "The fields of an artifact to change, of its type (`artifactType` cannot change).",
    ));
    for name in updates {
        let mut s = all.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        if let RefOr::T(Schema::Object(o)) = &mut s {
            o.required.clear();
        }
        any = any.item(s);
    }
    all.push(("ArtifactUpdate".into(), any.into()));
    ComponentsBuilder::new().schemas_from_iter(all).build()
}

/// The paths as they are built.
#[derive(Default)]
struct Doc {
    paths: PathsBuilder,
}

/// `Type` as words: `ModelVersion` is "model version".
fn noun<T: ToSchema>() -> String {
    let mut out = String::new();
    for c in T::name().chars() {
        if c.is_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out.replace("data set", "dataset")
}

fn json_content(schema: impl Into<RefOr<Schema>>) -> Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn reply(description: &str, schema: Option<String>) -> Response {
    let r = ResponseBuilder::new().description(description);
    match schema {
        Some(s) => r.content("application/json", json_content(Ref::from_schema_name(s))),
        None => r,
    }
    .build()
}

fn error(description: &str) -> Response {
    reply(description, Some("Error".into()))
}

fn id_param(of: &str) -> Param {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(format!("The {of}'s id.")))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]+$")),
        ))
        .build()
}

fn string_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).build()
}

fn enum_schema(values: &[&str], default: Option<&str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .default(default.map(Into::into))
        .build()
}

/// What a list parameter means, by the name [`ListQuery`] reads it by.
fn list_param_doc(name: &str) -> Option<(String, Object)> {
    let text = |s: &str| Some((s.to_string(), string_schema()));
    match name {
        "pageSize" => Some((
            format!(
                "Items per page: {DEFAULT_PAGE_SIZE} when left out, at most {MAX_PAGE_SIZE} \
                 (larger sizes are cut)."
            ),
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                .minimum(Some(1))
                .default(Some(DEFAULT_PAGE_SIZE.into()))
                .build(),
        )),
        "orderBy" => Some((
            "The order of the items.".into(),
            enum_schema(&["CREATE_TIME", "LAST_UPDATE_TIME", "ID"], Some("ID")),
        )),
        "sortOrder" => Some((
            "Ascending or descending.".into(),
            enum_schema(&["ASC", "DESC"], Some("ASC")),
        )),
        "nextPageToken" => text(
            "The `nextPageToken` of the previous page, for the page after it (with the same \
             order).",
        ),
        "filterQuery" => text(
            "Only the items that match: comparisons of fields, or of custom properties by \
             name (`customProperties.NAME`), joined by AND/OR, grouped by parentheses; \
             `=`, `!=`, `<`, `<=`, `>`, `>=`, `LIKE`, `ILIKE`, `IN (...)`; strings quoted.",
        ),
        "artifactType" => Some((
            "Only the artifacts of this type.".into(),
            enum_schema(
                &[
                    MODEL_ARTIFACT,
                    DOC_ARTIFACT,
                    DATASET_ARTIFACT,
                    METRIC,
                    PARAMETER,
                ],
                None,
            ),
        )),
        "name" => text("Only the items with this name."),
        "externalId" => text("Only the items with this external id."),
        "stepIds" => Some((
            "Only the values logged at these steps: numbers separated by commas (`1,2,3`).".into(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^ *-?[0-9]+ *(, *-?[0-9]+ *)*$"))
                .build(),
        )),
        _ => None,
    }
}

/// What a find parameter means, by the name [`FindQuery`] reads it by.
fn find_param_doc(name: &str) -> Option<&'static str> {
    match name {
        "name" => Some("The name of the item (a `name` or an `externalId` is required)."),
        "externalId" => Some("The external id of the item."),
        "parentResourceId" => {
            Some("The id of the item's parent, where names are unique per parent.")
        }
        _ => None,
    }
}

/// The schema of a namespace name (a Kubernetes namespace's).
fn namespace_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))
        .max_length(Some(63))
        .build()
}

/// The two ways a request names its namespace: the query parameter and the header.
fn namespace_params() -> [Param; 2] {
    let text = |other: &str| {
        format!(
            "The namespace the request works in (lowercase letters, digits and `-`, at most \
             63): only its rows are seen, and what is made is made in it. Left out (and no \
             {other} given), the server's default: `{DEFAULT_NAMESPACE}`, or the first \
             namespace a restricted server serves. Given with the {other}, the two must agree."
        )
    };
    [
        query_param(
            "namespace",
            text("`X-Weft-Namespace` header"),
            namespace_schema(),
        ),
        ParameterBuilder::new()
            .name(NAMESPACE_HEADER_NAME)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(text("`namespace` query parameter")))
            .schema(Some(namespace_schema()))
            .build(),
    ]
}

/// The header as the document spells it (HTTP header names are case-insensitive).
pub const NAMESPACE_HEADER_NAME: &str = "X-Weft-Namespace";

const NAMESPACE_400: &str = "The namespace is invalid, or the query parameter and the header \
name two.";
const NAMESPACE_403: &str = "The namespace is not served here: the server is restricted to \
others (`wasm-run ui --namespace`).";

fn query_param(name: &str, description: String, schema: Object) -> Param {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// The query fields `T` is deserialized from, as serde names them.
pub(crate) fn serde_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Capture(Option<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for &mut Capture {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(de::Error::custom("fields captured"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut c = Capture(None);
    let _ = T::deserialize(&mut c);
    c.0.unwrap_or_default()
}

/// A list's query parameters: [`ListQuery`]'s fields, those a list of `T` heeds.
fn list_params<T: ToSchema>(history: bool) -> Vec<Param> {
    let artifacts = T::name() == Artifact::name();
    serde_fields::<ListQuery>()
        .iter()
        .filter(|f| match **f {
            "artifactType" => artifacts,
            "stepIds" => history,
            _ => true,
        })
        .map(|f| {
            let (text, schema) = list_param_doc(f).unwrap_or_default();
            query_param(f, text, schema)
        })
        .collect()
}

impl Doc {
    fn add(&mut self, path: &str, method: HttpMethod, op: OperationBuilder) {
        let verb = match method {
            HttpMethod::Get => "get",
            HttpMethod::Post => "post",
            HttpMethod::Patch => "patch",
            HttpMethod::Delete => "delete",
            _ => "other",
        };
        let id = format!("{verb}{path}");
        let id: String = id
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        let [query, header] = namespace_params();
        let mut op = op
            .operation_id(Some(id))
            .parameter(query)
            .parameter(header)
            .response("403", error(NAMESPACE_403))
            .build();
        // Every operation may be refused for its namespace: said in its own 400, or as one.
        match op.responses.responses.get_mut("400") {
            Some(RefOr::T(r)) => r.description = format!("{} Or: {NAMESPACE_400}", r.description),
            _ => {
                op.responses
                    .responses
                    .insert("400".into(), error(NAMESPACE_400).into());
            }
        }
        let paths = std::mem::take(&mut self.paths);
        self.paths = paths.path(path, PathItem::new(method, op));
    }

    fn op(tag: String, summary: String) -> OperationBuilder {
        OperationBuilder::new()
            .tag(tag)
            .summary(Some(summary))
            .response("default", error("An error: `code` is the status as text."))
    }

    /// The routes every top-level kind has: list and create at `plural`, find at
    /// `singular`, get and update (and delete, Weft's extension) at `plural/{id}`. A `T`
    /// created at `plural` names its `P` in its parent field.
    fn collection<P: Entity + ToSchema, T: Entity + ToSchema>(
        &mut self,
        plural: &str,
        singular: &str,
        delete: bool,
    ) {
        let name = T::name().into_owned();
        let parent = noun::<P>();
        let noun = noun::<T>();
        self.list_op::<T>(plural, None, false);
        let mut create = Self::op(name.clone(), format!("Create a {noun}"));
        if let Some(f) = T::PARENT_FIELD {
            create = create.description(Some(format!(
                "`{f}` names the {parent} it is made under (required)."
            )));
        }
        self.create_op::<T>(plural, create);

        let mut find = Self::op(name.clone(), format!("Find a {noun}"));
        let parented = T::PARENT_FIELD.is_some() || T::KIND == RegistryKind::Artifact;
        for f in serde_fields::<FindQuery>() {
            if *f == "parentResourceId" && !parented {
                continue;
            }
            let text = find_param_doc(f).unwrap_or_default().to_string();
            find = find.parameter(query_param(f, text, string_schema()));
        }
        let find = find
            .response("200", reply(&format!("The {noun}."), Some(name.clone())))
            .response("400", error("Neither a name nor an external id was given."))
            .response("404", error(&format!("No {noun} matches.")));
        self.add(singular, HttpMethod::Get, find);

        let item = format!("{plural}/{{id}}");
        let get = Self::op(name.clone(), format!("Get a {noun}"))
            .parameter(id_param(&noun))
            .response("200", reply(&format!("The {noun}."), Some(name.clone())))
            .response("404", error(&format!("No {noun} has this id.")));
        self.add(&item, HttpMethod::Get, get);

        let update = if T::name() == Artifact::name() {
            "ArtifactUpdate".to_string()
        } else {
            format!("{name}Update")
        };
        let patch = Self::op(name.clone(), format!("Update a {noun}"))
            .description(Some(
                "The fields given replace the stored ones (`customProperties` as a whole); \
                 the others are kept.",
            ))
            .parameter(id_param(&noun))
            .request_body(Some(body(&update)))
            .response(
                "200",
                reply(&format!("The {noun} updated."), Some(name.clone())),
            )
            .response("400", error("The body is not a valid update."))
            .response("404", error(&format!("No {noun} has this id.")))
            .response("409", error("The update conflicts with another item."));
        self.add(&item, HttpMethod::Patch, patch);

        if delete {
            let what = match T::KIND {
                RegistryKind::RegisteredModel => "its versions and their artifacts",
                RegistryKind::ModelVersion => "its artifacts",
                _ => "nothing else",
            };
            let ext = extensions::ExtensionsBuilder::new()
                .add("x-weft-extension", true)
                .build();
            let del = Self::op(name.clone(), format!("Delete a {noun}"))
                .description(Some(format!(
                    "Weft's extension (upstream has no DELETE): deletes the {noun} and {what}, \
                     in one transaction. Refused (409, naming the service) while a `DEPLOYED` \
                     inference service serves it."
                )))
                .extensions(Some(ext))
                .parameter(id_param(&noun))
                .response(
                    "204",
                    ResponseBuilder::new().description("Deleted.").build(),
                )
                .response("404", error(&format!("No {noun} has this id.")))
                .response("409", error("A deployed inference service serves it."));
            self.add(&item, HttpMethod::Delete, del);
        }
    }

    /// List and create of the `T`s under the `P` the path names.
    fn children<P: ToSchema, T: Entity + ToSchema>(&mut self, path: &str) {
        self.list::<P, T>(path);
        let create = Self::op(
            T::name().into_owned(),
            format!("Create a {} under a {}", noun::<T>(), noun::<P>()),
        )
        .parameter(id_param(&noun::<P>()));
        let create = match T::PARENT_FIELD {
            Some(f) => create.description(Some(format!(
                "`{f}` may be left out; when given it must be the path's id."
            ))),
            None => create,
        };
        self.create_op::<T>(path, create);
    }

    /// The `T`s under the `P` the path names.
    fn list<P: ToSchema, T: ToSchema>(&mut self, path: &str) {
        self.list_op::<T>(path, Some(noun::<P>()), false);
    }

    fn list_op<T: ToSchema>(&mut self, path: &str, under: Option<String>, history: bool) {
        let noun = noun::<T>();
        let summary = match &under {
            Some(p) => format!("List the {noun}s of a {p}"),
            None => format!("List {noun}s"),
        };
        let mut op = Self::op(T::name().into_owned(), summary);
        if let Some(p) = &under {
            op = op
                .parameter(id_param(p))
                .response("404", error(&format!("No {p} has this id.")));
        }
        for p in list_params::<T>(history) {
            op = op.parameter(p);
        }
        let op = op
            .response(
                "200",
                reply(
                    &format!("A page of {noun}s."),
                    Some(format!("{}List", T::name())),
                ),
            )
            .response("400", error("A parameter is invalid (it is named)."));
        self.add(path, HttpMethod::Get, op);
    }

    fn create_op<T: ToSchema>(&mut self, path: &str, op: OperationBuilder) {
        let name = T::name().into_owned();
        let op = op
            .request_body(Some(body(&name)))
            .response(
                "201",
                reply(&format!("The {} made.", noun::<T>()), Some(name)),
            )
            .response(
                "400",
                error("The body is invalid (the field at fault is named)."),
            )
            .response("404", error("The parent named does not exist."))
            .response("409", error("The name is taken."));
        self.add(path, HttpMethod::Post, op);
    }

    /// A `T` found from the `P` the path names.
    fn got<P: ToSchema, T: ToSchema>(&mut self, path: &str, summary: &str) {
        let op = Self::op(T::name().into_owned(), summary.to_string())
            .parameter(id_param(&noun::<P>()))
            .response("200", reply("Found.", Some(T::name().into_owned())))
            .response("404", error("No such item."));
        self.add(path, HttpMethod::Get, op);
    }

    /// `POST` of an artifact to its owner: a new one (201) or one attached by its `id` (200).
    fn upsert_artifact(&mut self, path: &str, owner: &str) {
        let name = Artifact::name().into_owned();
        let op = Self::op(name.clone(), format!("Add an artifact to a {owner}"))
            .description(Some(
                "Without an `id` the artifact is made (201); with one, that artifact is \
                 attached and the body's fields written over it (200). A metric posted to an \
                 experiment run is also kept in the run's metric history.",
            ))
            .parameter(id_param(owner))
            .request_body(Some(body(&name)))
            .response("200", reply("The artifact attached.", Some(name.clone())))
            .response("201", reply("The artifact made.", Some(name)))
            .response(
                "400",
                error("The body is invalid (the field at fault is named)."),
            )
            .response(
                "404",
                error(&format!("No {owner} (or artifact) has this id.")),
            );
        self.add(path, HttpMethod::Post, op);
    }

    /// A run's metric history (`path`), or every run's (`/experiment_runs/metric_history`).
    fn metric_history(&mut self, path: Option<&str>) {
        let (path, under) = match path {
            Some(p) => (p, Some("experiment run".to_string())),
            None => ("/experiment_runs/metric_history", None),
        };
        self.list_op::<Metric>(path, under, true);
    }

    /// The document's own routes.
    fn document_routes(&mut self) {
        let json = ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
            .build();
        let op = Self::op("OpenAPI".into(), "This document, as JSON".into()).response(
            "200",
            ResponseBuilder::new()
                .description("The OpenAPI document.")
                .content("application/json", json),
        );
        self.add("/openapi.json", HttpMethod::Get, op);
        let yaml = ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build();
        let op = Self::op("OpenAPI".into(), "This document, as YAML".into()).response(
            "200",
            ResponseBuilder::new()
                .description("The OpenAPI document.")
                .content("application/yaml", yaml),
        );
        self.add("/openapi.yaml", HttpMethod::Get, op);
    }
}

fn body(schema: &str) -> request_body::RequestBody {
    RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content(
            "application/json",
            json_content(Ref::from_schema_name(schema)),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_field_is_described() {
        for f in serde_fields::<ListQuery>() {
            assert!(
                list_param_doc(f).is_some(),
                "ListQuery's `{f}` is not described"
            );
        }
        for f in serde_fields::<FindQuery>() {
            assert!(
                find_param_doc(f).is_some(),
                "FindQuery's `{f}` is not described"
            );
        }
        assert!(serde_fields::<ListQuery>().contains(&"pageSize"));
    }
}
