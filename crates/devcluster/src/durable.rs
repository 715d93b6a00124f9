//! Durable storage for `--data-dir`: every committed change is written to an embedded transactional
//! database (`redb`) and fsynced before the write is acknowledged, and the store is reloaded from it at
//! start. One table maps each object's key to its JSON; another holds the revision counter, which
//! deletions advance too, so resourceVersions keep increasing across restarts.

use crate::store::{Change, EventType, ObjectKey, Persistence};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use std::path::Path;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
/// The database file inside the data directory.
pub const FILE_NAME: &str = "devcluster.redb";

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    #[error("cannot create data directory {path}: {source}")]
    Directory { path: String, source: std::io::Error },
    #[error("cannot open {path}: {message}")]
    Open { path: String, message: String },
    #[error("stored object {key} is not valid JSON: {source}")]
    Corrupt { key: String, source: serde_json::Error },
}

/// What a data directory held at start.
#[derive(Debug, Default)]
pub struct Contents {
    /// The last committed resourceVersion (0 for a new directory).
    pub revision: u64,
    pub objects: Vec<(ObjectKey, Value)>,
}

/// The redb-backed [`Persistence`].
#[derive(Debug)]
pub struct RedbPersistence {
    db: Database,
}

/// The table key of an object: its four key parts as a JSON array, which no name can make ambiguous.
fn encode_key(key: &ObjectKey) -> String {
    serde_json::json!([key.group, key.resource, key.namespace, key.name]).to_string()
}

fn decode_key(raw: &str) -> Option<ObjectKey> {
    let parts: Vec<String> = serde_json::from_str(raw).ok()?;
    match parts.as_slice() {
        [group, resource, namespace, name] => Some(ObjectKey::new(group, resource, namespace, name)),
        _ => None,
    }
}

impl RedbPersistence {
    /// Opens (or creates) the database in `dir` and reads everything it holds.
    pub fn open(dir: &Path) -> Result<(Self, Contents), DurableError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| DurableError::Directory { path: dir.display().to_string(), source })?;
        let path = dir.join(FILE_NAME);
        let open_error =
            |e: &dyn std::fmt::Display| DurableError::Open { path: path.display().to_string(), message: e.to_string() };
        let db = Database::create(&path).map_err(|e| open_error(&e))?;
        // Creates both tables on a new database, so reading never meets a missing table.
        let txn = db.begin_write().map_err(|e| open_error(&e))?;
        txn.open_table(OBJECTS).map_err(|e| open_error(&e))?;
        txn.open_table(META).map_err(|e| open_error(&e))?;
        txn.commit().map_err(|e| open_error(&e))?;

        let read = db.begin_read().map_err(|e| open_error(&e))?;
        let meta = read.open_table(META).map_err(|e| open_error(&e))?;
        let revision = meta.get(REVISION).map_err(|e| open_error(&e))?.map(|v| v.value()).unwrap_or(0);
        let table = read.open_table(OBJECTS).map_err(|e| open_error(&e))?;
        let mut objects = Vec::new();
        for entry in table.iter().map_err(|e| open_error(&e))? {
            let (key, value) = entry.map_err(|e| open_error(&e))?;
            let raw_key = key.value().to_string();
            let Some(object_key) = decode_key(&raw_key) else {
                return Err(open_error(&format!("malformed object key {raw_key}")));
            };
            let object = serde_json::from_slice(value.value())
                .map_err(|source| DurableError::Corrupt { key: raw_key.clone(), source })?;
            objects.push((object_key, object));
        }
        drop((table, meta, read));
        migrate_events_k8s_io(&db, &mut objects).map_err(|e| open_error(&e))?;
        tracing::info!(path = %path.display(), revision, objects = objects.len(), "data directory loaded");
        Ok((Self { db }, Contents { revision, objects }))
    }
}

/// Data directories written before events.k8s.io Events were stored as core Events kept them apart
/// under their own group: they move to the core key in the core form. An event whose name a core
/// Event already holds is dropped, as only one of the two could be served.
fn migrate_events_k8s_io(db: &Database, objects: &mut Vec<(ObjectKey, Value)>) -> Result<(), redb::Error> {
    let is_old = |key: &ObjectKey| key.group == crate::events::GROUP && key.resource == "events";
    if !objects.iter().any(|(key, _)| is_old(key)) {
        return Ok(());
    }
    let (old, mut kept): (Vec<_>, Vec<_>) = std::mem::take(objects).into_iter().partition(|(key, _)| is_old(key));
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(OBJECTS)?;
        for (key, object) in old {
            table.remove(encode_key(&key).as_str())?;
            let core_key = ObjectKey::new("", "events", &key.namespace, &key.name);
            if kept.iter().any(|(k, _)| *k == core_key) {
                tracing::warn!(namespace = %key.namespace, name = %key.name, "events.k8s.io Event dropped: a core Event has its name");
                continue;
            }
            let object = crate::events::events_to_core(&object);
            let bytes = serde_json::to_vec(&object).map_err(|e| redb::Error::Io(e.into()))?;
            table.insert(encode_key(&core_key).as_str(), bytes.as_slice())?;
            kept.push((core_key, object));
        }
    }
    txn.commit()?;
    *objects = kept;
    Ok(())
}

impl Persistence for RedbPersistence {
    fn persist(&self, change: &Change) -> std::io::Result<()> {
        let write = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            {
                let mut objects = txn.open_table(OBJECTS)?;
                let key = encode_key(&change.key);
                match change.kind {
                    EventType::Deleted => {
                        objects.remove(key.as_str())?;
                    }
                    EventType::Added | EventType::Modified => {
                        let bytes = serde_json::to_vec(&*change.object).map_err(|e| redb::Error::Io(e.into()))?;
                        objects.insert(key.as_str(), bytes.as_slice())?;
                    }
                }
                txn.open_table(META)?.insert(REVISION, change.resource_version)?;
            }
            // The default durability is immediate: commit returns once the change is on disk.
            txn.commit()?;
            Ok(())
        };
        write().map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use std::sync::Arc;

    #[test]
    fn keys_round_trip() {
        let key = ObjectKey::new("review.ao.dev", "reviewruns", "ns", "a\"b/c");
        assert_eq!(decode_key(&encode_key(&key)), Some(key));
        assert_eq!(decode_key("[\"only\"]"), None);
        assert_eq!(decode_key("nonsense"), None);
    }

    #[test]
    fn a_reopened_store_has_every_object_and_the_revision() {
        let dir = tempfile::tempdir().unwrap();
        let key = |n: &str| ObjectKey::new("", "configmaps", "default", n);
        let obj = |n: &str| serde_json::json!({"metadata": {"name": n, "namespace": "default"}});
        let (persistence, contents) = RedbPersistence::open(dir.path()).unwrap();
        assert_eq!(contents.revision, 0);
        let store = Store::new(Arc::new(persistence), 10);
        let kept = store.create(key("kept"), obj("kept")).unwrap();
        store.create(key("gone"), obj("gone")).unwrap();
        store.delete(&key("gone"), 0).unwrap();
        let revision = store.revision();
        drop(store);

        let (persistence, contents) = RedbPersistence::open(dir.path()).unwrap();
        assert_eq!(contents.revision, revision);
        assert_eq!(contents.objects, vec![(key("kept"), (*kept).clone())]);
        let store = Store::restored(Arc::new(persistence), 10, contents);
        assert_eq!(store.revision(), revision);
        assert_eq!(store.get(&key("kept")).as_deref(), Some(&*kept));
        assert!(store.watch_from(Some(revision - 1)).is_err(), "history starts empty after a restart");
        assert!(store.watch_from(Some(revision)).is_ok());
        let next = store.create(key("new"), obj("new")).unwrap();
        assert_eq!(crate::store::resource_version_of(&next), revision + 1);
    }

    #[test]
    fn events_k8s_io_events_of_older_directories_become_core_events() {
        let dir = tempfile::tempdir().unwrap();
        let old_key = |n: &str| ObjectKey::new("events.k8s.io", "events", "default", n);
        let core_key = |n: &str| ObjectKey::new("", "events", "default", n);
        let event = |api_version: &str, n: &str| serde_json::json!({"apiVersion": api_version, "kind": "Event", "metadata": {"name": n, "namespace": "default"}});
        let (persistence, _) = RedbPersistence::open(dir.path()).unwrap();
        let store = Store::new(Arc::new(persistence), 10);
        let mut moved = event("events.k8s.io/v1", "moved");
        moved["note"] = serde_json::json!("hello");
        store.create(old_key("moved"), moved).unwrap();
        store.create(old_key("clash"), event("events.k8s.io/v1", "clash")).unwrap();
        store.create(core_key("clash"), event("v1", "clash")).unwrap();
        drop(store);

        for _reopen in 0..2 {
            let (_, contents) = RedbPersistence::open(dir.path()).unwrap();
            let mut keys: Vec<_> = contents.objects.iter().map(|(k, _)| k.clone()).collect();
            keys.sort();
            assert_eq!(keys, [core_key("clash"), core_key("moved")]);
            let (_, moved) = contents.objects.iter().find(|(k, _)| *k == core_key("moved")).unwrap();
            assert_eq!((moved["apiVersion"].as_str(), moved["message"].as_str()), (Some("v1"), Some("hello")));
        }
    }
}
