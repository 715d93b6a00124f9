//! Runs decoded without the field sets of their `managedFields`.
//!
//! Every watch event and every status write answers with a whole run, and
//! the field sets (`fieldsV1`) are the larger part of its metadata, which the
//! controller drops at once (see [`cache::trim_run`](crate::cache::trim_run)).
//! Decoding them first, only to drop them, took a tenth of the controller's
//! CPU under a large fleet: [`LeanRun`] skips them while it reads the JSON,
//! and keeps everything else, the managers and their times included, which
//! tell whether a run without a status is unchanged since its creation.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta, OwnerReference, Time};
use kube::Resource;
use kube::runtime::watcher;
use serde::{Deserialize, Deserializer};

use crate::api::{ReviewRun, ReviewRunSpec, ReviewRunStatus};

/// A ReviewRun as the API serves it, read without `managedFields[].fieldsV1`.
#[derive(Clone, Debug, Deserialize)]
pub struct LeanRun {
    #[serde(deserialize_with = "metadata_without_field_sets")]
    metadata: ObjectMeta,
    spec: ReviewRunSpec,
    #[serde(default)]
    status: Option<ReviewRunStatus>,
}

impl From<LeanRun> for ReviewRun {
    fn from(run: LeanRun) -> Self {
        ReviewRun { metadata: run.metadata, spec: run.spec, status: run.status }
    }
}

impl Resource for LeanRun {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(types: &()) -> Cow<'_, str> {
        ReviewRun::kind(types)
    }

    fn group(types: &()) -> Cow<'_, str> {
        ReviewRun::group(types)
    }

    fn version(types: &()) -> Cow<'_, str> {
        ReviewRun::version(types)
    }

    fn plural(types: &()) -> Cow<'_, str> {
        ReviewRun::plural(types)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A watch event of lean runs as one of runs.
pub fn into_run_event(event: watcher::Event<LeanRun>) -> watcher::Event<ReviewRun> {
    match event {
        watcher::Event::Apply(run) => watcher::Event::Apply(run.into()),
        watcher::Event::Delete(run) => watcher::Event::Delete(run.into()),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(run) => watcher::Event::InitApply(run.into()),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// `ObjectMeta`'s fields, each read as `ObjectMeta` reads it, but for the
/// managed fields' entries; unknown keys are skipped, as there.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct MetaFields {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    managed_fields: Option<Vec<EntryFields>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

/// A managed fields entry without its field set (`fieldsV1` is skipped).
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct EntryFields {
    api_version: Option<String>,
    fields_type: Option<String>,
    manager: Option<String>,
    operation: Option<String>,
    subresource: Option<String>,
    time: Option<Time>,
}

fn metadata_without_field_sets<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let fields = MetaFields::deserialize(deserializer)?;
    let managed_fields = fields.managed_fields.map(|entries| {
        entries
            .into_iter()
            .map(|entry| ManagedFieldsEntry {
                api_version: entry.api_version,
                fields_type: entry.fields_type,
                fields_v1: None,
                manager: entry.manager,
                operation: entry.operation,
                subresource: entry.subresource,
                time: entry.time,
            })
            .collect()
    });
    Ok(ObjectMeta {
        annotations: fields.annotations,
        creation_timestamp: fields.creation_timestamp,
        deletion_grace_period_seconds: fields.deletion_grace_period_seconds,
        deletion_timestamp: fields.deletion_timestamp,
        finalizers: fields.finalizers,
        generate_name: fields.generate_name,
        generation: fields.generation,
        labels: fields.labels,
        managed_fields,
        name: fields.name,
        namespace: fields.namespace,
        owner_references: fields.owner_references,
        resource_version: fields.resource_version,
        self_link: fields.self_link,
        uid: fields.uid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A run with every metadata field set, as the API server serves it.
    fn served_run() -> serde_json::Value {
        json!({
            "apiVersion": "review.ao.dev/v1alpha1",
            "kind": "ReviewRun",
            "metadata": {
                "annotations": {"review.ao.dev/cancel-reason": "closed", "other": "x"},
                "creationTimestamp": "2026-12-07T10:00:00Z",
                "deletionGracePeriodSeconds": 0,
                "deletionTimestamp": "2026-12-07T10:05:00Z",
                "finalizers": ["review.ao.dev/hold"],
                "generateName": "review-w1-",
                "generation": 3,
                "labels": {"review.ao.dev/reviewer": "review-w1"},
                "managedFields": [
                    {"apiVersion": "review.ao.dev/v1alpha1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:reviewer": {}, "f:pullRequest": {".": {}, "f:headSha": {}}}},
                     "manager": "bot", "operation": "Update", "time": "2026-12-07T10:00:00Z"},
                    {"apiVersion": "review.ao.dev/v1alpha1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:status": {"f:phase": {}}},
                     "manager": "review-operator", "operation": "Apply", "subresource": "status",
                     "time": "2026-12-07T10:00:01Z"}
                ],
                "name": "review-w1-abc",
                "namespace": "team",
                "ownerReferences": [{"apiVersion": "review.ao.dev/v1alpha1", "kind": "Reviewer",
                                     "name": "review-w1", "uid": "u-1"}],
                "resourceVersion": "42",
                "selfLink": "/apis/review.ao.dev/v1alpha1/namespaces/team/reviewruns/review-w1-abc",
                "uid": "u-2",
                "futureField": {"nested": [1, 2, 3]}
            },
            "spec": {
                "reviewer": "review-w1",
                "pullRequest": {"url": "https://github.com/acme/app/pull/1", "headSha": "a".repeat(40)}
            },
            "status": {"phase": "Running", "reason": null, "shortSha": "aaaaaaa"}
        })
    }

    #[test]
    fn a_lean_run_is_the_run_without_its_field_sets() {
        let served = served_run();
        let mut whole: ReviewRun = serde_json::from_value(served.clone()).unwrap();
        for entry in whole.metadata.managed_fields.iter_mut().flatten() {
            entry.fields_v1 = None;
        }
        let lean: LeanRun = serde_json::from_str(&served.to_string()).unwrap();
        assert_eq!(ReviewRun::from(lean), whole);
        assert_eq!(whole.metadata.managed_fields.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn a_run_without_optional_metadata_or_status_reads_the_same() {
        let served = json!({
            "metadata": {"name": "r", "managedFields": null},
            "spec": {"reviewer": "review-w1",
                     "pullRequest": {"url": "https://github.com/acme/app/pull/1", "headSha": "b".repeat(40)}}
        });
        let whole: ReviewRun = serde_json::from_value(served.clone()).unwrap();
        let lean: LeanRun = serde_json::from_value(served).unwrap();
        assert_eq!(ReviewRun::from(lean), whole);
    }

    #[test]
    fn a_run_the_api_could_not_have_served_is_refused_as_it_would_be_whole() {
        let spec = json!({"reviewer": "review-w1",
                          "pullRequest": {"url": "https://github.com/acme/app/pull/1", "headSha": "c".repeat(40)}});
        for served in [
            json!({"metadata": {"name": 7}, "spec": spec}),
            json!({"metadata": {"managedFields": [{"time": "yesterday"}]}, "spec": spec}),
            json!({"metadata": {"managedFields": {"manager": "bot"}}, "spec": spec}),
            json!({"metadata": {}}),
        ] {
            assert!(serde_json::from_value::<ReviewRun>(served.clone()).is_err(), "{served}");
            assert!(serde_json::from_value::<LeanRun>(served.clone()).is_err(), "{served}");
        }
    }
}
