use super::*;
use weft_store::{RegistryDialect, RegistryValue};

fn fields(name: &str) -> Option<Field> {
    match name {
        "state" => Some(Field::Col("state", Ty::Text)),
        "owner" => Some(Field::Json("owner", Ty::Text)),
        "language" => Some(Field::List("language")),
        other => common_field(other),
    }
}

fn sql(q: &str) -> (String, Vec<RegistryValue>) {
    let w = condition(q, &fields, RegistryDialect::Sqlite)
        .unwrap()
        .unwrap();
    (w.sql, w.args)
}

#[test]
fn fields_become_columns_and_json_and_values_are_bound() {
    let (s, a) = sql("name LIKE \"%flow_*\" AND (state = 'LIVE' OR owner != \"x\")");
    assert_eq!(
        s,
        "(name GLOB ? AND (state = ? OR json_extract(body_json, '$.owner') != ?))"
    );
    let text = |t: &str| RegistryValue::Text(t.into());
    assert_eq!(a, vec![text("*flow?[*]"), text("LIVE"), text("x")]);
    let (s, a) = sql("id IN (1, '2') OR createTimeSinceEpoch >= 5");
    assert_eq!(s, "(id IN (?, ?) OR created_ms >= ?)");
    assert_eq!(
        a,
        vec![
            RegistryValue::Int(1),
            RegistryValue::Int(2),
            RegistryValue::Int(5)
        ]
    );
    assert_eq!(sql("id IN ()").0, "0");
    assert!(sql("language = 'en'")
        .0
        .starts_with("EXISTS (SELECT 1 FROM json_each"));
}

#[test]
fn custom_properties_by_type_given_or_taken_from_the_literal() {
    let (s, a) = sql("`acc.x` > 0.5");
    assert_eq!(
        s,
        "COALESCE(json_extract(body_json, ?), CAST(json_extract(body_json, ?) AS INTEGER)) > ?"
    );
    assert_eq!(
        a[0],
        RegistryValue::Text("$.customProperties.\"acc.x\".double_value".into())
    );
    let (s, a) = sql("epochs.int_value = '10'");
    assert_eq!(s, "CAST(json_extract(body_json, ?) AS INTEGER) = ?");
    assert_eq!(a[1], RegistryValue::Int(10));
    let (_, a) = sql("a.b.bool_value = TRUE");
    assert_eq!(
        a,
        vec![
            RegistryValue::Text("$.customProperties.\"a.b\".bool_value".into()),
            RegistryValue::Int(1)
        ]
    );
    // A field's name with a type is a custom property of that name.
    let (_, a) = sql("name.string_value = 'n'");
    assert_eq!(
        a[0],
        RegistryValue::Text("$.customProperties.\"name\".string_value".into())
    );
}

#[test]
fn bad_queries_name_the_place() {
    for (q, pos, text) in [
        ("name = ", 7, "expected a value"),
        ("name = 'x' AND", 14, "expected a comparison"),
        ("name 'x'", 5, "expected an operator"),
        ("(name = 'x'", 11, "`)`"),
        ("name = 'x')", 10, "unexpected `)`"),
        ("id = 'abc'", 0, "`id` is compared with an integer"),
        ("name = 3", 0, "`name` is compared with a string"),
        ("id LIKE '1'", 0, "operator does not apply"),
        ("x.bool_value > true", 0, "operator does not apply"),
        ("name IN 'x'", 8, "`(`"),
        ("`a\"b` = 1", 0, "quote"),
        ("language > 'en'", 0, "list"),
        ("`x`.y = 1", 4, "value type"),
    ] {
        let e = condition(q, &fields, RegistryDialect::Sqlite).unwrap_err();
        let pg = condition(q, &fields, RegistryDialect::Postgres).unwrap_err();
        assert_eq!(pg, e, "{q}: PostgreSQL's error is SQLite's");
        assert_eq!(e.pos, pos, "{q}: {e}");
        assert!(e.to_string().contains(text), "{q}: {e}");
    }
}

#[test]
fn bounds_are_kept() {
    let deep = format!("{}a = 1{}", "(".repeat(17), ")".repeat(17));
    assert!(check(&deep).unwrap_err().message.contains("deeper"));
    let ok = format!("{}a = 1{}", "(".repeat(16), ")".repeat(16));
    assert!(check(&ok).is_ok());
    let many = vec!["a = 1"; 101].join(" OR ");
    assert!(check(&many).unwrap_err().message.contains("comparisons"));
    let long = format!("a = '{}'", "x".repeat(MAX_LEN));
    assert!(check(&long).unwrap_err().message.contains("longer"));
    let list = format!("a IN ({})", vec!["1"; 101].join(","));
    assert!(check(&list).unwrap_err().message.contains("at most"));
    assert_eq!(
        condition("  -- nothing", &fields, RegistryDialect::Sqlite).unwrap(),
        None
    );
}

fn pg(q: &str) -> (String, Vec<RegistryValue>) {
    let w = condition(q, &fields, RegistryDialect::Postgres)
        .unwrap()
        .unwrap();
    (w.sql, w.args)
}

#[test]
fn postgres_reads_jsonb_and_likes_without_escapes() {
    let (s, a) = pg("name LIKE \"%flow_*\" AND (state = 'LIVE' OR owner != \"x\")");
    assert_eq!(
        s,
        "((name LIKE ? ESCAPE '') AND ((state = ?) OR (((body_json -> 'owner') #>> '{}') != ?)))"
    );
    let text = |t: &str| RegistryValue::Text(t.into());
    assert_eq!(a, vec![text("%flow_*"), text("LIVE"), text("x")]);
    assert_eq!(pg("id IN ()").0, "FALSE");
    assert_eq!(
        pg("language IN ('en', 'de')").0,
        "((body_json -> 'language') @> jsonb_build_array(?::text) \
         OR (body_json -> 'language') @> jsonb_build_array(?::text))"
    );
    // A custom property's name is bound before each value it is compared with.
    let (s, a) = pg("`acc.x` IN (0.5, 1)");
    let prop = "(body_json -> 'customProperties' -> ?";
    let num = format!(
        "COALESCE(weft_registry_num({prop} -> 'double_value')), \
         weft_registry_int({prop} -> 'int_value')))"
    );
    assert_eq!(s, format!("({num} = ? OR {num} = ?)"));
    let name = text("acc.x");
    assert_eq!(
        a,
        vec![
            name.clone(),
            name.clone(),
            RegistryValue::Real(0.5),
            name.clone(),
            name,
            RegistryValue::Int(1)
        ]
    );
}
