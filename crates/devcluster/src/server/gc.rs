//! The server's built-in controllers: ownerReference garbage collection (background, foreground,
//! orphan), namespace termination and quota usage ([`super::quota`]). They react to every change
//! and re-check everything periodically, so a missed change (a lagging feed) only delays them.

use super::ApiServer;
use super::objects::{DeleteOptions, Propagation};
use super::strategy::Strategy;
use crate::meta;
use crate::store::{Change, EventType, ObjectKey, has_deletion_timestamp, resource_version_of};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch as signal;

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

fn owner_refs(object: &Value) -> Vec<Value> {
    object.pointer("/metadata/ownerReferences").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The objects the controller manager keeps in every namespace (recreated when deleted).
fn is_namespace_default(key: &ObjectKey) -> bool {
    key.group.is_empty()
        && ((key.resource == "serviceaccounts" && key.name == "default")
            || (key.resource == "configmaps" && key.name == super::bootstrap::ROOT_CA_CONFIG_MAP))
}

impl ApiServer {
    /// Runs the garbage collector and namespace controller until `shutdown` changes.
    pub(crate) async fn run_controllers(self: Arc<Self>, mut shutdown: signal::Receiver<bool>) {
        let mut feed = match self.store.watch_from(None) {
            Ok(start) => start.live,
            Err(_) => return,
        };
        let mut sweep = tokio::time::interval(self.settings.gc_sweep_interval);
        loop {
            tokio::select! {
                change = feed.recv() => match change {
                    Ok(change) => self.react(&change),
                    Err(RecvError::Lagged(_)) => self.sweep(),
                    Err(RecvError::Closed) => return,
                },
                _ = sweep.tick() => self.sweep(),
                _ = shutdown.changed() => return,
            }
        }
    }

    fn react(&self, change: &Change) {
        match change.kind {
            EventType::Deleted => {
                let uid = meta::str_at(&change.object, "/metadata/uid").to_string();
                self.collect_dependents(&uid);
                self.advance_crd_cleanup(&change.key);
                if !change.key.namespace.is_empty() {
                    self.advance_namespace(&change.key.namespace);
                    if is_namespace_default(&change.key) {
                        self.ensure_namespace_defaults(&change.key.namespace);
                    }
                }
            }
            EventType::Added | EventType::Modified => {
                if has_deletion_timestamp(&change.object) {
                    self.advance_deletion(&change.key, &change.object);
                } else if change.kind == EventType::Added
                    && change.key.group.is_empty()
                    && change.key.resource == "namespaces"
                {
                    self.ensure_namespace_defaults(&change.key.name);
                }
            }
        }
        // A dependent that went away or stopped blocking may let a foreground deletion finish.
        let refs = change.previous.as_deref().map(owner_refs).unwrap_or_default();
        for owner in refs {
            if let Some(key) = self.owner_key(&change.key, &owner)
                && let Some(object) = self.store.get(&key)
                && has_deletion_timestamp(&object)
            {
                self.advance_deletion(&key, &object);
            }
        }
        if super::quota::affects_quotas(&change.key) {
            self.refresh_quotas(&change.key.namespace);
        }
    }

    /// Re-checks the objects being deleted (pending deletions, terminating namespaces) and those
    /// naming an owner (dependents of missing owners); no other object needs a sweep.
    fn sweep(&self) {
        for (key, object) in self.store.deleting_or_owned() {
            if has_deletion_timestamp(&object) {
                self.advance_deletion(&key, &object);
            }
            let refs = owner_refs(&object);
            if !refs.is_empty() && refs.iter().any(|r| !self.owner_alive(&key, r)) {
                self.collect_dependent(&key);
            }
        }
        self.refresh_all_quotas();
    }

    fn advance_deletion(&self, key: &ObjectKey, object: &Value) {
        let finalizers = meta::finalizers(object);
        let uid = meta::str_at(object, "/metadata/uid").to_string();
        if finalizers.iter().any(|f| f == ORPHAN) {
            for dependent in self.store.dependents_of(&uid) {
                self.remove_owner_ref(&dependent, &uid);
            }
            self.finish(key, ORPHAN);
        } else if finalizers.iter().any(|f| f == FOREGROUND) {
            for dependent in self.store.dependents_of(&uid) {
                if let Some(dep) = self.store.get(&dependent)
                    && !has_deletion_timestamp(&dep)
                {
                    self.delete_key(&dependent, Propagation::Foreground);
                }
            }
            let blocking = self.store.dependents_of(&uid).into_iter().any(|dependent| {
                self.store.get(&dependent).is_some_and(|dep| {
                    owner_refs(&dep).iter().any(|r| {
                        r.get("uid").and_then(Value::as_str) == Some(uid.as_str())
                            && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
                    })
                })
            });
            if !blocking {
                self.finish(key, FOREGROUND);
            }
        }
        if let Some(info) = self.registry.any_version(&key.group, &key.resource)
            && let Some(terminate) = Strategy::of(&info).terminate
        {
            terminate(self, key, object);
        }
    }

    fn finish(&self, key: &ObjectKey, finalizer: &str) {
        if let Err(e) = self.remove_finalizer(key, finalizer) {
            tracing::debug!(object = %key.name, finalizer, error = %e, "finalizer removal will be retried");
        }
    }

    /// Deletes everything in a terminating namespace, then the namespace itself.
    pub(super) fn terminate_namespace(&self, namespace: &str) {
        let contents = self.store.keys_in_namespace(namespace);
        for key in &contents {
            if self.store.get(key).is_some_and(|o| !has_deletion_timestamp(&o)) {
                self.delete_key(key, Propagation::Background);
            }
        }
        if contents.is_empty() {
            let key = ObjectKey::new("", "namespaces", "", namespace);
            if let Some(ns) = self.store.get(&key)
                && has_deletion_timestamp(&ns)
                && meta::finalizers(&ns).is_empty()
                && let Err(e) = self.remove_object(&key, resource_version_of(&ns))
            {
                tracing::debug!(namespace, error = %e, "namespace removal will be retried");
            }
        }
    }

    fn advance_namespace(&self, namespace: &str) {
        let key = ObjectKey::new("", "namespaces", "", namespace);
        if self.store.get(&key).is_some_and(|ns| has_deletion_timestamp(&ns)) {
            self.terminate_namespace(namespace);
        }
    }

    /// Where an ownerReference points, resolved in the dependent's namespace for namespaced owners.
    fn owner_key(&self, dependent: &ObjectKey, owner: &Value) -> Option<ObjectKey> {
        let info = self.registry.by_kind(meta::str_at(owner, "/apiVersion"), meta::str_at(owner, "/kind"))?;
        let ns = if info.namespaced { dependent.namespace.as_str() } else { "" };
        Some(ObjectKey::new(&info.group, &info.resource, ns, meta::str_at(owner, "/name")))
    }

    /// An owner is alive when an object with its kind, name and UID exists.
    fn owner_alive(&self, dependent: &ObjectKey, owner: &Value) -> bool {
        let uid = meta::str_at(owner, "/uid");
        self.owner_key(dependent, owner)
            .and_then(|key| self.store.get(&key))
            .is_some_and(|o| meta::str_at(&o, "/metadata/uid") == uid)
    }

    fn collect_dependents(&self, owner_uid: &str) {
        for dependent in self.store.dependents_of(owner_uid) {
            self.collect_dependent(&dependent);
        }
    }

    /// A dependent whose owners are all gone is deleted; one with a live owner left only loses the dead references.
    fn collect_dependent(&self, key: &ObjectKey) {
        let Some(object) = self.store.get(key) else { return };
        let refs = owner_refs(&object);
        let dead: Vec<String> =
            refs.iter().filter(|r| !self.owner_alive(key, r)).map(|r| meta::str_at(r, "/uid").to_string()).collect();
        if dead.is_empty() {
            return;
        }
        if dead.len() == refs.len() {
            if !has_deletion_timestamp(&object) {
                self.delete_key(key, Propagation::Background);
            }
        } else {
            for uid in dead {
                self.remove_owner_ref(key, &uid);
            }
        }
    }

    fn delete_key(&self, key: &ObjectKey, propagation: Propagation) {
        let Some(info) = self.registry.any_version(&key.group, &key.resource) else { return };
        let options = DeleteOptions { propagation: Some(propagation), ..DeleteOptions::default() };
        let ns = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
        if let Err(e) = self.delete_object(&info, ns, &key.name, &options) {
            tracing::debug!(object = %key.name, error = %e, "garbage collection will retry");
        }
    }

    fn remove_owner_ref(&self, key: &ObjectKey, owner_uid: &str) {
        let Some(info) = self.registry.any_version(&key.group, &key.resource) else { return };
        let Some(old) = self.store.get(key) else { return };
        let old = Self::write_view(&info, old);
        let mut new = (*old).clone();
        let kept: Vec<Value> =
            owner_refs(&old).into_iter().filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid)).collect();
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            if kept.is_empty() {
                meta.remove("ownerReferences");
            } else {
                meta.insert("ownerReferences".into(), Value::Array(kept));
            }
        }
        let ctx = super::WriteContext::system("garbage-collector");
        if let Err(e) = self.commit_replacement(&info, key, &old, new, resource_version_of(&old), Vec::new(), &ctx) {
            tracing::debug!(object = %key.name, error = %e, "ownerReference removal will be retried");
        }
    }
}
