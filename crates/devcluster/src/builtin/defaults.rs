//! Defaulting of built-in kinds, as kube-apiserver's scheme defaulters (`SetDefaults_*`), its
//! `v1` to internal conversions and the REST strategies' `PrepareForCreate` leave objects: clients
//! and controllers read these fields back and expect them set.
//!
//! Defaults apply to every write (create, update, patch and apply), as decoding does on the real
//! server; values the request sets are kept.

use super::Defaulting;
use crate::error::ApiError;
use base64::Engine;
use serde_json::{Map, Value, json};

/// The service range ClusterIPs come from: kubeadm's and kind's default, `10.96.0.0/12`.
/// The node port range kube-apiserver serves by default (`--service-node-port-range`).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

pub const SERVICE_RANGE: (u32, u32) = (0x0a60_0000, 12);

/// The first address of the service range, held by the `default/kubernetes` Service.
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

/// Sets `map[key]` to `value` unless the map has a non-null value there.
fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// The object (or nested object) at `key`, created empty when absent.
fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    default(map, key, json!({}));
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// Secrets: `stringData` is merged into `data` (base64, its keys win) and dropped, as the `v1`
/// conversion does; `type` is `Opaque` when unset.
pub(crate) fn secret(object: &mut Value, _: &Defaulting<'_>) -> Result<(), ApiError> {
    let Some(map) = object.as_object_mut() else { return Ok(()) };
    if let Some(string_data) = map.remove("stringData") {
        let Value::Object(entries) = string_data else {
            return Err(ApiError::bad_request("stringData: must be a map of strings"));
        };
        if !entries.is_empty() {
            let Some(data) = object_at(map, "data") else {
                return Err(ApiError::bad_request("data: must be a map of base64 strings"));
            };
            for (key, value) in entries {
                let Value::String(text) = value else {
                    return Err(ApiError::bad_request(format!("stringData.{key}: must be a string")));
                };
                data.insert(key, Value::String(base64::engine::general_purpose::STANDARD.encode(text)));
            }
        }
    }
    default(map, "type", json!("Opaque"));
    Ok(())
}

/// Pods: the pod spec defaults.
pub(crate) fn pod(object: &mut Value, _: &Defaulting<'_>) -> Result<(), ApiError> {
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        pod_spec(spec);
    }
    Ok(())
}

/// `SetDefaults_PodSpec` and `SetDefaults_Container`, for pods and pod templates.
fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else { continue };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let policy = image_pull_policy(container.get("image").and_then(Value::as_str).unwrap_or(""));
            default(container, "imagePullPolicy", json!(policy));
            default(container, "terminationMessagePath", json!("/dev/termination-log"));
            default(container, "terminationMessagePolicy", json!("File"));
            if let Some(Value::Array(ports)) = container.get_mut("ports") {
                for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                    default(port, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// `Always` for an image without a tag or tagged `latest`, `IfNotPresent` otherwise (a digest
/// pins the image, so it counts as tagged).
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

/// Services: `type: ClusterIP`, `sessionAffinity: None`, ports with `protocol: TCP` and `targetPort`
/// equal to `port`, and a ClusterIP allocated from the service range on create (an update without
/// one keeps the stored one, as the service REST storage does).
pub(crate) fn service(object: &mut Value, ctx: &Defaulting<'_>) -> Result<(), ApiError> {
    let Some(spec) = object.as_object_mut().and_then(|map| object_at(map, "spec")) else { return Ok(()) };
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(port, "protocol", json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                default(port, "targetPort", number);
            }
        }
    }
    let service_type = spec.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    if service_type == "ExternalName" {
        return Ok(());
    }
    if matches!(service_type.as_str(), "NodePort" | "LoadBalancer") {
        allocate_node_ports(spec, ctx)?;
    }
    if let Some(old) = ctx.old.and_then(|o| o.pointer("/spec/clusterIP")).filter(|v| v.is_string()) {
        default(spec, "clusterIP", old.clone());
        if let Some(ips) = ctx.old.and_then(|o| o.pointer("/spec/clusterIPs")) {
            default(spec, "clusterIPs", ips.clone());
        }
    }
    if spec.get("clusterIP").and_then(Value::as_str).is_none_or(str::is_empty) {
        spec.insert("clusterIP".into(), json!((ctx.allocate_cluster_ip)()?));
    }
    if let Some(ip) = spec.get("clusterIP").cloned() {
        default(spec, "clusterIPs", json!([ip]));
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if !headless {
        default(spec, "ipFamilies", json!(["IPv4"]));
    }
    default(spec, "ipFamilyPolicy", json!("SingleStack"));
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    Ok(())
}

/// Gives every port of a NodePort or LoadBalancer Service a node port: the one the stored Service
/// gave the same port and protocol, or a free one.
fn allocate_node_ports(spec: &mut Map<String, Value>, ctx: &Defaulting<'_>) -> Result<(), ApiError> {
    let key = |port: &Value| (port.get("port").cloned(), port.get("protocol").cloned());
    let old_ports: Vec<Value> =
        ctx.old.and_then(|o| o.pointer("/spec/ports")).and_then(Value::as_array).cloned().unwrap_or_default();
    let Some(Value::Array(ports)) = spec.get_mut("ports") else { return Ok(()) };
    let mut assigned: Vec<i64> = ports.iter().filter_map(|p| p.get("nodePort").and_then(Value::as_i64)).collect();
    for port in ports.iter_mut() {
        if port.get("nodePort").and_then(Value::as_i64).is_some_and(|n| n != 0) {
            continue;
        }
        let kept = old_ports.iter().find(|old| key(old) == key(port)).and_then(|old| old.get("nodePort")).cloned();
        let node_port = match kept {
            Some(kept) => kept,
            None => json!((ctx.allocate_node_port)(&assigned)?),
        };
        assigned.extend(node_port.as_i64());
        if let Some(port) = port.as_object_mut() {
            port.insert("nodePort".into(), node_port);
        }
    }
    Ok(())
}

/// Deployments: `replicas: 1`, a RollingUpdate strategy of 25% / 25%, `revisionHistoryLimit: 10`,
/// `progressDeadlineSeconds: 600`, and the pod template's spec defaults.
pub(crate) fn deployment(object: &mut Value, _: &Defaulting<'_>) -> Result<(), ApiError> {
    let Some(spec) = object.as_object_mut().and_then(|map| object_at(map, "spec")) else { return Ok(()) };
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    if let Some(strategy) = object_at(spec, "strategy") {
        default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = object_at(strategy, "rollingUpdate")
        {
            default(rolling, "maxUnavailable", json!("25%"));
            default(rolling, "maxSurge", json!("25%"));
        }
    }
    if let Some(template_spec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")).and_then(Value::as_object_mut)
    {
        pod_spec(template_spec);
    }
    Ok(())
}

/// Jobs: `parallelism` and `completions` 1 when neither is set, `backoffLimit: 6`,
/// `completionMode: NonIndexed`, `suspend: false`, `podReplacementPolicy: TerminatingOrFailed`,
/// and the pod template's spec defaults.
pub(crate) fn job(object: &mut Value, _: &Defaulting<'_>) -> Result<(), ApiError> {
    let Some(spec) = object.as_object_mut().and_then(|map| object_at(map, "spec")) else { return Ok(()) };
    job_spec(spec);
    Ok(())
}

fn job_spec(spec: &mut Map<String, Value>) {
    if !spec.contains_key("completions") && !spec.contains_key("parallelism") {
        spec.insert("completions".into(), json!(1));
    }
    default(spec, "parallelism", json!(1));
    default(spec, "backoffLimit", json!(6));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    if let Some(template_spec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")).and_then(Value::as_object_mut)
    {
        pod_spec(template_spec);
    }
}

/// CronJobs: `concurrencyPolicy: Allow`, `suspend: false`, three successful and one failed job
/// kept, and the job template's defaults.
pub(crate) fn cron_job(object: &mut Value, _: &Defaulting<'_>) -> Result<(), ApiError> {
    let Some(spec) = object.as_object_mut().and_then(|map| object_at(map, "spec")) else { return Ok(()) };
    default(spec, "concurrencyPolicy", json!("Allow"));
    default(spec, "suspend", json!(false));
    default(spec, "successfulJobsHistoryLimit", json!(3));
    default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job) = spec.get_mut("jobTemplate").and_then(|t| t.get_mut("spec")).and_then(Value::as_object_mut) {
        job_spec(job);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_port(_: &[i64]) -> Result<i64, ApiError> {
        Err(ApiError::internal("no port"))
    }

    fn no_ip() -> Result<String, ApiError> {
        Ok("10.96.0.7".into())
    }

    fn run(
        f: fn(&mut Value, &Defaulting<'_>) -> Result<(), ApiError>,
        mut object: Value,
        old: Option<&Value>,
    ) -> Value {
        f(&mut object, &Defaulting { old, allocate_cluster_ip: &no_ip, allocate_node_port: &no_port }).unwrap();
        object
    }

    #[test]
    fn secrets_merge_string_data_and_default_their_type() {
        let out = run(secret, json!({"data": {"a": "eA==", "b": "eA=="}, "stringData": {"b": "y", "c": "z"}}), None);
        assert_eq!(out, json!({"data": {"a": "eA==", "b": "eQ==", "c": "eg=="}, "type": "Opaque"}));
        let tls = run(secret, json!({"type": "kubernetes.io/tls", "stringData": {}}), None);
        assert_eq!(tls, json!({"type": "kubernetes.io/tls"}));
        let mut bad = json!({"stringData": {"k": 1}});
        let err =
            secret(&mut bad, &Defaulting { old: None, allocate_cluster_ip: &no_ip, allocate_node_port: &no_port })
                .unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "stringData.k: must be a string"));
    }

    #[test]
    fn pods_get_spec_and_container_defaults() {
        let out = run(
            pod,
            json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]},
                {"name": "b", "image": "reg:5000/x/app:1.2", "imagePullPolicy": "Never"}]}}),
            None,
        );
        let spec = &out["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(spec["containers"][0]["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(spec["containers"][0]["terminationMessagePolicy"], "File");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["containers"][1]["imagePullPolicy"], "Never");
    }

    #[test]
    fn pull_policies_follow_the_tag() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:1.25", "IfNotPresent"),
            ("nginx@sha256:abc", "IfNotPresent"),
            ("busybox:1.36", "IfNotPresent"),
        ] {
            assert_eq!(image_pull_policy(image), policy, "{image}");
        }
    }

    #[test]
    fn services_get_a_cluster_ip_and_port_defaults() {
        let out = run(
            service,
            json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}),
            None,
        );
        let spec = &out["spec"];
        assert_eq!((spec["type"].as_str(), spec["sessionAffinity"].as_str()), (Some("ClusterIP"), Some("None")));
        assert_eq!(spec["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        assert_eq!(spec["ports"][1], json!({"port": 53, "protocol": "UDP", "targetPort": "dns"}));
        assert_eq!((spec["clusterIP"].as_str(), &spec["clusterIPs"]), (Some("10.96.0.7"), &json!(["10.96.0.7"])));
        let old = json!({"spec": {"clusterIP": "10.96.3.3", "clusterIPs": ["10.96.3.3"]}});
        let updated = run(service, json!({"spec": {"ports": [{"port": 80}]}}), Some(&old));
        assert_eq!(updated["spec"]["clusterIP"], "10.96.3.3");
        let headless = run(service, json!({"spec": {"clusterIP": "None"}}), None);
        assert_eq!(headless["spec"]["clusterIP"], "None");
        let external = run(service, json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}), None);
        assert!(external["spec"].get("clusterIP").is_none());
    }

    #[test]
    fn deployments_get_their_strategy_and_limits() {
        let out = run(
            deployment,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}}),
            None,
        );
        let spec = &out["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(spec["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
        let recreate = run(deployment, json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}}}), None);
        assert_eq!(
            (recreate["spec"]["replicas"].as_i64(), &recreate["spec"]["strategy"]),
            (Some(0), &json!({"type": "Recreate"}))
        );
    }
}
