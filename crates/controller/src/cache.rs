//! What the controller's caches keep of each object: what the planner reads
//! and what its writes and events name, nothing more. At 200,000 runs the
//! run cache is most of the controller's memory, so every field dropped here
//! is paid for once per run ever kept, and runs are kept encoded
//! ([`CachedRun`]).

use std::sync::Arc;

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
/// under way (a finished run is not deleted then), so only that is kept. Of
/// the result only the verdict is read: the body (up to 64 KiB) and review
/// ID are the delivery loop's, and the controller never writes the result
/// back (see `executor`).
pub fn trim_run(run: &mut ReviewRun) {
    trim_managed_fields(run);
    if let Some(status) = run.status.as_mut() {
        run.metadata.managed_fields = None;
        status.delivery = status
            .delivery
            .take()
            .filter(|delivery| !delivery.state.is_final())
            .map(|delivery| Delivery::new(delivery.state));
        if let Some(result) = status.result.as_mut() {
            result.body = String::new();
            result.review_id = None;
        }
    }
    if let Some(annotations) = run.metadata.annotations.as_mut() {
        annotations.retain(|key, _| key == ANNOTATION_CANCEL_REASON);
        if annotations.is_empty() {
            run.metadata.annotations = None;
        }
    }
}

/// A run as the run cache keeps it: the trimmed run as JSON, with the
/// strings every run repeats ([`COMMON`]) packed into two bytes each.
/// Decoded, a run takes about 2.5 kB in some 30 allocations, and a reflector
/// store adds a key of four more strings; its JSON takes about 1 kB, and
/// packed about 0.45 kB, in one allocation. Only a reconcile decodes, and
/// only its own Reviewer's runs.
#[derive(Clone, Debug)]
pub struct CachedRun(Arc<[u8]>);

impl CachedRun {
    /// Fails only for a run that cannot be JSON, which the API never sends.
    pub fn encode(run: &ReviewRun) -> Result<Self, serde_json::Error> {
        serde_json::to_vec(run).map(|json| Self(pack(&json).into()))
    }

    /// The run as it was encoded.
    pub fn decode(&self) -> Result<ReviewRun, serde_json::Error> {
        serde_json::from_slice(&unpack(&self.0))
    }
}

/// Byte strings of the JSON of most runs, as `serde_json` writes it (keys
/// in field order), packed as [`ESCAPE`] and their index. Where one is a
/// prefix of another, the longer comes first. A string missing here is
/// kept as it is, so this list only decides how small runs get.
const COMMON: &[&str] = &[
    r#"{"apiVersion":"review.ao.dev/v1alpha1","kind":"ReviewRun","metadata":{"#,
    r#""creationTimestamp":""#,
    r#""generation":"#,
    r#""labels":{"review.ao.dev/pr":""#,
    r#""review.ao.dev/reviewer":""#,
    r#""managedFields":[{"apiVersion":"review.ao.dev/v1alpha1","fieldsType":"FieldsV1","manager":""#,
    r#""namespace":""#,
    r#""name":""#,
    r#""resourceVersion":""#,
    r#""uid":""#,
    r#""spec":{"reviewer":""#,
    r#""pullRequest":{"url":"https://github.com/"#,
    r#""headSha":""#,
    r#""previousHeadSha":""#,
    r#""cancelRequested":false,"timeout":"1h"},"#,
    r#""status":{"phase":""#,
    r#""message":""#,
    r#""shortSha":""#,
    r#""supersededBy":""#,
    r#""assignment":{"pod":""#,
    r#""podUID":""#,
    r#""incarnation":"#,
    r#""startTime":""#,
    r#""completionTime":""#,
    r#""result":{"verdict":""#,
    r#""conditions":[{"lastTransitionTime":""#,
    r#"{"lastTransitionTime":""#,
    r#""The run is for the pull request's head commit","observedGeneration":"#,
    r#""The pull request has a newer head commit","observedGeneration":"#,
    r#""The reviewer is reviewing the pull request","observedGeneration":"#,
    r#""Waiting for the reviewer pod","observedGeneration":"#,
    r#""The review was submitted","observedGeneration":"#,
    r#""observedGeneration":"#,
    r#""reason":"HeadCommit","status":"True","type":"Current"}"#,
    r#""reason":"Superseded","status":"False","type":"Current"}"#,
    r#""reason":"Running","status":"Unknown","type":"Succeeded"}"#,
    r#""reason":"Pending","status":"Unknown","type":"Succeeded"}"#,
    r#""reason":""#,
    r#""status":""#,
    r#""type":""#,
    r#""creationRevision":""#,
    "Assigned to reviewer pod ",
    "superseded by ",
    "Superseded",
    "Succeeded",
    "Failed",
    "Running",
    "Pending",
];

/// Marks a packed string; UTF-8, and so JSON, never has this byte.
const ESCAPE: u8 = 0xFF;

/// For each byte, the strings of [`COMMON`] that start with it, one bit per
/// index: most bytes start none, so packing costs little more than a copy.
const STARTING_WITH: [u64; 256] = {
    assert!(COMMON.len() <= 64);
    let mut table = [0; 256];
    let mut index = 0;
    while index < COMMON.len() {
        table[COMMON[index].as_bytes()[0] as usize] |= 1 << index;
        index += 1;
    }
    table
};

fn pack(json: &[u8]) -> Vec<u8> {
    let mut packed = Vec::with_capacity(json.len());
    let mut rest = json;
    'bytes: while let Some((&first, tail)) = rest.split_first() {
        let mut candidates = STARTING_WITH[usize::from(first)];
        // Lowest index first, so that a longer string wins over its prefix.
        while candidates != 0 {
            let index = candidates.trailing_zeros();
            candidates &= candidates - 1;
            let Some(common) = COMMON.get(index as usize) else { break };
            if rest.starts_with(common.as_bytes())
                && let Ok(index) = u8::try_from(index)
            {
                packed.extend([ESCAPE, index]);
                rest = &rest[common.len()..];
                continue 'bytes;
            }
        }
        packed.push(first);
        rest = tail;
    }
    packed
}

/// The JSON `pack` was given; an unknown index, which `pack` never writes,
/// is dropped and leaves JSON that does not parse.
fn unpack(packed: &[u8]) -> Vec<u8> {
    let mut json = Vec::with_capacity(packed.len() * 2);
    let mut bytes = packed.iter();
    while let Some(&byte) = bytes.next() {
        if byte == ESCAPE {
            let common = bytes.next().and_then(|&index| COMMON.get(usize::from(index)));
            json.extend_from_slice(common.map_or(&[][..], |common| common.as_bytes()));
        } else {
            json.push(byte);
        }
    }
    json
}

/// A run as the delivery loop reads it: its spec, and its status but for the
/// review's body once the delivery is final (a final delivery is never
/// planned again). Who wrote it and its annotations are never read.
pub fn trim_for_delivery(run: &mut ReviewRun) {
    run.metadata.managed_fields = None;
    run.metadata.annotations = None;
    if let Some(status) = run.status.as_mut()
        && status.delivery.as_ref().is_some_and(|delivery| delivery.state.is_final())
        && let Some(result) = status.result.as_mut()
    {
        result.body = String::new();
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

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        Condition, FieldsV1, ManagedFieldsEntry, OwnerReference, Time,
    };

    use super::*;
    use crate::api::history::order::revision_to_record;
    use crate::api::testing::{PR1, SHA_A, SHA_B, at, new_run, reviewer};
    use crate::api::{
        Assignment, Delivery, DeliveryState, ReviewResult, ReviewRunStatus, RunPhase, RunReason, Verdict, labels,
    };
    use crate::plan::{ObservedReviewer, plan_reviewer};

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

    fn observed(runs: Vec<ReviewRun>) -> ObservedReviewer {
        ObservedReviewer { name: crate::api::testing::NAME.into(), reviewer: Some(reviewer()), runs, pods: Vec::new() }
    }

    /// Writes the planner's status of `run` until it has nothing to write.
    fn settle(mut run: ReviewRun, now: i64) -> ReviewRun {
        for _ in 0..3 {
            let plan = plan_reviewer(&observed(vec![run.clone()]), at(now));
            let Some(update) = plan.run_updates().into_iter().find(|update| update.run == "r1").cloned() else {
                return run;
            };
            run.status = Some(update.status);
        }
        panic!("the planner keeps writing {run:?}");
    }

    /// `r1`, reviewed with changes requested: the planner's own status, the
    /// verdict as the reviewer pod submitted it.
    fn reviewed_run() -> ReviewRun {
        let mut run = new_run("r1", PR1, SHA_A, 0);
        run.metadata.resource_version = Some("7".into());
        run = settle(run, 1);
        let status = run.status.get_or_insert_default();
        status.phase = Some(RunPhase::Succeeded);
        status.reason = Some(RunReason::Submitted);
        status.result = Some(ReviewResult {
            verdict: Verdict::ChangesRequested,
            body: "Please add a test.".repeat(1000),
            review_id: Some("42".into()),
            submitted_at: Time(at(5)),
        });
        settle(run, 6)
    }

    #[test]
    fn of_a_result_only_the_verdict_is_kept() {
        let mut run = reviewed_run();
        trim_run(&mut run);
        let result = run.status.and_then(|status| status.result).unwrap();
        assert_eq!((result.verdict, result.body.as_str(), result.review_id), (Verdict::ChangesRequested, "", None));
        assert_eq!(result.submitted_at, Time(at(5)));
    }

    #[test]
    fn without_the_result_body_the_planner_writes_the_same_statuses() {
        let reviewed = reviewed_run();
        let mut trimmed = reviewed.clone();
        trim_run(&mut trimmed);
        // Nothing to write for the run as it is: the cache does not make its status look changed.
        let plan = plan_reviewer(&observed(vec![trimmed.clone()]), at(20));
        assert!(plan.run_updates().iter().all(|update| update.run != "r1"), "{:?}", plan.run_updates());
        // A newer push outdates it: the status written, without the result
        // as the executor writes it, is the same as from the whole run.
        let push = new_run("r2", PR1, SHA_B, 10);
        let now = at(20);
        let written = |run: ReviewRun| {
            let plan = plan_reviewer(&observed(vec![run, push.clone()]), now);
            let update = plan.run_updates().into_iter().find(|update| update.run == "r1").cloned().unwrap();
            (update.change, ReviewRunStatus { result: None, ..update.status })
        };
        let (change, status) = written(trimmed);
        assert_eq!((change, status.clone()), written(reviewed));
        assert!(crate::api::conditions::is(&status.conditions, crate::api::CONDITION_CURRENT, "False"));
    }

    /// A run with every field the planner reads, as the API server sends it
    /// (timestamps in whole seconds), trimmed.
    fn full_run() -> ReviewRun {
        let mut run = new_run("r1", PR1, SHA_A, 0);
        run.spec.pull_request.previous_head_sha = Some(SHA_B.into());
        run.spec.pull_request.number = Some(1);
        run.spec.cancel_requested = true;
        run.metadata.resource_version = Some("42".into());
        run.metadata.labels = Some(labels::run_labels("review-w1", PR1));
        run.metadata.annotations = Some(BTreeMap::from([(ANNOTATION_CANCEL_REASON.to_owned(), "merged".to_owned())]));
        run.metadata.finalizers = Some(vec!["example.com/keep".into()]);
        run.metadata.deletion_timestamp = Some(Time(at(9)));
        run.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: "uid-owner".into(),
            ..OwnerReference::default()
        }]);
        run.status = Some(ReviewRunStatus {
            phase: Some(RunPhase::Failed),
            reason: Some(RunReason::Cancelled),
            message: Some("Cancelled: merged".into()),
            short_sha: Some("aaaaaaa".into()),
            superseded_by: Some("r2".into()),
            assignment: Some(Assignment { pod: "review-w1-1".into(), pod_uid: "uid-pod".into(), incarnation: 1 }),
            start_time: Some(Time(at(1))),
            completion_time: Some(Time(at(2))),
            conditions: vec![Condition {
                type_: "Succeeded".into(),
                status: "False".into(),
                reason: "Cancelled".into(),
                message: "Cancelled: merged".into(),
                observed_generation: Some(1),
                last_transition_time: Time(at(2)),
            }],
            observed_generation: Some(1),
            creation_revision: Some("41".into()),
            ..ReviewRunStatus::default()
        });
        trim_run(&mut run);
        run
    }

    #[test]
    fn a_cached_run_decodes_to_the_run_it_kept() {
        for run in [full_run(), reviewed_run(), new_run("r2", PR1, SHA_B, 3)] {
            assert_eq!(CachedRun::encode(&run).unwrap().decode().unwrap(), run);
        }
        let mut waiting = new_run("r3", PR1, SHA_B, 3);
        waiting.metadata.managed_fields = Some(vec![written_by("bot")]);
        trim_run(&mut waiting);
        assert_eq!(CachedRun::encode(&waiting).unwrap().decode().unwrap(), waiting);
    }

    #[test]
    fn packing_gives_back_any_text() {
        // Each string packs as itself: none is hidden behind a prefix listed before it.
        for (index, common) in COMMON.iter().enumerate() {
            assert_eq!(pack(common.as_bytes()), [ESCAPE, u8::try_from(index).unwrap()], "{common}");
        }
        let mut texts: Vec<String> = COMMON.iter().map(|common| common.to_string()).collect();
        texts.push(COMMON.concat());
        texts.push(COMMON.iter().map(|common| &common[..common.len() - 1]).collect::<Vec<_>>().join("\u{e9}"));
        texts.extend(["".into(), "\"\"".into(), "ünïcødé \u{1F600} \"name\":\"x\"".into()]);
        for text in texts {
            assert_eq!(unpack(&pack(text.as_bytes())), text.as_bytes(), "{text}");
        }
    }

    #[test]
    fn a_packed_run_is_about_half_its_json() {
        let mut run = reviewed_run();
        run.metadata.labels = Some(labels::run_labels("review-w1", PR1));
        trim_run(&mut run);
        let json = serde_json::to_vec(&run).unwrap();
        let packed = pack(&json);
        assert!(packed.len() * 2 < json.len() + 100, "{} of {} bytes", packed.len(), json.len());
    }

    #[test]
    fn pods_keep_their_status_and_no_spec() {
        let mut pod = Pod { spec: Some(Default::default()), status: Some(Default::default()), ..Pod::default() };
        pod.metadata.managed_fields = Some(vec![written_by("kubelet")]);
        trim_pod(&mut pod);
        assert!(pod.spec.is_none() && pod.status.is_some());
        assert_eq!(pod.metadata.managed_fields.unwrap()[0].fields_v1, None);
    }

    #[test]
    fn delivery_keeps_the_review_body_until_its_delivery_is_final() {
        let mut run = reviewed_run();
        run.metadata.annotations = Some(BTreeMap::from([("note".to_owned(), "x".to_owned())]));
        run.metadata.managed_fields = Some(vec![written_by("bot")]);
        run.status.as_mut().unwrap().delivery = Some(Delivery::new(DeliveryState::Pending));
        let body = run.status.as_ref().unwrap().result.as_ref().unwrap().body.clone();
        trim_for_delivery(&mut run);
        assert_eq!((run.metadata.managed_fields.as_ref(), run.metadata.annotations.as_ref()), (None, None));
        assert_eq!(run.status.as_ref().unwrap().result.as_ref().unwrap().body, body, "still to be posted");

        run.status.as_mut().unwrap().delivery = Some(Delivery::new(DeliveryState::Delivered));
        trim_for_delivery(&mut run);
        let status = run.status.unwrap();
        assert_eq!(
            status.result.map(|result| (result.verdict, result.body)),
            Some((Verdict::ChangesRequested, String::new()))
        );
        assert_eq!(status.delivery.map(|delivery| delivery.state), Some(DeliveryState::Delivered));
    }
}
