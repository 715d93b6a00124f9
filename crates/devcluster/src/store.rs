//! Object storage: one global, monotonically increasing resourceVersion, a bounded history of
//! changes for watch resumption, and an index of ownerReferences for garbage collection.
//!
//! Objects live in memory; a [`Persistence`] backend sees every change before it is acknowledged,
//! so a durable backend can be added without touching the HTTP layer.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// Identity of a stored object. Versions of one group/resource share objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub resource: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Self { group: group.into(), resource: resource.into(), namespace: namespace.into(), name: name.into() }
    }
}

/// The kind of change a watch event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One committed change, as watchers see it.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: EventType,
    pub key: ObjectKey,
    /// The object after the change (for `Deleted`, its last state with the deletion's resourceVersion).
    pub object: Arc<Value>,
    /// The object before the change, so watches with selectors can tell an object leaving their view.
    pub previous: Option<Arc<Value>>,
    pub resource_version: u64,
    /// The object serialized once for every watcher that presents it in the same apiVersion.
    pub encoded: Arc<std::sync::OnceLock<(String, Vec<u8>)>>,
}

/// Where committed changes go before they are acknowledged. The in-memory cluster uses [`NoPersistence`].
pub trait Persistence: Send + Sync + std::fmt::Debug {
    /// Makes the change durable; an error aborts the write.
    fn persist(&self, change: &Change) -> std::io::Result<()>;
}

/// Keeps nothing: the cluster lives in memory only.
#[derive(Debug, Default)]
pub struct NoPersistence;

impl Persistence for NoPersistence {
    fn persist(&self, _change: &Change) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why a store write did not happen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("object already exists")]
    AlreadyExists,
    #[error("object not found")]
    NotFound,
    #[error("resourceVersion {expected} does not match current {actual}")]
    Conflict { expected: u64, actual: u64 },
    #[error("cannot persist the change: {0}")]
    Persist(String),
}

/// A watch resumption point older than the retained history.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct TooOld {
    pub requested: u64,
    pub oldest: u64,
}

/// The stored objects, in key order for lists and pages, and hashed for point reads: in a large
/// fleet's store, finding a key in the ordered map compares it with dozens of others, each comparison
/// up to four strings, and every write reads its object (and admission its policies) by key.
#[derive(Debug, Default)]
struct Objects {
    ordered: BTreeMap<ObjectKey, Arc<Value>>,
    by_key: HashMap<ObjectKey, Arc<Value>>,
}

impl Objects {
    fn get(&self, key: &ObjectKey) -> Option<&Arc<Value>> {
        self.by_key.get(key)
    }

    fn contains_key(&self, key: &ObjectKey) -> bool {
        self.by_key.contains_key(key)
    }

    fn insert(&mut self, key: ObjectKey, object: Arc<Value>) -> Option<Arc<Value>> {
        self.by_key.insert(key.clone(), object.clone());
        self.ordered.insert(key, object)
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<Arc<Value>> {
        self.by_key.remove(key);
        self.ordered.remove(key)
    }

    fn range(
        &self,
        range: (Bound<ObjectKey>, Bound<ObjectKey>),
    ) -> std::collections::btree_map::Range<'_, ObjectKey, Arc<Value>> {
        self.ordered.range(range)
    }

    fn iter(&self) -> std::collections::btree_map::Iter<'_, ObjectKey, Arc<Value>> {
        self.ordered.iter()
    }

    fn keys(&self) -> std::collections::btree_map::Keys<'_, ObjectKey, Arc<Value>> {
        self.ordered.keys()
    }
}

#[derive(Debug)]
struct Inner {
    revision: u64,
    objects: Objects,
    /// Owner UID → keys of objects naming it in ownerReferences.
    dependents: HashMap<String, BTreeSet<ObjectKey>>,
    /// Keys of objects with a deletionTimestamp.
    deleting: BTreeSet<ObjectKey>,
    history: VecDeque<Change>,
    /// The resourceVersion just before the oldest retained change: resuming from it or later is possible.
    history_floor: u64,
    /// The resourceVersion of the last change in each API group, for caches derived from a group.
    group_revisions: HashMap<String, u64>,
}

impl Inner {
    /// Objects of one group/resource, optionally in one namespace, in key order.
    fn select(&self, group: &str, resource: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        self.page(group, resource, namespace, None, None, None).objects
    }

    /// See [`Store::list_page`].
    fn page(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        limit: Option<usize>,
        filter: Option<&dyn Fn(&Value) -> bool>,
    ) -> Page {
        let scope_start = ObjectKey::new(group, resource, namespace.unwrap_or(""), "");
        let (start, first) = match after.map(|(ns, name)| ObjectKey::new(group, resource, ns, name)) {
            Some(key) if key >= scope_start => (Bound::Excluded(key.clone()), key),
            // A position before the scope starts at its beginning.
            _ => (Bound::Included(scope_start.clone()), scope_start),
        };
        // The first key past the scope: names hold no NUL, so appending one orders just after them.
        // A range with both ends walks the scope without comparing every key to it, which counting
        // what follows a page of a large list would otherwise do for each page.
        let end = match namespace {
            Some(ns) => ObjectKey::new(group, resource, &format!("{ns}\0"), ""),
            None => ObjectKey::new(group, &format!("{resource}\0"), "", ""),
        };
        if first >= end {
            return Page { objects: Vec::new(), more: false, remaining: None, revision: self.revision };
        }
        let mut rest = self.objects.range((start, Bound::Excluded(end)));
        let mut objects = Vec::new();
        let mut more = false;
        for (_, object) in rest.by_ref() {
            if filter.is_some_and(|filter| !filter(object)) {
                continue;
            }
            if limit.is_some_and(|limit| objects.len() >= limit) {
                more = true;
                break;
            }
            objects.push(object.clone());
        }
        // Counting what follows visits keys only; with a filter, the count is unknown.
        let remaining = (more && filter.is_none()).then(|| 1 + rest.count() as u64);
        Page { objects, more, remaining, revision: self.revision }
    }
}

/// The shared object store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Change>,
    persistence: Arc<dyn Persistence>,
    history_limit: usize,
}

/// A consistent snapshot for starting a watch: past changes to replay and the live feed after them.
pub struct WatchStart {
    pub replay: Vec<Change>,
    pub live: broadcast::Receiver<Change>,
    pub revision: u64,
}

/// One page of a list: its objects, whether more match after them, and the revision it was read at.
pub struct Page {
    pub objects: Vec<Arc<Value>>,
    pub more: bool,
    /// How many objects follow the page, known only for an unfiltered list.
    pub remaining: Option<u64>,
    pub revision: u64,
}

/// A consistent list: matching objects and the resourceVersion they were read at.
pub struct Listing {
    pub objects: Vec<Arc<Value>>,
    pub revision: u64,
}

fn owner_uids(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| refs.iter().filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Whether an object is being deleted.
pub fn has_deletion_timestamp(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
}

/// The resourceVersion stored in an object's metadata, or 0.
pub fn resource_version_of(object: &Value) -> u64 {
    object.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Store {
    /// A store keeping `history_limit` changes for watch resumption.
    pub fn new(persistence: Arc<dyn Persistence>, history_limit: usize) -> Self {
        let (events, _) = broadcast::channel(65_536);
        Self {
            inner: Arc::new(Mutex::new(Inner {
                revision: 1,
                objects: Objects::default(),
                dependents: HashMap::new(),
                deleting: BTreeSet::new(),
                history: VecDeque::new(),
                history_floor: 1,
                group_revisions: HashMap::new(),
            })),
            events,
            persistence,
            history_limit: history_limit.max(1),
        }
    }

    /// A store holding what a durable backend loaded: `contents.objects` keep their resourceVersions, new
    /// writes continue after `contents.revision`, and watch history starts empty (older resumes get 410).
    pub fn restored(
        persistence: Arc<dyn Persistence>,
        history_limit: usize,
        contents: crate::durable::Contents,
    ) -> Self {
        let store = Self::new(persistence, history_limit);
        {
            let mut inner = store.lock();
            let highest = contents.objects.iter().map(|(_, o)| resource_version_of(o)).max().unwrap_or(0);
            inner.revision = contents.revision.max(highest).max(1);
            inner.history_floor = inner.revision;
            for (key, object) in contents.objects {
                for uid in owner_uids(&object) {
                    inner.dependents.entry(uid).or_default().insert(key.clone());
                }
                if has_deletion_timestamp(&object) {
                    inner.deleting.insert(key.clone());
                }
                inner.objects.insert(key, Arc::new(object));
            }
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-written (each write is one insert),
        // so recovering the guard is safe.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The latest committed resourceVersion.
    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        self.lock().objects.get(key).cloned()
    }

    /// Objects of one group/resource, optionally in one namespace, sorted by namespace then name.
    pub fn list(&self, group: &str, resource: &str, namespace: Option<&str>) -> Listing {
        let inner = self.lock();
        Listing { objects: inner.select(group, resource, namespace), revision: inner.revision }
    }

    /// One page of a list: up to `limit` objects of one group/resource (optionally one namespace)
    /// that `filter` accepts (all without one), in key order, after the `(namespace, name)` of
    /// `after`. The page costs the objects it visits, not the collection: a paginated list of n
    /// objects visits each once however many pages it takes.
    pub fn list_page(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        limit: Option<usize>,
        filter: Option<&dyn Fn(&Value) -> bool>,
    ) -> Page {
        self.lock().page(group, resource, namespace, after, limit, filter)
    }

    /// Every object in a namespace, of any resource (for namespace deletion).
    pub fn keys_in_namespace(&self, namespace: &str) -> Vec<ObjectKey> {
        self.lock().objects.keys().filter(|k| k.namespace == namespace).cloned().collect()
    }

    /// Keys of objects whose ownerReferences name `owner_uid`.
    pub fn dependents_of(&self, owner_uid: &str) -> Vec<ObjectKey> {
        self.lock().dependents.get(owner_uid).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Creates an object; it gets the next resourceVersion.
    pub fn create(&self, key: ObjectKey, object: Value) -> Result<Arc<Value>, StoreError> {
        let mut inner = self.lock();
        if inner.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        self.commit(&mut inner, EventType::Added, key, object)
    }

    /// Replaces an object if its stored resourceVersion is still `expected` (0 = unconditionally).
    pub fn update(&self, key: ObjectKey, expected: u64, object: Value) -> Result<Arc<Value>, StoreError> {
        let mut inner = self.lock();
        let current = inner.objects.get(&key).ok_or(StoreError::NotFound)?;
        let actual = resource_version_of(current);
        if expected != 0 && expected != actual {
            return Err(StoreError::Conflict { expected, actual });
        }
        self.commit(&mut inner, EventType::Modified, key, object)
    }

    /// Removes an object if its stored resourceVersion is still `expected` (0 = unconditionally).
    pub fn delete(&self, key: &ObjectKey, expected: u64) -> Result<Arc<Value>, StoreError> {
        let mut inner = self.lock();
        let current = inner.objects.get(key).ok_or(StoreError::NotFound)?;
        let actual = resource_version_of(current);
        if expected != 0 && expected != actual {
            return Err(StoreError::Conflict { expected, actual });
        }
        let last = (**current).clone();
        self.commit(&mut inner, EventType::Deleted, key.clone(), last)
    }

    fn commit(
        &self,
        inner: &mut Inner,
        kind: EventType,
        key: ObjectKey,
        mut object: Value,
    ) -> Result<Arc<Value>, StoreError> {
        let revision = inner.revision + 1;
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(revision.to_string()));
        }
        let object = Arc::new(object);
        let change = Change {
            kind,
            key: key.clone(),
            object: object.clone(),
            previous: inner.objects.get(&key).cloned(),
            resource_version: revision,
            encoded: Arc::default(),
        };
        self.persistence.persist(&change).map_err(|e| StoreError::Persist(e.to_string()))?;
        inner.revision = revision;
        let previous = match kind {
            EventType::Deleted => inner.objects.remove(&key),
            _ => inner.objects.insert(key.clone(), object.clone()),
        };
        if let Some(previous) = previous {
            for uid in owner_uids(&previous) {
                if let Some(set) = inner.dependents.get_mut(&uid) {
                    set.remove(&key);
                    if set.is_empty() {
                        inner.dependents.remove(&uid);
                    }
                }
            }
        }
        if kind != EventType::Deleted {
            for uid in owner_uids(&object) {
                inner.dependents.entry(uid).or_default().insert(key.clone());
            }
        }
        if kind != EventType::Deleted && has_deletion_timestamp(&object) {
            inner.deleting.insert(key.clone());
        } else {
            inner.deleting.remove(&key);
        }
        match inner.group_revisions.get_mut(&key.group) {
            Some(last) => *last = revision,
            None => {
                inner.group_revisions.insert(key.group.clone(), revision);
            }
        }
        inner.history.push_back(change.clone());
        while inner.history.len() > self.history_limit {
            if let Some(dropped) = inner.history.pop_front() {
                inner.history_floor = dropped.resource_version;
            }
        }
        // Sent under the lock so every receiver sees changes in resourceVersion order.
        let _ = self.events.send(change);
        Ok(object)
    }

    /// The resourceVersion of the last change to an object of `group` since the store started, or 0:
    /// what was derived from the group's objects at that revision or later is still current.
    pub fn group_revision(&self, group: &str) -> u64 {
        self.lock().group_revisions.get(group).copied().unwrap_or(0)
    }

    /// Starts a watch after `from` (exclusive). `None` means "now": only future changes.
    /// Fails with [`TooOld`] when `from` precedes the retained history.
    pub fn watch_from(&self, from: Option<u64>) -> Result<WatchStart, TooOld> {
        let inner = self.lock();
        let live = self.events.subscribe();
        let replay = match from {
            None => Vec::new(),
            Some(rv) if rv >= inner.revision => Vec::new(),
            Some(rv) if rv < inner.history_floor => {
                return Err(TooOld { requested: rv, oldest: inner.history_floor + 1 });
            }
            Some(rv) => inner.history.iter().filter(|c| c.resource_version > rv).cloned().collect(),
        };
        Ok(WatchStart { replay, live, revision: inner.revision })
    }

    /// Lists objects and subscribes to later changes atomically, for watches that send initial events.
    pub fn list_and_watch(&self, group: &str, resource: &str, namespace: Option<&str>) -> (Listing, WatchStart) {
        let inner = self.lock();
        let live = self.events.subscribe();
        let objects = inner.select(group, resource, namespace);
        let revision = inner.revision;
        (Listing { objects, revision }, WatchStart { replay: Vec::new(), live, revision })
    }

    /// Forgets history up to the latest revision (tests use this to force 410 on resumption).
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.history_floor = inner.revision;
    }

    /// The objects a garbage-collection sweep must look at: those being deleted and those naming an
    /// owner. The others, most objects of a large cluster, need nothing from it.
    pub fn deleting_or_owned(&self) -> Vec<(ObjectKey, Arc<Value>)> {
        let inner = self.lock();
        let keys: BTreeSet<&ObjectKey> = inner.deleting.iter().chain(inner.dependents.values().flatten()).collect();
        keys.into_iter().filter_map(|key| Some((key.clone(), inner.objects.get(key)?.clone()))).collect()
    }

    /// Every stored object (for consistency checks).
    pub fn all(&self) -> Vec<(ObjectKey, Arc<Value>)> {
        self.lock().objects.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store(limit: usize) -> Store {
        Store::new(Arc::new(NoPersistence), limit)
    }

    fn obj(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}})
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("", "configmaps", "default", name)
    }

    fn names(page: &Page) -> Vec<String> {
        page.objects.iter().map(|o| o["metadata"]["name"].as_str().unwrap_or_default().to_string()).collect()
    }

    #[test]
    fn pages_continue_after_the_last_key_and_count_what_follows() {
        let s = store(10);
        for name in ["e", "a", "d", "b", "c"] {
            s.create(key(name), obj(name)).unwrap();
        }
        // Another resource and another namespace sort around the collection and never leak in.
        s.create(ObjectKey::new("", "secrets", "default", "a"), obj("a")).unwrap();
        s.create(ObjectKey::new("", "configmaps", "other", "z"), obj("z")).unwrap();
        // So do the neighbours that sort right after the scope: a longer namespace or resource name.
        s.create(ObjectKey::new("", "configmaps", "defaults", "a"), obj("a")).unwrap();
        s.create(ObjectKey::new("", "configmapsx", "default", "a"), obj("a")).unwrap();
        let first = s.list_page("", "configmaps", Some("default"), None, Some(2), None);
        assert_eq!((names(&first), first.more, first.remaining), (vec!["a".into(), "b".into()], true, Some(3)));
        let second = s.list_page("", "configmaps", Some("default"), Some(("default", "b")), Some(2), None);
        assert_eq!((names(&second), second.remaining), (vec!["c".into(), "d".into()], Some(1)));
        let last = s.list_page("", "configmaps", Some("default"), Some(("default", "d")), Some(2), None);
        assert_eq!((names(&last), last.more, last.remaining), (vec!["e".into()], false, None));
        let everything = s.list_page("", "configmaps", None, None, None, None);
        assert_eq!(names(&everything), ["a", "b", "c", "d", "e", "a", "z"]);
        let across = s.list_page("", "configmaps", None, Some(("default", "c")), Some(2), None);
        assert_eq!((names(&across), across.remaining), (vec!["d".into(), "e".into()], Some(2)));
        // A token from another namespace than the one listed continues nowhere.
        let elsewhere = s.list_page("", "configmaps", Some("default"), Some(("other", "a")), Some(2), None);
        assert_eq!((names(&elsewhere), elsewhere.more), (Vec::<String>::new(), false));
        let before = s.list_page("", "configmaps", Some("other"), Some(("default", "e")), None, None);
        assert_eq!(names(&before), ["z"]);
    }

    #[test]
    fn sweep_candidates_are_the_objects_being_deleted_or_owned() {
        let s = store(10);
        s.create(key("plain"), obj("plain")).unwrap();
        let owned = json!({"metadata": {"name": "owned", "ownerReferences": [{"uid": "u1"}]}});
        s.create(key("owned"), owned).unwrap();
        let going = json!({"metadata": {"name": "going", "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        s.create(key("going"), going).unwrap();
        let names = |s: &Store| s.deleting_or_owned().into_iter().map(|(k, _)| k.name).collect::<Vec<_>>();
        assert_eq!(names(&s), ["going", "owned"]);
        // An object that stops being deleted or owned leaves the candidates; a deleted one too.
        s.update(key("owned"), 0, obj("owned")).unwrap();
        s.delete(&key("going"), 0).unwrap();
        assert!(names(&s).is_empty());
    }

    #[test]
    fn filtered_pages_fill_up_with_matches_and_leave_the_count_unknown() {
        let s = store(10);
        for name in ["a", "b", "c", "d", "e", "f"] {
            s.create(key(name), obj(name)).unwrap();
        }
        let vowels = |o: &Value| matches!(o["metadata"]["name"].as_str(), Some("a" | "e"));
        let first = s.list_page("", "configmaps", Some("default"), None, Some(1), Some(&vowels));
        assert_eq!((names(&first), first.more, first.remaining), (vec!["a".into()], true, None));
        let rest = s.list_page("", "configmaps", Some("default"), Some(("default", "a")), Some(1), Some(&vowels));
        assert_eq!((names(&rest), rest.more), (vec!["e".into()], false));
    }

    #[test]
    fn writes_get_increasing_resource_versions() {
        let s = store(100);
        let a = s.create(key("a"), obj("a")).unwrap();
        let b = s.create(key("b"), obj("b")).unwrap();
        assert!(resource_version_of(&b) > resource_version_of(&a));
        assert_eq!(s.revision(), resource_version_of(&b));
    }

    #[test]
    fn point_reads_and_lists_agree_through_creates_updates_and_deletes() {
        let s = store(100);
        for name in ["c", "a", "b"] {
            s.create(key(name), obj(name)).unwrap();
        }
        let b = s.get(&key("b")).unwrap();
        s.update(
            key("b"),
            resource_version_of(&b),
            json!({"metadata": {"name": "b", "namespace": "default"}, "data": {"v": "2"}}),
        )
        .unwrap();
        s.delete(&key("a"), 0).unwrap();
        let listed = s.list("", "configmaps", None).objects;
        let read: Vec<Arc<Value>> = ["b", "c"].iter().filter_map(|name| s.get(&key(name))).collect();
        assert_eq!(listed, read);
        assert_eq!(read[0]["data"]["v"], "2");
        assert!(s.get(&key("a")).is_none());
        assert_eq!(s.create(key("a"), obj("a")).map(|a| a["metadata"]["name"].clone()), Ok(json!("a")));
        let all: Vec<ObjectKey> = s.all().into_iter().map(|(k, _)| k).collect();
        assert_eq!(all, vec![key("a"), key("b"), key("c")]);
        assert!(all.iter().all(|k| s.get(k).is_some()));
    }

    #[test]
    fn create_twice_is_already_exists() {
        let s = store(100);
        s.create(key("a"), obj("a")).unwrap();
        assert_eq!(s.create(key("a"), obj("a")).unwrap_err(), StoreError::AlreadyExists);
    }

    #[test]
    fn stale_update_conflicts_and_changes_nothing() {
        let s = store(100);
        let a = s.create(key("a"), obj("a")).unwrap();
        let rv = resource_version_of(&a);
        s.update(key("a"), rv, obj("a")).unwrap();
        let err = s.update(key("a"), rv, obj("a")).unwrap_err();
        assert_eq!(err, StoreError::Conflict { expected: rv, actual: rv + 1 });
        assert_eq!(resource_version_of(&s.get(&key("a")).unwrap()), rv + 1);
    }

    #[test]
    fn update_and_delete_of_missing_object_are_not_found() {
        let s = store(100);
        assert_eq!(s.update(key("x"), 0, obj("x")).unwrap_err(), StoreError::NotFound);
        assert_eq!(s.delete(&key("x"), 0).unwrap_err(), StoreError::NotFound);
    }

    #[test]
    fn list_is_scoped_by_resource_and_namespace() {
        let s = store(100);
        s.create(key("a"), obj("a")).unwrap();
        s.create(ObjectKey::new("", "configmaps", "other", "b"), obj("b")).unwrap();
        s.create(ObjectKey::new("", "secrets", "default", "c"), obj("c")).unwrap();
        assert_eq!(s.list("", "configmaps", None).objects.len(), 2);
        assert_eq!(s.list("", "configmaps", Some("default")).objects.len(), 1);
        assert_eq!(s.list("", "secrets", None).objects.len(), 1);
    }

    #[test]
    fn watch_replays_history_after_the_given_version() {
        let s = store(100);
        let a = s.create(key("a"), obj("a")).unwrap();
        s.create(key("b"), obj("b")).unwrap();
        s.delete(&key("a"), 0).unwrap();
        let start = s.watch_from(Some(resource_version_of(&a))).unwrap();
        let kinds: Vec<_> = start.replay.iter().map(|c| (c.kind, c.key.name.clone())).collect();
        assert_eq!(kinds, vec![(EventType::Added, "b".to_string()), (EventType::Deleted, "a".to_string())]);
    }

    #[test]
    fn watch_from_compacted_history_is_too_old() {
        let s = store(2);
        let a = s.create(key("a"), obj("a")).unwrap();
        for n in ["b", "c", "d"] {
            s.create(key(n), obj(n)).unwrap();
        }
        let err = s.watch_from(Some(resource_version_of(&a))).err().unwrap();
        assert_eq!(err.requested, resource_version_of(&a));
        assert!(s.watch_from(Some(s.revision() - 1)).is_ok());
    }

    #[test]
    fn owner_index_follows_writes() {
        let s = store(100);
        let mut child = obj("child");
        child["metadata"]["ownerReferences"] = json!([{"uid": "u1", "name": "p", "kind": "X", "apiVersion": "v1"}]);
        s.create(key("child"), child).unwrap();
        assert_eq!(s.dependents_of("u1"), vec![key("child")]);
        s.update(key("child"), 0, obj("child")).unwrap();
        assert!(s.dependents_of("u1").is_empty());
    }

    #[derive(Debug)]
    struct FailingPersistence;
    impl Persistence for FailingPersistence {
        fn persist(&self, _change: &Change) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
    }

    #[test]
    fn a_failed_persist_leaves_the_store_unchanged() {
        let s = Store::new(Arc::new(FailingPersistence), 10);
        let before = s.revision();
        assert!(matches!(s.create(key("a"), obj("a")), Err(StoreError::Persist(m)) if m.contains("disk full")));
        assert_eq!(s.revision(), before);
        assert!(s.get(&key("a")).is_none());
    }
}
