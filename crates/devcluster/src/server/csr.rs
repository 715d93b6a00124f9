//! CertificateSigningRequests (`certificates.k8s.io/v1`): the requester recorded from who created
//! the request, a spec that never changes after creation, approval through the `approval`
//! subresource only, and the client signers of kube-controller-manager, which issue a certificate
//! signed by the cluster's CA once a request is approved.
//!
//! Signed here: `kubernetes.io/kube-apiserver-client` and `kubernetes.io/kube-apiserver-client-kubelet`.
//! Requests for other signers (`kubernetes.io/kubelet-serving`, custom signers) stay approved and
//! unissued, for a signer of the user's own to issue.

use serde_json::{Map, Value, json};

use super::ApiServer;
use crate::auth::UserInfo;
use crate::error::{ApiError, Cause};
use crate::meta;
use crate::store::{ObjectKey, resource_version_of};

const GROUP: &str = "certificates.k8s.io";
const RESOURCE: &str = "certificatesigningrequests";
const KIND: &str = "CertificateSigningRequest";

/// The signers this server issues for.
const CLIENT_SIGNERS: [&str; 2] =
    ["kubernetes.io/kube-apiserver-client", "kubernetes.io/kube-apiserver-client-kubelet"];

/// kube-controller-manager's `--cluster-signing-duration` default: a year.
const DEFAULT_DURATION_SECONDS: u64 = 365 * 24 * 3600;

/// The shortest duration a request may ask for, as the API validates it.
const MIN_DURATION_SECONDS: i64 = 600;

/// The requester is whoever created the request, whatever the body says.
pub(super) fn record_requester(user: &UserInfo, object: &mut Map<String, Value>) {
    let spec = object.entry("spec").or_insert_with(|| json!({}));
    let Some(spec) = spec.as_object_mut() else { return };
    spec.insert("username".into(), json!(user.username));
    spec.remove("uid");
    if !user.uid.is_empty() {
        spec.insert("uid".into(), json!(user.uid));
    }
    spec.remove("groups");
    if !user.groups.is_empty() {
        spec.insert("groups".into(), json!(user.groups));
    }
    spec.remove("extra");
    if !user.extra.is_empty() {
        spec.insert("extra".into(), json!(user.extra));
    }
}

/// `PrepareForUpdate`: the spec never changes; the object keeps its status, the `approval`
/// subresource changes only the conditions, and `status` may not change the approval conditions.
pub(super) fn prepare_for_update(subresource: Option<&str>, old: &Value, new: &mut Value) {
    if let Some(spec) = old.get("spec") {
        new["spec"] = spec.clone();
    }
    if subresource == Some("status") {
        let approvals = |object: &Value| -> Vec<Value> {
            conditions(object).into_iter().filter(|c| is_approval(c)).cloned().collect()
        };
        let mut kept: Vec<Value> = conditions(new).into_iter().filter(|c| !is_approval(c)).cloned().collect();
        kept.extend(approvals(old));
        set_conditions(new, kept);
    }
}

/// Copies the conditions of `body` into the stored object: all an approval may change.
pub(super) fn approval_update(old: &Value, body: &Value) -> Value {
    let mut new = old.clone();
    set_conditions(&mut new, conditions(body).into_iter().cloned().collect());
    new
}

fn conditions(object: &Value) -> Vec<&Value> {
    object.pointer("/status/conditions").and_then(Value::as_array).map(|c| c.iter().collect()).unwrap_or_default()
}

fn set_conditions(object: &mut Value, conditions: Vec<Value>) {
    if !object.get("status").is_some_and(Value::is_object) {
        object["status"] = json!({});
    }
    if conditions.is_empty() {
        if let Some(status) = object["status"].as_object_mut() {
            status.remove("conditions");
        }
    } else {
        object["status"]["conditions"] = Value::Array(conditions);
    }
}

fn is_approval(condition: &Value) -> bool {
    matches!(meta::str_at(condition, "/type"), "Approved" | "Denied")
}

/// Whether the request holds a condition of `type_` with status `True`.
pub(crate) fn condition_is(object: &Value, type_: &str) -> bool {
    conditions(object).iter().any(|c| meta::str_at(c, "/type") == type_ && meta::str_at(c, "/status") == "True")
}

/// Validation as the API server's: a PEM request, a signer, usages, a duration of at least ten
/// minutes, and conditions that do not both approve and deny.
pub(super) fn validate(object: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    if old.is_none() {
        let request = meta::str_at(object, "/spec/request");
        if request.is_empty() {
            causes.push(Cause::new("FieldValueRequired", "spec.request", "Required value"));
        } else if decoded_request(object).is_none() {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "spec.request",
                "Invalid value: \"<request>\": PEM block type must be CERTIFICATE REQUEST",
            ));
        }
        if meta::str_at(object, "/spec/signerName").is_empty() {
            causes.push(Cause::new("FieldValueRequired", "spec.signerName", "Required value"));
        }
        if object.pointer("/spec/usages").and_then(Value::as_array).is_none_or(Vec::is_empty) {
            causes.push(Cause::new("FieldValueRequired", "spec.usages", "Required value"));
        }
        if let Some(seconds) = object.pointer("/spec/expirationSeconds").and_then(Value::as_i64)
            && seconds < MIN_DURATION_SECONDS
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "spec.expirationSeconds",
                format!("Invalid value: {seconds}: may not specify a duration less than 600 seconds (10 minutes)"),
            ));
        }
    }
    if condition_is(object, "Approved") && condition_is(object, "Denied") {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "status.conditions",
            "Invalid value: \"Approved\": Approved and Denied conditions are mutually exclusive",
        ));
    }
    causes
}

/// The PEM request in `spec.request` (base64 of the PEM text), if it is one.
fn decoded_request(object: &Value) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(meta::str_at(object, "/spec/request")).ok()?;
    let pem = String::from_utf8(bytes).ok()?;
    pem.trim_start().starts_with("-----BEGIN CERTIFICATE REQUEST-----").then_some(pem)
}

impl ApiServer {
    /// Lets the client signers issue certificates with `authority` (the cluster's CA).
    pub fn set_signing_authority(&self, authority: crate::tls::KeptAuthority) {
        if let Ok(mut slot) = self.signing_authority.write() {
            *slot = Some(authority);
        }
    }

    fn signing_authority(&self) -> Option<crate::tls::KeptAuthority> {
        self.signing_authority.read().ok().and_then(|slot| slot.clone())
    }

    /// The client signers: an approved, unissued, unfailed request for one of them gets its
    /// certificate, or a `Failed` condition saying why it cannot.
    pub(super) fn sign_approved(&self, csr: &Value) -> Result<Option<Value>, ApiError> {
        let signer = meta::str_at(csr, "/spec/signerName");
        let issued = !meta::str_at(csr, "/status/certificate").is_empty();
        if !CLIENT_SIGNERS.contains(&signer)
            || !condition_is(csr, "Approved")
            || condition_is(csr, "Denied")
            || condition_is(csr, "Failed")
            || issued
            || csr.pointer("/metadata/deletionTimestamp").is_some()
        {
            return Ok(None);
        }
        let Some(authority) = self.signing_authority() else { return Ok(None) };
        let name = meta::str_at(csr, "/metadata/name").to_string();
        let seconds = csr
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_DURATION_SECONDS, |s| s.min(DEFAULT_DURATION_SECONDS));
        let outcome =
            decoded_request(csr).ok_or_else(|| "the request is not a PEM CERTIFICATE REQUEST".to_string()).and_then(
                |pem| authority.sign_request(&pem, std::time::Duration::from_secs(seconds)).map_err(|e| e.to_string()),
            );
        let key = ObjectKey::new(GROUP, RESOURCE, "", &name);
        let Some(current) = self.store.get(&key) else { return Ok(None) };
        let mut updated = (*current).clone();
        match outcome {
            Ok(certificate) => {
                use base64::Engine;
                updated["status"]["certificate"] = json!(base64::engine::general_purpose::STANDARD.encode(certificate));
            }
            Err(reason) => {
                let now = meta::now_rfc3339();
                let mut kept: Vec<Value> = conditions(&updated).into_iter().cloned().collect();
                kept.push(json!({"type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                    "message": reason, "lastUpdateTime": now, "lastTransitionTime": now}));
                set_conditions(&mut updated, kept);
            }
        }
        self.store
            .update(key, resource_version_of(&current), updated)
            .map_err(|e| ApiError::internal(format!("cannot record the certificate of {KIND} {name}: {e}")))?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> String {
        use base64::Engine;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "jane");
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        base64::engine::general_purpose::STANDARD.encode(pem)
    }

    fn csr() -> Value {
        json!({"metadata": {"name": "jane"}, "spec": {"request": request(),
            "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"]}})
    }

    fn fields(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn a_complete_request_is_valid_and_each_missing_part_is_named() {
        assert!(validate(&csr(), None).is_empty());
        let empty = json!({"metadata": {"name": "x"}, "spec": {}});
        assert_eq!(
            fields(&validate(&empty, None)),
            ["spec.request: Required value", "spec.signerName: Required value", "spec.usages: Required value"]
        );
        let mut not_pem = csr();
        not_pem["spec"]["request"] = json!("bm90IHBlbQ==");
        assert_eq!(
            fields(&validate(&not_pem, None)),
            ["spec.request: Invalid value: \"<request>\": PEM block type must be CERTIFICATE REQUEST"]
        );
        let mut short = csr();
        short["spec"]["expirationSeconds"] = json!(60);
        assert!(fields(&validate(&short, None))[0].starts_with("spec.expirationSeconds: Invalid value: 60"));
        let mut both = csr();
        both["status"] =
            json!({"conditions": [{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]});
        assert_eq!(validate(&both, Some(&csr())).len(), 1);
    }

    #[test]
    fn the_requester_is_the_creator_whatever_the_body_claims() {
        let mut object = csr();
        object["spec"]["username"] = json!("system:admin");
        object["spec"]["groups"] = json!(["system:masters"]);
        let user = UserInfo { username: "bob".into(), groups: vec!["dev".into()], ..UserInfo::default() };
        record_requester(&user, object.as_object_mut().unwrap());
        assert_eq!(object["spec"]["username"], "bob");
        assert_eq!(object["spec"]["groups"], json!(["dev"]));
        assert!(object["spec"].get("uid").is_none());
    }

    #[test]
    fn updates_keep_the_spec_and_only_approval_changes_approval_conditions() {
        let old = csr();
        let mut edited = old.clone();
        edited["spec"]["signerName"] = json!("example.com/other");
        prepare_for_update(None, &old, &mut edited);
        assert_eq!(edited["spec"], old["spec"]);

        let approved = json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}});
        let after = approval_update(&old, &approved);
        assert!(condition_is(&after, "Approved"));
        assert_eq!(after["spec"], old["spec"]);

        let mut by_status = old.clone();
        by_status["status"] =
            json!({"conditions": [{"type": "Approved", "status": "True"}, {"type": "Failed", "status": "True"}]});
        prepare_for_update(Some("status"), &old, &mut by_status);
        assert!(!condition_is(&by_status, "Approved"), "status may not approve");
        assert!(condition_is(&by_status, "Failed"));
        let mut keeps = after.clone();
        keeps["status"] = json!({"certificate": "Q0VSVA=="});
        prepare_for_update(Some("status"), &after, &mut keeps);
        assert!(condition_is(&keeps, "Approved"), "status may not withdraw an approval");
    }
}
