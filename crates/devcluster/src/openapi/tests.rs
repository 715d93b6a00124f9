use super::*;
use crate::builtin::builtin_resources;
use crate::registry::PrinterColumn;

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
        categories: Vec::new(),
        subresources: vec!["status".into()],
        printer_columns: Vec::<PrinterColumn>::new(),
        schema: Some(std::sync::Arc::new(json!({
            "type": "object",
            "description": "A review of one pull request.",
            "properties": {
                "metadata": {"type": "object"},
                "spec": {"type": "object", "required": ["pullRequest"], "properties": {
                    "pullRequest": {"type": "object", "description": "The pull request under review.", "properties": {
                        "number": {"type": "integer"}, "headSha": {"type": "string"}}},
                    "reviewer": {"type": "string"}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        }))),
        origin: Origin::Custom { crd: "reviewruns.review.ao.dev".into() },
    }
}

fn all() -> Vec<ResourceInfo> {
    let mut all = builtin_resources();
    all.push(review_run("v1alpha1"));
    all
}

fn gvk_of(schema: &Value) -> Value {
    schema["x-kubernetes-group-version-kind"].clone()
}

#[test]
fn index_lists_every_group_version_with_a_hash() {
    let index = v3_index(&all());
    let paths = index["paths"].as_object().unwrap();
    assert!(paths.contains_key("api/v1"));
    assert!(paths.contains_key("apis/apps/v1"));
    let url = paths["apis/review.ao.dev/v1alpha1"]["serverRelativeURL"].as_str().unwrap();
    let (base, hash) = url.split_once("?hash=").unwrap();
    assert_eq!(base, "/openapi/v3/apis/review.ao.dev/v1alpha1");
    assert_eq!(hash.len(), 128);
    assert!(hash.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    let doc = v3_group_version(&all(), "review.ao.dev", "v1alpha1").unwrap();
    assert_eq!(hash, document_hash(&doc));
}

#[test]
fn index_hash_changes_with_the_schema() {
    let before = v3_index(&all())["paths"]["apis/review.ao.dev/v1alpha1"].clone();
    let mut changed = all();
    if let Some(rr) = changed.iter_mut().find(|r| r.kind == "ReviewRun") {
        std::sync::Arc::make_mut(rr.schema.as_mut().unwrap())["properties"]["spec"]["properties"]["extra"] =
            json!({"type": "string"});
    }
    let after = v3_index(&changed)["paths"]["apis/review.ao.dev/v1alpha1"].clone();
    assert_ne!(before, after);
    assert_eq!(v3_index(&all())["paths"]["api/v1"], v3_index(&changed)["paths"]["api/v1"]);
}

#[test]
fn unserved_group_version_has_no_document() {
    assert!(v3_group_version(&all(), "review.ao.dev", "v9").is_none());
    assert!(v3_group_version(&all(), "", "v2").is_none());
}

#[test]
fn custom_resource_schema_is_completed() {
    let doc = v3_group_version(&all(), "review.ao.dev", "v1alpha1").unwrap();
    assert_eq!(doc["openapi"], "3.0.0");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let rr = &schemas["dev.ao.review.v1alpha1.ReviewRun"];
    assert_eq!(gvk_of(rr), json!([{"group": "review.ao.dev", "version": "v1alpha1", "kind": "ReviewRun"}]));
    assert_eq!(rr["properties"]["apiVersion"]["type"], "string");
    assert_eq!(rr["properties"]["kind"]["type"], "string");
    assert_eq!(
        rr["properties"]["metadata"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert_eq!(rr["properties"]["spec"]["properties"]["pullRequest"]["description"], "The pull request under review.");
    assert_eq!(rr["description"], "A review of one pull request.");
    let list = &schemas["dev.ao.review.v1alpha1.ReviewRunList"];
    assert_eq!(gvk_of(list)[0]["kind"], "ReviewRunList");
    assert_eq!(list["properties"]["items"]["items"]["$ref"], "#/components/schemas/dev.ao.review.v1alpha1.ReviewRun");
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.Patch"));
}

#[test]
fn every_ref_resolves() {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    for (group, version) in [("", "v1"), ("apps", "v1"), ("review.ao.dev", "v1alpha1")] {
        let doc = v3_group_version(&all(), group, version).unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(doc["components"]["schemas"].get(name).is_some(), "{group}/{version}: {r}");
        }
    }
    let doc = v2(&all());
    let mut found = Vec::new();
    refs(&doc, &mut found);
    for r in found {
        let name = r.strip_prefix("#/definitions/").unwrap();
        assert!(doc["definitions"].get(name).is_some(), "v2: {r}");
    }
}

#[test]
fn builtin_schemas_come_from_k8s_openapi() {
    let doc = v3_group_version(&all(), "", "v1").unwrap();
    let schemas = &doc["components"]["schemas"];
    let pod = &schemas["io.k8s.api.core.v1.Pod"];
    assert_eq!(gvk_of(pod), json!([{"group": "", "version": "v1", "kind": "Pod"}]));
    assert!(pod["properties"]["spec"].is_object());
    assert!(schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"].is_object());
    assert_eq!(gvk_of(&schemas["io.k8s.api.core.v1.PodList"])[0]["kind"], "PodList");
    let deploy = v3_group_version(&all(), "apps", "v1").unwrap();
    assert_eq!(gvk_of(&deploy["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"])[0]["kind"], "Deployment");
}

#[test]
fn patch_operations_declare_field_validation() {
    let doc = v3_group_version(&all(), "review.ao.dev", "v1alpha1").unwrap();
    let path = &doc["paths"]["/apis/review.ao.dev/v1alpha1/namespaces/{namespace}/reviewruns/{name}"];
    let patch = &path["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "review.ao.dev", "version": "v1alpha1", "kind": "ReviewRun"})
    );
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(patch["operationId"], "patchReviewAoDevV1alpha1NamespacedReviewRun");
    let names: Vec<&str> =
        patch["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dryRun", "fieldManager", "fieldValidation", "force"]);
    assert!(patch["parameters"].as_array().unwrap().iter().all(|p| p["in"] == "query"));
    let media: Vec<&String> = patch["requestBody"]["content"].as_object().unwrap().keys().collect();
    assert!(media.iter().any(|m| *m == "application/apply-patch+yaml"));
    assert!(!media.iter().any(|m| *m == "application/strategic-merge-patch+json"));
    assert_eq!(
        patch["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/dev.ao.review.v1alpha1.ReviewRun"
    );
    let path_params: Vec<&str> =
        path["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(path_params, ["name", "namespace", "pretty"]);
}

#[test]
fn paths_cover_collection_object_status_and_all_namespaces() {
    let doc = v3_group_version(&all(), "", "v1").unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let pods = &paths["/api/v1/namespaces/{namespace}/pods"];
    assert_eq!(pods["get"]["x-kubernetes-action"], "list");
    assert_eq!(pods["post"]["operationId"], "createCoreV1NamespacedPod");
    assert_eq!(pods["delete"]["x-kubernetes-action"], "deletecollection");
    let status = &paths["/api/v1/namespaces/{namespace}/pods/{name}/status"];
    assert_eq!(status["patch"]["operationId"], "patchCoreV1NamespacedPodStatus");
    assert!(status.get("delete").is_none());
    assert_eq!(paths["/api/v1/pods"]["get"]["operationId"], "listCoreV1PodForAllNamespaces");
    assert!(paths.contains_key("/api/v1/namespaces/{name}"));
    assert_eq!(paths["/api/v1/namespaces/{name}"]["get"]["operationId"], "readCoreV1Namespace");
    let pod_patch = &paths["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert!(pod_patch["requestBody"]["content"].get("application/strategic-merge-patch+json").is_some());
    let rbac = v3_group_version(&all(), "rbac.authorization.k8s.io", "v1").unwrap();
    assert!(
        rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"]["put"]["operationId"]
            .as_str()
            .unwrap()
            .starts_with("replaceRbacAuthorizationV1ClusterRole")
    );
}

#[test]
fn custom_resource_without_schema_preserves_unknown_fields() {
    let mut rr = review_run("v1");
    rr.schema = None;
    let doc = v3_group_version(&[rr], "review.ao.dev", "v1").unwrap();
    let schema = &doc["components"]["schemas"]["dev.ao.review.v1.ReviewRun"];
    assert_eq!(schema["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(schema["type"], "object");
}

#[test]
fn swagger_v2_has_definitions_and_body_parameters() {
    let doc = v2(&all());
    assert_eq!(doc["swagger"], "2.0");
    let defs = &doc["definitions"];
    assert_eq!(gvk_of(&defs["dev.ao.review.v1alpha1.ReviewRun"])[0]["kind"], "ReviewRun");
    assert_eq!(
        defs["dev.ao.review.v1alpha1.ReviewRun"]["properties"]["metadata"]["allOf"][0]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(defs["io.k8s.api.apps.v1.Deployment"].is_object());
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(patch["parameters"][0]["in"], "body");
    assert_eq!(patch["parameters"][3]["name"], "fieldValidation");
    assert_eq!(patch["parameters"][3]["type"], "string");
    assert_eq!(patch["responses"]["200"]["schema"]["$ref"], "#/definitions/io.k8s.api.apps.v1.Deployment");
    assert!(patch["consumes"].as_array().unwrap().contains(&json!("application/apply-patch+yaml")));
}

#[test]
fn schema_names() {
    assert_eq!(reverse_group("review.ao.dev"), "dev.ao.review");
    assert_eq!(kind_schema_name(&review_run("v1")), "dev.ao.review.v1.ReviewRun");
    let crd = builtin_resources().into_iter().find(|r| r.kind == "CustomResourceDefinition").unwrap();
    assert_eq!(
        kind_schema_name(&crd),
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
    );
    let mut unknown = crd.clone();
    unknown.kind = "Mystery".into();
    assert_eq!(kind_schema_name(&unknown), "io.k8s.apiextensions.v1.Mystery");
}

#[test]
fn the_protobuf_v2_document_is_asked_for_first() {
    assert!(super::wants_v2_protobuf("application/com.github.proto-openapi.spec.v2@v1.0+protobuf"));
    assert!(super::wants_v2_protobuf("application/com.github.proto-openapi.spec.v2.v1.0+protobuf, application/json"));
    assert!(!super::wants_v2_protobuf("application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf"));
    assert!(!super::wants_v2_protobuf(""));
    // `swagger: "2.0"`, field 1 of the Document, length-delimited.
    assert_eq!(super::V2_PROTOBUF_DOCUMENT, [0x0a, 3, b'2', b'.', b'0']);
}
