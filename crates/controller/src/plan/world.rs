//! An in-memory cluster for one Reviewer, shared by the planner's unit tests
//! and its model test. It executes a plan's steps in order, as the executor
//! does, checks every ReviewRun status
//! write against the CRD's CEL rules (as the API server would), and gives
//! pods the name semantics of the API server (409 on a taken name, 404 or 409
//! on deletion with a UID precondition).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResourceExt;
use kube_cel::CompiledSchema;

use super::*;
use crate::api::ReviewResult;

pub use crate::api::testing::*;

thread_local! {
    /// The ReviewRun CRD's schema, compiled once per test thread.
    static RUN_SCHEMA: CompiledSchema = {
        let crd = serde_json::to_value(ReviewRun::crd()).unwrap();
        kube_cel::compile_schema(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    };
}

/// An in-memory cluster for one Reviewer: `observed` is its whole state.
pub struct World {
    pub observed: ObservedReviewer,
    /// Whether created pods show up in the next observation.
    pub pods_become_visible: bool,
    /// Whether created pods show up running and ready, or Pending.
    pub pods_start: bool,
    /// How many pods were ever created under each name.
    pub pods_created: BTreeMap<String, usize>,
    /// UIDs of every pod ever created.
    pub pod_uids: BTreeSet<String>,
    /// The last `resourceVersion` given to a run: one sequence for every
    /// run write, as the API server's.
    pub revision: u64,
    /// Runs deleted, as they were when deleted.
    pub deleted: BTreeMap<String, ReviewRun>,
    /// Give runs `resourceVersion`s that are not integers.
    pub opaque_revisions: bool,
}

impl World {
    pub fn new() -> Self {
        Self::without_reviewer().with_reviewer()
    }

    pub fn without_reviewer() -> Self {
        Self {
            observed: ObservedReviewer { name: NAME.into(), ..ObservedReviewer::default() },
            pods_become_visible: true,
            pods_start: true,
            pods_created: BTreeMap::new(),
            pod_uids: BTreeSet::new(),
            revision: 0,
            deleted: BTreeMap::new(),
            opaque_revisions: false,
        }
    }

    pub fn with_reviewer(mut self) -> Self {
        self.observed.reviewer = Some(reviewer());
        self
    }

    /// Creates `run`: it gets the next `resourceVersion`.
    pub fn add(&mut self, mut run: ReviewRun) {
        run.metadata.resource_version = Some(self.next_revision());
        self.observed.runs.push(run);
    }

    /// Gives the run `name` a new `resourceVersion`, as any write does.
    pub fn touch(&mut self, name: &str) {
        let revision = self.next_revision();
        self.run_mut(name).metadata.resource_version = Some(revision);
    }

    fn next_revision(&mut self) -> String {
        self.revision += 1;
        if self.opaque_revisions { format!("opaque-{}", self.revision) } else { self.revision.to_string() }
    }

    pub fn find_run(&self, name: &str) -> Option<&ReviewRun> {
        self.observed.runs.iter().find(|r| r.metadata.name.as_deref() == Some(name))
    }

    pub fn run(&self, name: &str) -> &ReviewRun {
        self.find_run(name).unwrap()
    }

    pub fn run_mut(&mut self, name: &str) -> &mut ReviewRun {
        self.observed.runs.iter_mut().find(|r| r.metadata.name.as_deref() == Some(name)).unwrap()
    }

    pub fn status(&self, name: &str) -> ReviewRunStatus {
        self.run(name).status.clone().unwrap_or_default()
    }

    pub fn reviewer_status(&self) -> ReviewerStatus {
        self.observed.reviewer.as_ref().and_then(|r| r.status.clone()).unwrap_or_default()
    }

    /// Writes a run status the way the API server would: rejected, with the
    /// CEL error, when it breaks a rule of the CRD.
    pub fn try_write_run_status(&mut self, name: &str, status: ReviewRunStatus) -> Result<(), String> {
        let Some(run) = self.find_run(name) else { return Err(format!("reviewruns {name:?} not found")) };
        let old = serde_json::to_value(run).unwrap();
        let mut new = self.run(name).clone();
        new.status = Some(status);
        let new_value = serde_json::to_value(&new).unwrap();
        if let Err(errors) = RUN_SCHEMA.with(|schema| kube_cel::validate_compiled(schema, &new_value, Some(&old))) {
            for error in errors.iter() {
                // A rule kube-cel cannot evaluate would also "reject"; insist on a real verdict.
                assert_eq!(error.kind, kube_cel::ErrorKind::ValidationFailure, "{error}");
            }
            return Err(errors.to_string());
        }
        *self.run_mut(name) = new;
        self.touch(name);
        Ok(())
    }

    /// [`Self::try_write_run_status`] for writes that must be accepted.
    pub fn write_run_status(&mut self, name: &str, status: ReviewRunStatus) {
        if let Err(errors) = self.try_write_run_status(name, status) {
            panic!("the apiserver would reject the status of {name}: {errors}");
        }
    }

    /// The reviewer pod submits its verdict: a merge patch of the status
    /// subresource setting phase, reason and result.
    pub fn try_submit(&mut self, name: &str, verdict: Verdict, body: &str, when: i64) -> Result<(), String> {
        let mut status = self.status(name);
        status.phase = Some(RunPhase::Succeeded);
        status.reason = Some(RunReason::Submitted);
        status.result =
            Some(ReviewResult { verdict, body: body.into(), review_id: None, submitted_at: Time(at(when)) });
        self.try_write_run_status(name, status)
    }

    /// [`Self::try_submit`] for submissions that must be accepted.
    pub fn submit(&mut self, name: &str, verdict: Verdict, body: &str, when: i64) {
        if let Err(errors) = self.try_submit(name, verdict, body, when) {
            panic!("the apiserver would reject the submission for {name}: {errors}");
        }
    }

    /// Deletes a pod with a UID precondition: `Ok(false)` when it was already
    /// gone (404), a conflict (409) when the name now belongs to another pod.
    pub fn delete_pod(&mut self, deletion: &PodDeletion) -> Result<bool, ApiErrorClass> {
        match self.observed.pods.iter().position(|pod| pod.name == deletion.name) {
            None => Ok(false),
            Some(index) if self.observed.pods[index].uid != deletion.uid => {
                Err(ApiErrorClass::of(PodOperation::Delete, Some(409), ""))
            }
            Some(index) => {
                self.observed.pods.remove(index);
                Ok(true)
            }
        }
    }

    /// Creates the pod of `launch`: `false` when the name is taken (409).
    /// Every pod gets a new UID, even under a name used before.
    pub fn create_pod(&mut self, launch: &PodLaunch) -> bool {
        if self.observed.pods.iter().any(|pod| pod.name == launch.name) {
            return false;
        }
        let count = self.pods_created.entry(launch.name.clone()).or_default();
        *count += 1;
        let uid = match *count {
            1 => format!("uid-{}", launch.name),
            n => format!("uid-{}-{n}", launch.name),
        };
        self.pod_uids.insert(uid.clone());
        self.observed.pods.push(ObservedPod {
            name: launch.name.clone(),
            uid,
            incarnation: launch.incarnation,
            phase: if self.pods_start { PodPhase::Running } else { PodPhase::Pending },
            ready: self.pods_start,
            deleting: false,
            ..ObservedPod::default()
        });
        true
    }

    /// Executes one step of a plan; status writes must be accepted.
    pub fn apply_step(&mut self, step: &Step) {
        match step {
            Step::AddFinalizer | Step::RemoveFinalizer => {
                if let Some(reviewer) = self.observed.reviewer.as_mut() {
                    let finalizers = reviewer.metadata.finalizers.get_or_insert_with(Vec::new);
                    if matches!(step, Step::AddFinalizer) {
                        finalizers.push(FINALIZER.into());
                    } else {
                        finalizers.retain(|f| f != FINALIZER);
                    }
                    if reviewer.metadata.deletion_timestamp.is_some() && finalizers.is_empty() {
                        self.observed.reviewer = None;
                    }
                }
            }
            Step::LabelRuns(labels) => {
                for labels in labels {
                    self.label_run(labels);
                }
            }
            Step::DeleteRuns(deletions) => {
                for deletion in deletions {
                    self.delete_run(deletion);
                }
            }
            Step::WriteRunStatuses(updates) => {
                for update in updates {
                    self.write_run_status(&update.run, update.status.clone());
                }
            }
            Step::WriteReviewerStatus(status) => self.set_reviewer_status(status),
            Step::DeletePod(deletion) => {
                self.delete_pod(deletion).unwrap();
            }
            Step::CreatePod(launch) => {
                if self.pods_become_visible {
                    self.create_pod(launch);
                }
            }
            Step::EmitEvents(_) => {}
        }
    }

    /// Deletes a run if it still has the deletion's UID.
    pub fn delete_run(&mut self, deletion: &RunDeletion) {
        let (deleted, kept) = std::mem::take(&mut self.observed.runs)
            .into_iter()
            .partition(|run| run.metadata.uid.as_deref() == Some(deletion.uid.as_str()));
        self.observed.runs = kept;
        let deleted: Vec<ReviewRun> = deleted;
        self.deleted.extend(deleted.into_iter().map(|run| (deletion.name.clone(), run)));
    }

    /// Merges labels into a run, which gives it a new `resourceVersion`.
    pub fn label_run(&mut self, labels: &RunLabels) {
        if self.find_run(&labels.run).is_none() {
            return;
        }
        let run = self.run_mut(&labels.run);
        run.metadata.labels.get_or_insert_with(BTreeMap::new).extend(labels.labels.clone());
        self.touch(&labels.run);
    }

    pub fn set_reviewer_status(&mut self, status: &ReviewerStatus) {
        if let Some(reviewer) = self.observed.reviewer.as_mut() {
            reviewer.status = Some(status.clone());
        }
    }

    pub fn apply(&mut self, plan: &ReviewerPlan) {
        for step in &plan.steps {
            self.apply_step(step);
        }
    }

    /// Plans and applies until nothing changes; returns the plans that
    /// changed something. Checks that only the first plan fails runs,
    /// restarts or creates pods, and that planning is deterministic.
    pub fn converge(&mut self, now: i64) -> Vec<ReviewerPlan> {
        let mut plans = Vec::new();
        loop {
            let plan = plan_reviewer(&self.observed, at(now));
            assert_eq!(plan, plan_reviewer(&self.observed, at(now)), "planning is deterministic");
            if plan.is_noop() {
                return plans;
            }
            if let Some(previous) = plans.last() {
                let previous: &ReviewerPlan = previous;
                assert!(previous.pod_creation().is_some(), "only a pod creation needs a follow-up plan: {plan:#?}");
                assert!(plan.restart.is_none() && plan.pod_creation().is_none() && plan.pod_deletions().is_empty());
                assert!(
                    plan.run_updates().iter().all(|u| matches!(u.change, RunChange::Assigned | RunChange::Reassigned)),
                    "the follow-up plan only assigns: {plan:#?}"
                );
            }
            assert!(plans.len() < 2, "planning did not converge: {plan:#?}");
            self.apply(&plan);
            plans.push(plan);
        }
    }

    /// The first plan of [`Self::converge`].
    pub fn step(&mut self, now: i64) -> ReviewerPlan {
        self.converge(now).into_iter().next().unwrap_or_default()
    }
}
