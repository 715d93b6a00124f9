//! Discovery documents: `/api`, `/api/v1`, `/apis`, `/apis/GROUP/VERSION`, and the aggregated
//! (`apidiscovery.k8s.io/v2`) documents kubectl asks for first.
//!
//! kubectl and client-go request `/api` and `/apis` with
//! `Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...,application/json`;
//! when the response carries [`aggregated_content_type`] they read [`aggregated`], otherwise they fall
//! back to the legacy documents and one `APIResourceList` request per group-version.

use crate::registry::ResourceInfo;
use crate::server::strategy::{Strategy, Subresource};
use base64::Engine;
use serde_json::{Value, json};
use std::cmp::Ordering;

/// The `Content-Type` an aggregated discovery response must carry: client-go only parses the body as
/// `APIGroupDiscoveryList` when the `g`, `v` and `as` parameters say so.
pub fn aggregated_content_type() -> &'static str {
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
}

/// Whether an `Accept` header asks for aggregated discovery (v2) before plain JSON: true when some
/// media range names `as=APIGroupDiscoveryList` with `g=apidiscovery.k8s.io;v=v2`.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let params = range.split(';').skip(1).filter_map(|p| p.split_once('=')).map(|(k, v)| (k.trim(), v.trim()));
        let (mut g, mut v, mut kind) = (false, false, false);
        for (key, value) in params {
            match key {
                "g" => g = value == "apidiscovery.k8s.io",
                "v" => v = value == "v2",
                "as" => kind = value == "APIGroupDiscoveryList",
                _ => {}
            }
        }
        range.trim_start().starts_with("application/json") && g && v && kind
    })
}

/// Orders Kubernetes versions as the API server does: GA before beta before alpha, higher numbers
/// first, anything that is not `vN[alpha|betaM]` last, alphabetically.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn key(v: &str) -> (u8, u64, u64) {
        let Some(rest) = v.strip_prefix('v') else { return (3, 0, 0) };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(major) = digits.parse::<u64>() else { return (3, 0, 0) };
        let tail = &rest[digits.len()..];
        let (level, minor) = if tail.is_empty() {
            (0, 0)
        } else if let Some(n) = tail.strip_prefix("beta") {
            (1, n.parse().unwrap_or(u64::MAX))
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (2, n.parse().unwrap_or(u64::MAX))
        } else {
            return (3, 0, 0);
        };
        if minor == u64::MAX {
            return (3, 0, 0);
        }
        (level, major, minor)
    }
    let (ka, kb) = (key(a), key(b));
    ka.0.cmp(&kb.0)
        .then(kb.1.cmp(&ka.1))
        .then(kb.2.cmp(&ka.2))
        .then_with(|| if ka.0 == 3 { a.cmp(b) } else { Ordering::Equal })
}

/// `StorageVersionHash`: the first 8 bytes of SHA-256 of `group/version/kind`, base64-encoded.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
}

/// `/api`: `APIVersions` for the core group. `server_address` is the `host:port` clients use.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Served non-core groups, built-ins first, each with its versions in preference order.
fn groups(resources: &[ResourceInfo]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(bool, String, Vec<String>)> = Vec::new();
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
        let custom = !matches!(r.origin, crate::registry::Origin::Builtin);
        match groups.iter_mut().find(|(_, g, _)| *g == r.group) {
            Some((_, _, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version.clone());
                }
            }
            None => groups.push((custom, r.group.clone(), vec![r.version.clone()])),
        }
    }
    for (_, _, versions) in &mut groups {
        versions.sort_by(|a, b| compare_versions(a, b));
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    groups.into_iter().map(|(_, g, v)| (g, v)).collect()
}

/// `/apis`: `APIGroupList` of the non-core groups among `resources`.
pub fn group_list(resources: &[ResourceInfo]) -> Value {
    let groups: Vec<Value> = groups(resources)
        .into_iter()
        .map(|(group, versions)| {
            let entries: Vec<Value> =
                versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
            json!({"name": group, "versions": entries, "preferredVersion": entries[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The kind, group and version a subresource answers with (`scale` is `autoscaling/v1` `Scale`).
fn subresource_kind(info: &ResourceInfo, subresource: &str) -> (String, String, String) {
    let own_storage = Strategy::of(info).subresource(subresource).and_then(Subresource::kind);
    match (subresource, own_storage) {
        ("scale", _) => ("autoscaling".into(), "v1".into(), "Scale".into()),
        (_, Some((group, version, kind))) => (group.into(), version.into(), kind.into()),
        _ => (info.group.clone(), info.version.clone(), info.kind.clone()),
    }
}

/// The verbs a subresource supports.
fn subresource_verbs(info: &ResourceInfo, subresource: &str) -> Vec<&'static str> {
    match (subresource, Strategy::of(info).subresource(subresource)) {
        ("status" | "scale", _) => vec!["get", "patch", "update"],
        (_, Some(own_storage)) => own_storage.verbs().to_vec(),
        _ => vec!["get"],
    }
}

/// `/api/v1` or `/apis/GROUP/VERSION`: `APIResourceList`, or `None` when nothing is served there.
pub fn resource_list(resources: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let mut served: Vec<&ResourceInfo> =
        resources.iter().filter(|r| r.group == group && r.version == version).collect();
    if served.is_empty() {
        return None;
    }
    served.sort_by(|a, b| a.resource.cmp(&b.resource));
    let mut list = Vec::new();
    for info in served {
        let mut entry = json!({
            "name": info.resource,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": Strategy::of(info).verbs,
            "storageVersionHash": storage_version_hash(&info.group, &info.version, &info.kind),
        });
        if !info.short_names.is_empty() {
            entry["shortNames"] = json!(info.short_names);
        }
        if !info.categories.is_empty() {
            entry["categories"] = json!(info.categories);
        }
        list.push(entry);
        for sub in &info.subresources {
            let (g, v, kind) = subresource_kind(info, sub);
            let mut entry = json!({
                "name": format!("{}/{sub}", info.resource),
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": kind,
                "verbs": subresource_verbs(info, sub),
            });
            if (g.as_str(), v.as_str()) != (group, version) {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            list.push(entry);
        }
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list}))
}

/// One `APIResourceDiscovery`.
fn resource_discovery(info: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = info
        .subresources
        .iter()
        .map(|sub| {
            let (group, version, kind) = subresource_kind(info, sub);
            json!({
                "subresource": sub,
                "responseKind": {"group": group, "version": version, "kind": kind},
                "verbs": subresource_verbs(info, sub),
            })
        })
        .collect();
    let mut entry = json!({
        "resource": info.resource,
        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "scope": if info.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": info.singular,
        "verbs": Strategy::of(info).verbs,
    });
    if !info.short_names.is_empty() {
        entry["shortNames"] = json!(info.short_names);
    }
    if !info.categories.is_empty() {
        entry["categories"] = json!(info.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

/// One `APIGroupDiscovery` with its versions in preference order (the first is preferred).
fn group_discovery(resources: &[ResourceInfo], group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            let mut served: Vec<&ResourceInfo> =
                resources.iter().filter(|r| r.group == group && &r.version == version).collect();
            served.sort_by(|a, b| a.resource.cmp(&b.resource));
            let list: Vec<Value> = served.into_iter().map(resource_discovery).collect();
            json!({"version": version, "resources": list, "freshness": "Current"})
        })
        .collect();
    let metadata = if group.is_empty() {
        json!({"creationTimestamp": null})
    } else {
        json!({"name": group, "creationTimestamp": null})
    };
    json!({"metadata": metadata, "versions": versions})
}

/// Aggregated discovery (`APIGroupDiscoveryList`), for `/api` (`core = true`) or `/apis`.
/// Serve it with [`aggregated_content_type`].
pub fn aggregated(resources: &[ResourceInfo], core: bool) -> Value {
    let items: Vec<Value> = if core {
        if resources.iter().any(|r| r.group.is_empty()) {
            let mut versions: Vec<String> =
                resources.iter().filter(|r| r.group.is_empty()).map(|r| r.version.clone()).collect();
            versions.sort_by(|a, b| compare_versions(a, b));
            versions.dedup();
            vec![group_discovery(resources, "", &versions)]
        } else {
            Vec::new()
        }
    } else {
        groups(resources).iter().map(|(group, versions)| group_discovery(resources, group, versions)).collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::builtin_resources;
    use crate::registry::Origin;

    fn review_run(version: &str) -> ResourceInfo {
        ResourceInfo {
            group: "review.ao.dev".into(),
            version: version.into(),
            resource: "reviewruns".into(),
            singular: "reviewrun".into(),
            kind: "ReviewRun".into(),
            list_kind: "ReviewRunList".into(),
            namespaced: true,
            short_names: vec!["rr".into()],
            categories: vec!["review".into()],
            subresources: vec!["status".into()],
            printer_columns: Vec::new(),
            schema: None,
            origin: Origin::Custom { crd: "reviewruns.review.ao.dev".into() },
        }
    }

    fn all() -> Vec<ResourceInfo> {
        let mut all = builtin_resources();
        all.push(review_run("v1alpha1"));
        all.push(review_run("v1"));
        all
    }

    #[test]
    fn core_versions_names_the_server() {
        let v = core_versions("127.0.0.1:1234");
        assert_eq!(v["kind"], "APIVersions");
        assert_eq!(v["versions"], json!(["v1"]));
        assert_eq!(v["serverAddressByClientCIDRs"][0]["serverAddress"], "127.0.0.1:1234");
        assert_eq!(v["serverAddressByClientCIDRs"][0]["clientCIDR"], "0.0.0.0/0");
    }

    #[test]
    fn version_order_matches_kubernetes() {
        let mut v = vec!["v1alpha1", "foo", "v2", "v1beta2", "v1", "v1beta1", "v10", "v2alpha3", "bar"];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(v, ["v10", "v2", "v1", "v1beta2", "v1beta1", "v2alpha3", "v1alpha1", "bar", "foo"]);
    }

    #[test]
    fn group_list_prefers_highest_version_and_lists_custom_groups_last() {
        let list = group_list(&all());
        assert_eq!(list["kind"], "APIGroupList");
        let groups = list["groups"].as_array().unwrap();
        assert!(groups.iter().all(|g| g["name"] != ""));
        let last = groups.last().unwrap();
        assert_eq!(last["name"], "review.ao.dev");
        assert_eq!(last["preferredVersion"], json!({"groupVersion": "review.ao.dev/v1", "version": "v1"}));
        assert_eq!(last["versions"][1], json!({"groupVersion": "review.ao.dev/v1alpha1", "version": "v1alpha1"}));
        let apps = groups.iter().find(|g| g["name"] == "apps").unwrap();
        assert_eq!(apps["versions"], json!([{"groupVersion": "apps/v1", "version": "v1"}]));
    }

    #[test]
    fn resource_list_has_resources_and_subresources() {
        let list = resource_list(&all(), "", "v1").unwrap();
        assert_eq!(list["groupVersion"], "v1");
        assert_eq!(list["kind"], "APIResourceList");
        let resources = list["resources"].as_array().unwrap();
        let pods = resources.iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["singularName"], "pod");
        assert_eq!(pods["namespaced"], true);
        assert_eq!(pods["kind"], "Pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(
            pods["verbs"],
            json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
        );
        assert_eq!(pods["storageVersionHash"], storage_version_hash("", "v1", "Pod"));
        let status = resources.iter().find(|r| r["name"] == "pods/status").unwrap();
        assert_eq!(status["verbs"], json!(["get", "patch", "update"]));
        assert_eq!(status["kind"], "Pod");
        assert_eq!(status["singularName"], "");
        let ns = resources.iter().find(|r| r["name"] == "namespaces").unwrap();
        assert_eq!(ns["namespaced"], false);
        let secrets = resources.iter().find(|r| r["name"] == "secrets").unwrap();
        assert!(secrets.get("shortNames").is_none());
    }

    #[test]
    fn resource_list_for_unserved_group_version_is_none() {
        assert!(resource_list(&all(), "apps", "v2").is_none());
        assert!(resource_list(&all(), "nope.dev", "v1").is_none());
    }

    #[test]
    fn scale_subresource_answers_with_autoscaling_scale() {
        let mut rr = review_run("v1");
        rr.subresources.push("scale".into());
        let list = resource_list(&[rr.clone()], "review.ao.dev", "v1").unwrap();
        let scale = &list["resources"][2];
        assert_eq!(scale["name"], "reviewruns/scale");
        assert_eq!(
            (scale["group"].as_str(), scale["version"].as_str(), scale["kind"].as_str()),
            (Some("autoscaling"), Some("v1"), Some("Scale"))
        );
        let agg = aggregated(&[rr], false);
        assert_eq!(agg["items"][0]["versions"][0]["resources"][0]["subresources"][1]["responseKind"]["kind"], "Scale");
    }

    #[test]
    fn storage_version_hash_is_eight_bytes_base64() {
        let h = storage_version_hash("", "v1", "Pod");
        assert_eq!(h.len(), 12);
        assert_ne!(h, storage_version_hash("", "v1", "Node"));
    }

    #[test]
    fn aggregated_core_has_one_unnamed_group() {
        let doc = aggregated(&all(), true);
        assert_eq!(doc["kind"], "APIGroupDiscoveryList");
        assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = doc["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let v1 = &items[0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        assert_eq!(v1["freshness"], "Current");
        let pods = v1["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "pods").unwrap();
        assert_eq!(pods["responseKind"], json!({"group": "", "version": "v1", "kind": "Pod"}));
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["singularResource"], "pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(
            pods["subresources"],
            json!([
                {"subresource": "status", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["get", "patch", "update"]},
                {"subresource": "log", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["get"]},
                {"subresource": "eviction", "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"}, "verbs": ["create"]},
                {"subresource": "ephemeralcontainers", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["get", "patch", "update"]},
                {"subresource": "resize", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["get", "patch", "update"]},
                {"subresource": "exec", "responseKind": {"group": "", "version": "v1", "kind": "PodExecOptions"}, "verbs": ["create", "get"]},
                {"subresource": "attach", "responseKind": {"group": "", "version": "v1", "kind": "PodAttachOptions"}, "verbs": ["create", "get"]}
            ])
        );
        let accounts = v1["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "serviceaccounts").unwrap();
        assert_eq!(
            accounts["subresources"],
            json!([{"subresource": "token", "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}, "verbs": ["create"]}])
        );
        let ns = v1["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "namespaces").unwrap();
        assert_eq!(ns["scope"], "Cluster");
    }

    #[test]
    fn aggregated_groups_list_versions_preferred_first() {
        let doc = aggregated(&all(), false);
        let items = doc["items"].as_array().unwrap();
        assert!(items.iter().all(|i| i["metadata"]["name"] != ""));
        let review = items.iter().find(|i| i["metadata"]["name"] == "review.ao.dev").unwrap();
        assert_eq!(review["versions"][0]["version"], "v1");
        assert_eq!(review["versions"][1]["version"], "v1alpha1");
        let rr = &review["versions"][1]["resources"][0];
        assert_eq!(rr["responseKind"], json!({"group": "review.ao.dev", "version": "v1alpha1", "kind": "ReviewRun"}));
        assert_eq!(rr["categories"], json!(["review"]));
        let crds = items.iter().find(|i| i["metadata"]["name"] == "apiextensions.k8s.io").unwrap();
        assert_eq!(crds["versions"][0]["resources"][0]["shortNames"], json!(["crd", "crds"]));
    }

    #[test]
    fn aggregated_without_core_resources_is_empty() {
        assert_eq!(aggregated(&[review_run("v1")], true)["items"], json!([]));
        assert_eq!(aggregated(&[], false)["items"], json!([]));
    }

    #[test]
    fn accept_header_selects_aggregated_discovery() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(wants_aggregated("application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList"));
        assert!(!wants_aggregated("application/json, */*"));
        assert!(!wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"));
        assert!(!wants_aggregated(
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
        assert_eq!(aggregated_content_type(), "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
    }
}
