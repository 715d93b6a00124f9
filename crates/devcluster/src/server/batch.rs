//! Jobs and CronJobs (`batch/v1`): the parts of their registry strategies that clients see. A
//! new Job gets the selector and pod labels the job controller keys on; validation refuses pod
//! templates that restart (`Always`), selectors that miss the template's labels, and changes to
//! what is immutable. No controller runs their pods.

use serde_json::{Map, Value, json};

use crate::auth::UserInfo;
use crate::error::Cause;
use crate::meta;
use crate::registry::ResourceInfo;
use crate::schema::fields;

/// The label holding the Job's UID, on its pods and in its generated selector.
const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// The label holding the Job's name, on its pods.
const JOB_NAME: &str = "batch.kubernetes.io/job-name";

/// `PrepareForCreate`: no status, and unless `spec.manualSelector` is true, the selector on the
/// Job's UID with the labels (current and legacy) on the pod template, as `generateSelector` does.
pub(super) fn prepare_job(info: &ResourceInfo, user: &UserInfo, object: &mut Map<String, Value>) {
    super::strategy::clear_status(info, user, object);
    let uid = object.get("metadata").map(|m| meta::str_at(m, "/uid").to_string()).unwrap_or_default();
    let name = object.get("metadata").map(|m| meta::str_at(m, "/name").to_string()).unwrap_or_default();
    let Some(Value::Object(spec)) = object.get_mut("spec") else { return };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(Value::Object(template)) = spec.get_mut("template") {
        let metadata = template.entry("metadata").or_insert_with(|| json!({}));
        if let Some(metadata) = metadata.as_object_mut() {
            let labels = metadata.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                for (key, value) in
                    [(CONTROLLER_UID, &uid), (JOB_NAME, &name), ("controller-uid", &uid), ("job-name", &name)]
                {
                    labels.entry(key).or_insert_with(|| json!(value));
                }
            }
        }
    }
    spec.entry("selector").or_insert_with(|| json!({"matchLabels": {CONTROLLER_UID: uid}}));
}

/// Validation of a Job: a template that does not restart, whose labels the selector selects;
/// on updates the selector and the template's spec stay as they were.
pub(super) fn validate_job(object: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = validate_job_spec(object.get("spec"), "spec");
    if let Some(old) = old {
        for field in ["selector", "template", "completionMode"] {
            let path = format!("/spec/{field}");
            if let (Some(now), Some(before)) = (object.pointer(&path), old.pointer(&path))
                && now != before
            {
                causes.push(fields::invalid(&format!("spec.{field}"), now, "field is immutable"));
            }
        }
    }
    causes
}

fn validate_job_spec(spec: Option<&Value>, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(spec) = spec else {
        return vec![fields::required(&format!("{path}.template"), "")];
    };
    let restart = spec.pointer("/template/spec/restartPolicy").cloned().unwrap_or(json!(""));
    if !matches!(restart.as_str(), Some("OnFailure" | "Never")) {
        let supported = ["OnFailure".to_string(), "Never".to_string()];
        causes.push(fields::not_supported(&format!("{path}.template.spec.restartPolicy"), &restart, &supported));
    }
    if spec.pointer("/template/spec/containers").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        causes.push(fields::required(&format!("{path}.template.spec.containers"), ""));
    }
    for field in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"] {
        if let Some(value) = spec.get(field).filter(|v| v.as_i64().is_some_and(|n| n < 0)) {
            causes.push(fields::invalid(&format!("{path}.{field}"), value, "must be greater than or equal to 0"));
        }
    }
    let labels = spec.pointer("/template/metadata/labels").and_then(Value::as_object);
    if let Some(match_labels) = spec.pointer("/selector/matchLabels").and_then(Value::as_object) {
        let selected = match_labels.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        if !selected {
            causes.push(fields::invalid(
                &format!("{path}.template.metadata.labels"),
                &labels.map_or(json!({}), |l| Value::Object(l.clone())),
                "`selector` does not match template `labels`",
            ));
        }
    }
    causes
}

/// Validation of a CronJob: a schedule in cron syntax (five fields or a `@` macro) and a job
/// template that a Job would accept.
pub(super) fn validate_cron_job(object: &Value, _: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let schedule = object.pointer("/spec/schedule").and_then(Value::as_str).unwrap_or_default();
    if schedule.is_empty() {
        causes.push(fields::required("spec.schedule", ""));
    } else if let Err(problem) = check_schedule(schedule) {
        causes.push(fields::invalid("spec.schedule", &json!(schedule), &problem));
    }
    let job_spec = object.pointer("/spec/jobTemplate/spec");
    causes.extend(validate_job_spec(job_spec, "spec.jobTemplate.spec"));
    causes
}

/// Whether a schedule parses as robfig/cron's standard parser reads it.
fn check_schedule(schedule: &str) -> Result<(), String> {
    let spec = schedule.split_once(' ').filter(|(tz, _)| tz.starts_with("TZ=") || tz.starts_with("CRON_TZ="));
    let spec = spec.map_or(schedule, |(_, rest)| rest).trim();
    if let Some(name) = spec.strip_prefix('@') {
        return match name {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => Ok(()),
            _ if name.starts_with("every ") => Ok(()),
            _ => Err(format!("unrecognized descriptor: {spec}")),
        };
    }
    let parts: Vec<&str> = spec.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: [{}]", parts.len(), parts.join(" ")));
    }
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for (part, (low, high)) in parts.iter().zip(ranges) {
        for item in part.split(',') {
            let (range, step) = item.split_once('/').map_or((item, None), |(r, s)| (r, Some(s)));
            if let Some(step) = step {
                step.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| format!("invalid step in {item}"))?;
            }
            if range == "*" || range == "?" {
                continue;
            }
            for bound in range.split('-') {
                let number = bound.parse::<u32>().ok().or_else(|| named(bound));
                let Some(number) = number else { return Err(format!("failed to parse int from {bound}")) };
                if number < low || number > high {
                    return Err(format!("end of range ({number}) above maximum ({high}): {item}"));
                }
            }
        }
    }
    Ok(())
}

/// Month and weekday names (`JAN`, `MON`), as robfig/cron accepts them.
fn named(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
    const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let upper = name.to_ascii_uppercase();
    let month = MONTHS.iter().position(|m| *m == upper).map(|i| i as u32 + 1);
    month.or_else(|| DAYS.iter().position(|d| *d == upper).map(|i| i as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Value {
        json!({"metadata": {"name": "j", "uid": "u-1"}, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})
    }

    fn info() -> ResourceInfo {
        crate::builtin::builtin_resources().into_iter().find(|r| r.resource == "jobs").expect("jobs")
    }

    #[test]
    fn new_jobs_select_their_pods_by_uid() {
        let mut object = job();
        prepare_job(&info(), &UserInfo::admin(), object.as_object_mut().expect("an object"));
        assert_eq!(object.pointer("/spec/selector"), Some(&json!({"matchLabels": {CONTROLLER_UID: "u-1"}})));
        assert_eq!(
            object.pointer("/spec/template/metadata/labels"),
            Some(&json!({CONTROLLER_UID: "u-1", JOB_NAME: "j", "controller-uid": "u-1", "job-name": "j"}))
        );
        assert!(validate_job(&object, None).is_empty(), "{:?}", validate_job(&object, None));
        let mut manual = job();
        manual["spec"]["manualSelector"] = json!(true);
        prepare_job(&info(), &UserInfo::admin(), manual.as_object_mut().expect("an object"));
        assert!(manual.pointer("/spec/selector").is_none());
    }

    #[test]
    fn jobs_that_restart_or_miss_their_labels_are_invalid() {
        let mut always = job();
        always["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        let causes = validate_job(&always, None);
        assert_eq!(causes[0].field, "spec.template.spec.restartPolicy");
        assert_eq!(causes[0].message, "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"");
        let mut unselected = job();
        unselected["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        let causes = validate_job(&unselected, None);
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
        let mut negative = job();
        negative["spec"]["backoffLimit"] = json!(-1);
        assert_eq!(validate_job(&negative, None)[0].field, "spec.backoffLimit");
        assert_eq!(validate_job(&json!({}), None)[0].field, "spec.template");
        let mut empty = job();
        empty["spec"]["template"]["spec"]["containers"] = json!([]);
        assert_eq!(validate_job(&empty, None)[0].field, "spec.template.spec.containers");
    }

    #[test]
    fn a_jobs_selector_and_template_are_immutable() {
        let old = job();
        let mut changed = job();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx");
        let causes = validate_job(&changed, Some(&old));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.template");
        assert!(causes[0].message.ends_with("field is immutable"), "{}", causes[0].message);
        assert!(validate_job(&old, Some(&old)).is_empty());
    }

    #[test]
    fn cron_schedules_are_checked() {
        for good in ["* * * * *", "*/5 0-6 1,15 JAN-MAR MON", "@hourly", "CRON_TZ=UTC 0 0 * * *", "0 0 ? * 7"] {
            assert_eq!(check_schedule(good), Ok(()), "{good}");
        }
        for bad in ["* * * *", "61 * * * *", "x * * * *", "@often", "*/0 * * * *"] {
            assert!(check_schedule(bad).is_err(), "{bad}");
        }
        let cron = |schedule: &str| {
            json!({"spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}}}}}})
        };
        assert!(validate_cron_job(&cron("0 * * * *"), None).is_empty());
        let causes = validate_cron_job(&cron("bad"), None);
        assert_eq!(causes[0].field, "spec.schedule");
        assert_eq!(validate_cron_job(&cron(""), None)[0].message, "Required value");
        let no_template = json!({"spec": {"schedule": "@daily"}});
        assert_eq!(validate_cron_job(&no_template, None)[0].field, "spec.jobTemplate.spec.template");
    }
}
