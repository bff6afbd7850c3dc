//! Between the API's types and the store's rows. A row keeps the entity's JSON without the
//! fields its columns hold (id, parent, times); reading it back puts them in again.

use crate::error::ApiError;
use crate::filter::{common_field, Field, Ty};
use crate::model::*;
use crate::ops::Scoped;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use weft_store::{RegistryKind, RegistryRow};

mod artifacts;
mod experiments;
mod serving;

pub(crate) use artifacts::MetricRecord;

/// What the generic handlers need to know of a type.
pub(crate) trait Entity: Serialize + DeserializeOwned + Send + 'static {
    const KIND: RegistryKind;
    /// The artifact type the rows must have to be this type (artifacts only).
    const ARTIFACT_TYPE: Option<&'static str> = None;
    /// The JSON field that names the parent (a version's `registeredModelId`).
    const PARENT_FIELD: Option<&'static str> = None;
    /// The fields of this type a `filterQuery` may name, beyond those every entity has.
    const FIELDS: &'static [(&'static str, Field)] = &[];

    /// Where the field a `filterQuery` names is kept; `None` for a custom property.
    fn field(name: &str) -> Option<Field> {
        let own = Self::FIELDS.iter().find(|(n, _)| *n == name);
        common_field(name).or(own.map(|(_, f)| *f))
    }

    /// Upstream's defaults for what a creation left out (the state, no custom properties).
    fn fill_defaults(&mut self);

    /// The value of a request's body (or a row's JSON) as this type, for an artifact of
    /// `artifact_type` when read from a row.
    fn from_value(v: Value, _artifact_type: &str) -> Result<Self, ApiError> {
        typed(v)
    }

    /// Checks what the type cannot say alone (the entities it names exist), before a create
    /// or an update is stored.
    fn validate(&self, _store: &Scoped) -> Result<(), ApiError> {
        Ok(())
    }

    /// The type a new row of this entity gets.
    fn row_artifact_type(&self) -> String {
        Self::ARTIFACT_TYPE.unwrap_or("").to_string()
    }
}

/// `v` as `T`, or a 400 that names the field at fault.
pub(crate) fn typed<T: DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::bad_request(format!("invalid body: {}", e.inner()))
        } else {
            ApiError::bad_request(format!("invalid field `{path}`: {}", e.inner()))
        }
    })
}

/// A request body: JSON, and an object.
pub(crate) fn body_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "invalid body: expected a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!("invalid body: {e}"))),
    }
}

/// The artifact type a body names (`artifactType`), checked to be `want` when given.
pub(crate) fn check_artifact_type(m: &Map<String, Value>, want: &str) -> Result<(), ApiError> {
    match m.get("artifactType") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(t)) if t == want => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid field `artifactType`: expected `{want}`, got {other}"
        ))),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key).and_then(Value::as_str).map(str::to_string)
}

/// `e` as a new row under `parent`, made at `now`.
pub(crate) fn to_row<T: Entity>(e: &T, parent: Option<i64>, now: i64) -> RegistryRow {
    let mut m = match serde_json::to_value(e) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for key in ["id", "createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"] {
        m.remove(key);
    }
    if let Some(f) = T::PARENT_FIELD {
        m.remove(f);
    }
    RegistryRow {
        id: 0,
        parent,
        artifact_type: e.row_artifact_type(),
        name: text(&m, "name"),
        external_id: text(&m, "externalId"),
        state: text(&m, "state"),
        created_ms: now,
        updated_ms: now,
        body_json: Value::Object(m).to_string(),
    }
}

/// The JSON of a row, with its id, parent and times.
pub(crate) fn row_value<T: Entity>(r: &RegistryRow) -> Result<Map<String, Value>, ApiError> {
    let mut m: Map<String, Value> = serde_json::from_str(&r.body_json).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("{} {} is stored damaged: {e}", T::KIND.noun(), r.id),
        )
    })?;
    m.insert("id".into(), r.id.to_string().into());
    m.insert(
        "createTimeSinceEpoch".into(),
        r.created_ms.to_string().into(),
    );
    m.insert(
        "lastUpdateTimeSinceEpoch".into(),
        r.updated_ms.to_string().into(),
    );
    if let (Some(f), Some(p)) = (T::PARENT_FIELD, r.parent) {
        m.insert(f.into(), p.to_string().into());
    }
    Ok(m)
}

pub(crate) fn from_row<T: Entity>(r: &RegistryRow) -> Result<T, ApiError> {
    T::from_value(Value::Object(row_value::<T>(r)?), &r.artifact_type)
}

/// The stored entity `r` with the fields of `patch` written over it: a field given replaces
/// the stored one (custom properties as a whole), a field left out keeps it. The name, the
/// id and the times cannot be changed.
pub(crate) fn patched<T: Entity>(
    r: &RegistryRow,
    patch: Map<String, Value>,
) -> Result<RegistryRow, ApiError> {
    let mut m = row_value::<T>(r)?;
    for (key, value) in patch {
        match key.as_str() {
            "id" | "createTimeSinceEpoch" | "lastUpdateTimeSinceEpoch" => continue,
            "name" if value.is_null() || m.get("name") == Some(&value) => continue,
            "name" => {
                return Err(ApiError::bad_request(
                    "invalid field `name`: a name cannot be changed",
                ))
            }
            k if Some(k) == T::PARENT_FIELD && (value.is_null() || m.get(k) == Some(&value)) => {
                continue
            }
            k if Some(k) == T::PARENT_FIELD => {
                return Err(ApiError::bad_request(format!(
                    "invalid field `{k}`: a {} cannot move to another parent",
                    T::KIND.noun()
                )))
            }
            _ => m.insert(key, value),
        };
    }
    let mut e = T::from_value(Value::Object(m), &r.artifact_type)?;
    e.fill_defaults();
    let mut row = to_row(&e, r.parent, now_ms().max(r.updated_ms));
    row.id = r.id;
    row.created_ms = r.created_ms;
    row.artifact_type = r.artifact_type.clone();
    Ok(row)
}

impl Entity for RegisteredModel {
    const KIND: RegistryKind = RegistryKind::RegisteredModel;
    const FIELDS: &'static [(&'static str, Field)] = MODEL_FIELDS;
    fn fill_defaults(&mut self) {
        self.state.get_or_insert(State::Live);
        self.custom_properties.get_or_insert_with(Default::default);
    }
}

impl Entity for ModelVersion {
    const KIND: RegistryKind = RegistryKind::ModelVersion;
    const PARENT_FIELD: Option<&'static str> = Some("registeredModelId");
    const FIELDS: &'static [(&'static str, Field)] = VERSION_FIELDS;
    fn fill_defaults(&mut self) {
        self.state.get_or_insert(State::Live);
        self.custom_properties.get_or_insert_with(Default::default);
    }
}

pub(crate) const STATE: (&str, Field) = ("state", Field::Col("state", Ty::Text));

pub(crate) const fn json_text(name: &'static str) -> (&'static str, Field) {
    (name, Field::Json(name, Ty::Text))
}

pub(crate) const fn json_int(name: &'static str) -> (&'static str, Field) {
    (name, Field::Json(name, Ty::Int))
}

const MODEL_FIELDS: &[(&str, Field)] = &[
    STATE,
    json_text("owner"),
    json_text("readme"),
    json_text("maturity"),
    json_text("provider"),
    json_text("logo"),
    json_text("license"),
    json_text("licenseLink"),
    json_text("libraryName"),
    ("language", Field::List("language")),
    ("tasks", Field::List("tasks")),
];

const VERSION_FIELDS: &[(&str, Field)] = &[
    STATE,
    ("registeredModelId", Field::Col("parent", Ty::Int)),
    json_text("author"),
];
