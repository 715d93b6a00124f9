//! Helpers for `metav1.Condition` lists.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// `Condition.status` values.
pub const TRUE: &str = "True";
/// `Condition.status` values.
pub const FALSE: &str = "False";
/// `Condition.status` values.
pub const UNKNOWN: &str = "Unknown";

/// Finds the condition of `type_`.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` exists with `status`.
pub fn is(conditions: &[Condition], type_: &str, status: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == status)
}

/// The desired state of one condition; [`set`] turns it into a `Condition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition<'a> {
    pub type_: &'a str,
    pub status: &'a str,
    pub reason: &'a str,
    pub message: String,
}

/// Sets a condition, keeping `lastTransitionTime` unless the status changes,
/// so that setting the same condition twice changes nothing.
pub fn set(
    conditions: &mut Vec<Condition>,
    desired: DesiredCondition<'_>,
    observed_generation: Option<i64>,
    now: Timestamp,
) {
    let existing = conditions.iter_mut().find(|c| c.type_ == desired.type_);
    let transition = match &existing {
        Some(c) if c.status == desired.status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: desired.type_.to_owned(),
        status: desired.status.to_owned(),
        reason: desired.reason.to_owned(),
        message: desired.message,
        observed_generation,
        last_transition_time: transition,
    };
    match existing {
        Some(slot) => *slot = condition,
        None => conditions.push(condition),
    }
}
