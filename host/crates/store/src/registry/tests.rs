use super::*;
use crate::metadata::MIGRATIONS;
use rusqlite_migration::{Migrations, M};

fn model(name: &str) -> RegistryRow {
    RegistryRow {
        id: 0,
        parent: None,
        artifact_type: String::new(),
        name: Some(name.into()),
        external_id: Some(format!("x-{name}")),
        state: Some("LIVE".into()),
        created_ms: 1,
        updated_ms: 1,
        body_json: "{}".into(),
    }
}

/// A database as the registry left it before namespaces: its tables made by `CREATE TABLE IF
/// NOT EXISTS` beside the metadata store's migrations (`with_metadata`) or alone; a model
/// (id 1) with a version and an artifact, and a model made and deleted (id 2).
fn old_database(path: &Path, with_metadata: bool) {
    let mut c = Connection::open(path).unwrap();
    if with_metadata {
        Migrations::new(MIGRATIONS.iter().map(|s| M::up(s)).collect())
            .to_latest(&mut c)
            .unwrap();
    }
    c.pragma_update(None, "foreign_keys", "ON").unwrap();
    c.execute_batch(BEFORE_NAMESPACES).unwrap();
    c.execute_batch(
        "INSERT INTO registry_models (name, external_id, created_ms, updated_ms, body_json)
             VALUES ('iris', 'x-iris', 1, 1, '{}'), ('gone', NULL, 1, 1, '{}');
         DELETE FROM registry_models WHERE name = 'gone';
         INSERT INTO registry_versions (parent, name, created_ms, updated_ms, body_json)
             VALUES (1, 'v1', 1, 1, '{}');
         INSERT INTO registry_artifacts (parent, artifact_type, name, created_ms, updated_ms, body_json)
             VALUES (1, 'model-artifact', 'm', 1, 1, '{\"uri\": \"x\"}');",
    )
    .unwrap();
}

fn opens_with_its_rows_in_default(path: &Path) {
    let store = RegistryStore::open(path).unwrap();
    let m = store
        .get(RegistryKind::RegisteredModel, "default", 1)
        .unwrap()
        .unwrap();
    assert_eq!(m.name.as_deref(), Some("iris"));
    assert!(store
        .get(RegistryKind::RegisteredModel, "team-a", 1)
        .unwrap()
        .is_none());
    let a = store
        .get(RegistryKind::Artifact, "default", 1)
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.parent, a.body_json.as_str()),
        (Some(1), "{\"uri\": \"x\"}")
    );
    // Names and external ids are unique per namespace now.
    assert!(matches!(
        store.insert(RegistryKind::RegisteredModel, "default", &model("iris")),
        Err(RegistryError::Conflict(_))
    ));
    let other = store
        .insert(RegistryKind::RegisteredModel, "team-a", &model("iris"))
        .unwrap();
    // The deleted model's id is not given again.
    assert_eq!(other.id, 3);
    // A version cannot hang under another namespace's model.
    let mut v = model("v2");
    v.parent = Some(1);
    assert!(matches!(
        store.insert(RegistryKind::ModelVersion, "team-a", &v),
        Err(RegistryError::NoParent(_))
    ));
    store
        .insert(RegistryKind::ModelVersion, "default", &v)
        .unwrap();
    // The deletes cascade as before, in the namespace only.
    assert!(!store
        .delete(RegistryKind::RegisteredModel, "team-a", 1)
        .unwrap());
    assert!(store
        .delete(RegistryKind::RegisteredModel, "default", 1)
        .unwrap());
    assert!(store
        .get(RegistryKind::Artifact, "default", 1)
        .unwrap()
        .is_none());
    drop(store);
    // The metadata store opens it too, and both again.
    crate::MetadataStore::open(path).unwrap();
    RegistryStore::open(path).unwrap();
}

#[test]
fn a_database_with_the_tables_made_before_namespaces_opens_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    old_database(&path, true);
    opens_with_its_rows_in_default(&path);
}

#[test]
fn a_registry_made_before_the_metadata_store_opens_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    old_database(&path, false);
    opens_with_its_rows_in_default(&path);
}

#[test]
fn placeholders_are_numbered_outside_quotes() {
    let sql = "a = ? AND b = '?' AND c = \"?\" AND d IN (?, ?)";
    assert_eq!(
        numbered(sql, RegistryDialect::Sqlite),
        "a = ?1 AND b = '?' AND c = \"?\" AND d IN (?2, ?3)"
    );
    assert_eq!(
        numbered(sql, RegistryDialect::Postgres),
        "a = $1 AND b = '?' AND c = \"?\" AND d IN ($2, $3)"
    );
}
