//! Makes a derived CRD schema one the API server accepts ("structural"), where the spec types'
//! JSON Schema says things Kubernetes cannot:
//! - `$ref` (recursive types, e.g. nested conditions): the API server allows no references, so
//!   the recursive node keeps its fields unchecked (`x-kubernetes-preserve-unknown-fields`);
//!   the operator and the runner validate the whole spec with weft-spec before running it.
//! - schemas that accept any JSON value (`serde_json::Value` fields, `true`): the same marker.
//! - `additionalProperties: false` next to `properties` (`deny_unknown_fields`): not allowed
//!   together; the API server prunes unknown fields instead.
//! - an untagged enum of scalars (Katib's numbers-or-strings): an `anyOf` of types, which the
//!   API server takes only with a type outside it and none inside; such a node admits any
//!   value instead (`x-kubernetes-preserve-unknown-fields`), and weft-spec checks it.
//! - `definitions`/`$defs`, left behind by the references.

use schemars::{generate::SchemaSettings, JsonSchema, Schema};
use serde_json::{json, Map, Value};

/// The schema of a weft-spec type as a CRD's spec: generated with the settings kube's derive
/// uses (OpenAPI v3, subschemas inlined, Kubernetes' enum and nullable rewrites), then made
/// structural.
pub(crate) fn schema_for<T: JsonSchema>() -> Schema {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .into_generator();
    let mut value =
        serde_json::to_value(generator.into_root_schema_for::<T>()).expect("a schema serialises");
    fix_value(&mut value);
    Schema::try_from(value).expect("a fixed schema is a schema")
}

/// Implements `JsonSchema` for a CRD spec newtype as [`schema_for`] its inner type.
macro_rules! structural_schema {
    ($outer:ty, $inner:ty, $name:literal) => {
        impl schemars::JsonSchema for $outer {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                crate::structural::schema_for::<$inner>()
            }
        }
    };
}
pub(crate) use structural_schema;

fn any_value() -> Value {
    json!({"x-kubernetes-preserve-unknown-fields": true})
}

fn fix_value(node: &mut Value) {
    match node {
        Value::Bool(true) => *node = any_value(),
        Value::Object(map) => fix_object(map),
        _ => {}
    }
}

fn fix_object(map: &mut Map<String, Value>) {
    map.remove("definitions");
    map.remove("$defs");
    map.remove("$schema");
    map.remove("title");
    if map.contains_key("$ref") {
        let nullable = map.get("nullable").cloned();
        let description = map.get("description").cloned();
        map.clear();
        map.insert("type".into(), json!("object"));
        map.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
        if let Some(d) = description {
            map.insert("description".into(), d);
        }
        if let Some(n) = nullable {
            map.insert("nullable".into(), n);
        }
        return;
    }
    let untyped = !map.contains_key("type") && !map.contains_key("x-kubernetes-int-or-string");
    if untyped && (map.contains_key("anyOf") || map.contains_key("oneOf")) {
        map.remove("anyOf");
        map.remove("oneOf");
        map.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
        return;
    }
    if map.contains_key("properties") && map.get("additionalProperties") == Some(&json!(false)) {
        map.remove("additionalProperties");
    }
    // Only `description` (or nothing): a schema that admits any value.
    if map.keys().all(|k| k == "description" || k == "nullable") {
        map.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(props)) = map.get_mut(key) {
            for v in props.values_mut() {
                fix_value(v);
            }
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(v) = map.get_mut(key) {
            fix_value(v);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(list)) = map.get_mut(key) {
            for v in list {
                fix_value(v);
            }
        }
    }
}
