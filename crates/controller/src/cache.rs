//! What the controller's caches keep of each object: what the planner reads
//! and what its writes and events name, nothing more. At 200,000 runs the
//! run cache is most of the controller's memory, so every field dropped here
//! is paid for once per run ever kept.

use k8s_openapi::api::core::v1::Pod;
use kube::Resource;

use crate::api::{ANNOTATION_CANCEL_REASON, Delivery, ReviewRun};

/// Drops the field sets of `managedFields`, the larger part of most
/// objects. Who wrote an object, and when, stays where it is read.
pub fn trim_managed_fields<K: Resource>(object: &mut K) {
    for entry in object.meta_mut().managed_fields.iter_mut().flatten() {
        entry.fields_v1 = None;
    }
}

/// A run as the planner reads it. `managedFields` tell whether a run without
/// a status is unchanged since its creation (see `history::order`); once it
/// has a status they are never read again. Of the annotations only the
/// cancel reason is read (`kubectl apply`, for one, keeps a whole copy of the
/// object in another). The delivery record is the delivery loop's, which
/// watches runs on its own; the planner only asks whether it is still
/// under way (a finished run is not deleted then), so only that is kept.
pub fn trim_run(run: &mut ReviewRun) {
    trim_managed_fields(run);
    if let Some(status) = run.status.as_mut() {
        run.metadata.managed_fields = None;
        status.delivery = status
            .delivery
            .take()
            .filter(|delivery| !delivery.state.is_final())
            .map(|delivery| Delivery::new(delivery.state));
    }
    if let Some(annotations) = run.metadata.annotations.as_mut() {
        annotations.retain(|key, _| key == ANNOTATION_CANCEL_REASON);
        if annotations.is_empty() {
            run.metadata.annotations = None;
        }
    }
}

/// A reviewer pod as the planner reads it: its metadata and status. The
/// next pod is built from the Reviewer, so no spec is kept.
pub fn trim_pod(pod: &mut Pod) {
    trim_managed_fields(pod);
    pod.spec = None;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    use super::*;
    use crate::api::history::order::revision_to_record;
    use crate::api::testing::{PR1, SHA_A, new_run};
    use crate::api::{Delivery, DeliveryState, ReviewRunStatus, RunPhase};

    fn written_by(manager: &str) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            fields_v1: Some(FieldsV1(serde_json::json!({"f:spec": {}}))),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn a_run_without_a_status_keeps_who_wrote_it_for_its_creation_revision() {
        let mut run = new_run("r1", PR1, SHA_A, 0);
        run.metadata.resource_version = Some("42".into());
        run.metadata.managed_fields = Some(vec![written_by("bot")]);
        let before = revision_to_record(&run);
        trim_run(&mut run);
        let managers = run.metadata.managed_fields.as_deref().unwrap();
        assert_eq!((managers.len(), managers[0].manager.as_deref()), (1, Some("bot")));
        assert_eq!(managers[0].fields_v1, None);
        assert_eq!(revision_to_record(&run), before);
        assert_eq!(before.as_deref(), Some("42"));
    }

    #[test]
    fn a_run_with_a_status_keeps_no_managed_fields_and_of_its_delivery_only_that_it_is_under_way() {
        let mut run = new_run("r1", PR1, SHA_A, 0);
        run.metadata.managed_fields = Some(vec![written_by("bot"), written_by("review-operator")]);
        let delivery =
            |state| Delivery { check_run_id: Some(7), message: Some("posted".into()), ..Delivery::new(state) };
        run.status = Some(ReviewRunStatus {
            phase: Some(RunPhase::Running),
            delivery: Some(delivery(DeliveryState::Pending)),
            ..ReviewRunStatus::default()
        });
        trim_run(&mut run);
        assert_eq!(run.metadata.managed_fields, None);
        let status = run.status.clone().unwrap();
        assert_eq!(
            (status.phase, status.delivery),
            (Some(RunPhase::Running), Some(Delivery::new(DeliveryState::Pending)))
        );

        run.status.as_mut().unwrap().delivery = Some(delivery(DeliveryState::Delivered));
        trim_run(&mut run);
        assert_eq!(run.status.unwrap().delivery, None, "a final delivery is not kept");
    }

    #[test]
    fn only_the_cancel_reason_annotation_is_kept() {
        let mut run = new_run("r1", PR1, SHA_A, 0);
        run.metadata.annotations = Some(BTreeMap::from([
            ("kubectl.kubernetes.io/last-applied-configuration".to_owned(), "{...}".to_owned()),
            (ANNOTATION_CANCEL_REASON.to_owned(), "merged".to_owned()),
        ]));
        trim_run(&mut run);
        assert_eq!(
            run.metadata.annotations,
            Some(BTreeMap::from([(ANNOTATION_CANCEL_REASON.to_owned(), "merged".to_owned())]))
        );
        run.metadata.annotations = Some(BTreeMap::from([("note".to_owned(), "x".to_owned())]));
        trim_run(&mut run);
        assert_eq!(run.metadata.annotations, None);
    }

    #[test]
    fn pods_keep_their_status_and_no_spec() {
        let mut pod = Pod { spec: Some(Default::default()), status: Some(Default::default()), ..Pod::default() };
        pod.metadata.managed_fields = Some(vec![written_by("kubelet")]);
        trim_pod(&mut pod);
        assert!(pod.spec.is_none() && pod.status.is_some());
        assert_eq!(pod.metadata.managed_fields.unwrap()[0].fields_v1, None);
    }
}
