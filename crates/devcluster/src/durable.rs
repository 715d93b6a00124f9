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
        tracing::info!(path = %path.display(), revision, objects = objects.len(), "data directory loaded");
        Ok((Self { db }, Contents { revision, objects }))
    }
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
}
