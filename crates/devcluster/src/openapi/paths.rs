//! The `paths` of OpenAPI documents: one entry per resource URL with its operations, each tagged
//! with `x-kubernetes-action` and `x-kubernetes-group-version-kind` as the real server does.

use crate::registry::ResourceInfo;
use serde_json::{Map, Value, json};

/// Which document the paths are for: parameters and bodies are shaped differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAPI 3.0: `schema` inside parameters, `requestBody`, `content` in responses.
    V3,
    /// Swagger 2.0: typed parameters, a `body` parameter, `schema` in responses.
    V2,
}

impl Dialect {
    fn ref_to(self, name: &str) -> Value {
        match self {
            Dialect::V3 => json!({"$ref": format!("{}{name}", super::V3_REF_PREFIX)}),
            Dialect::V2 => json!({"$ref": format!("{}{name}", super::V2_REF_PREFIX)}),
        }
    }

    /// A query or path parameter of a simple type.
    fn param(self, name: &str, location: &str, type_: &str, description: &str) -> Value {
        let mut param = json!({"name": name, "in": location, "description": description});
        match self {
            Dialect::V3 => param["schema"] = json!({"type": type_, "uniqueItems": true}),
            Dialect::V2 => {
                param["type"] = json!(type_);
                param["uniqueItems"] = json!(true);
            }
        }
        if location == "path" {
            param["required"] = json!(true);
        }
        param
    }
}

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";
const APPLY: &str = "application/apply-patch+yaml";
const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";

const DRY_RUN: &str = "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed";
const FIELD_MANAGER: &str = "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.";
const FIELD_VALIDATION: &str = "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present.";

/// Query parameters of writes (`create`, `update`); `patch` adds `force`.
fn write_params(d: Dialect) -> Vec<Value> {
    vec![
        d.param("dryRun", "query", "string", DRY_RUN),
        d.param("fieldManager", "query", "string", FIELD_MANAGER),
        d.param("fieldValidation", "query", "string", FIELD_VALIDATION),
    ]
}

fn list_params(d: Dialect) -> Vec<Value> {
    vec![
        d.param("allowWatchBookmarks", "query", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        d.param("continue", "query", "string", "The continue option should be set when retrieving more results from the server."),
        d.param("fieldSelector", "query", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        d.param("labelSelector", "query", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        d.param("limit", "query", "integer", "limit is a maximum number of responses to return for a list call."),
        d.param("resourceVersion", "query", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
        d.param("resourceVersionMatch", "query", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
        d.param("sendInitialEvents", "query", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
        d.param("timeoutSeconds", "query", "integer", "Timeout for the list/watch call."),
        d.param("watch", "query", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
    ]
}

fn delete_params(d: Dialect) -> Vec<Value> {
    vec![
        d.param("dryRun", "query", "string", DRY_RUN),
        d.param(
            "gracePeriodSeconds",
            "query",
            "integer",
            "The duration in seconds before the object should be deleted.",
        ),
        d.param(
            "orphanDependents",
            "query",
            "boolean",
            "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7.",
        ),
        d.param(
            "propagationPolicy",
            "query",
            "string",
            "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
        ),
    ]
}

/// `Core`, `Apps`, `RbacAuthorization`, `ReviewAoDev`: the group part of operation ids.
fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    let trimmed = group.strip_suffix(".k8s.io").unwrap_or(group);
    trimmed.split(['.', '-']).map(capitalize).collect()
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Builds operations of one resource.
struct Ops<'a> {
    info: &'a ResourceInfo,
    dialect: Dialect,
    kind_ref: String,
}

impl Ops<'_> {
    fn op_id(&self, verb: &str, suffix: &str) -> String {
        let namespaced = if self.info.namespaced && verb != "listForAllNamespaces" { "Namespaced" } else { "" };
        let (verb, tail) = match verb {
            "listForAllNamespaces" => ("list", "ForAllNamespaces"),
            v => (v, ""),
        };
        format!(
            "{verb}{}{}{namespaced}{}{suffix}{tail}",
            group_camel(&self.info.group),
            capitalize(&self.info.version),
            self.info.kind
        )
    }

    fn responses(&self, schema: &Value, codes: &[&str]) -> Value {
        let mut responses = Map::new();
        for code in codes {
            let description = match *code {
                "201" => "Created",
                "202" => "Accepted",
                _ => "OK",
            };
            let body = match self.dialect {
                Dialect::V3 => json!({
                    "description": description,
                    "content": {"application/json": {"schema": schema}, "application/yaml": {"schema": schema}},
                }),
                Dialect::V2 => json!({"description": description, "schema": schema}),
            };
            responses.insert((*code).into(), body);
        }
        responses.insert("401".into(), json!({"description": "Unauthorized"}));
        Value::Object(responses)
    }

    /// One operation; `body` is the request schema and its media types.
    fn operation(
        &self,
        action: &str,
        id: String,
        description: String,
        mut params: Vec<Value>,
        body: Option<(Value, &[&str])>,
        responses: Value,
    ) -> Value {
        let mut op = json!({
            "operationId": id,
            "description": description,
            "tags": [format!("{}_{}", group_camel(&self.info.group).to_lowercase(), self.info.version)],
            "responses": responses,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": {"group": self.info.group, "version": self.info.version, "kind": self.info.kind},
        });
        if let Some((schema, media)) = body {
            match self.dialect {
                Dialect::V3 => {
                    let content: Map<String, Value> =
                        media.iter().map(|m| ((*m).to_string(), json!({"schema": schema}))).collect();
                    op["requestBody"] =
                        json!({"content": content, "required": action != "delete" && action != "deletecollection"});
                }
                Dialect::V2 => {
                    params.insert(0, json!({"name": "body", "in": "body", "required": action != "delete" && action != "deletecollection", "schema": schema}));
                    op["consumes"] = json!(media);
                    op["produces"] = json!(["application/json", "application/yaml"]);
                    op["schemes"] = json!(["https"]);
                }
            }
        } else if self.dialect == Dialect::V2 {
            op["consumes"] = json!(["*/*"]);
            op["produces"] = json!(["application/json", "application/yaml"]);
            op["schemes"] = json!(["https"]);
        }
        op["parameters"] = json!(params);
        op
    }

    fn patch_media(&self) -> &'static [&'static str] {
        if matches!(self.info.origin, crate::registry::Origin::Builtin) {
            &[APPLY, JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH]
        } else {
            &[APPLY, JSON_PATCH, MERGE_PATCH]
        }
    }

    fn kind_ref(&self) -> Value {
        self.dialect.ref_to(&self.kind_ref)
    }

    /// GET/PUT/PATCH of the object or one of its subresources (`suffix` is `""` or `Status`).
    fn object_ops(&self, suffix: &str, what: &str, with_delete: bool) -> Map<String, Value> {
        let kind = &self.info.kind;
        let d = self.dialect;
        let object = self.kind_ref();
        let mut patch_params = write_params(d);
        patch_params.push(d.param(
            "force",
            "query",
            "boolean",
            "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.",
        ));
        let mut ops = Map::new();
        ops.insert(
            "get".into(),
            self.operation(
                "get",
                self.op_id("read", suffix),
                format!("read {what} of the specified {kind}"),
                Vec::new(),
                None,
                self.responses(&object, &["200"]),
            ),
        );
        ops.insert(
            "put".into(),
            self.operation(
                "put",
                self.op_id("replace", suffix),
                format!("replace {what} of the specified {kind}"),
                write_params(d),
                Some((object.clone(), &["*/*"])),
                self.responses(&object, &["200", "201"]),
            ),
        );
        ops.insert(
            "patch".into(),
            self.operation(
                "patch",
                self.op_id("patch", suffix),
                format!("partially update {what} of the specified {kind}"),
                patch_params,
                Some((d.ref_to(&format!("{META}Patch")), self.patch_media())),
                self.responses(&object, &["200", "201"]),
            ),
        );
        if with_delete {
            ops.insert(
                "delete".into(),
                self.operation(
                    "delete",
                    self.op_id("delete", suffix),
                    format!("delete a {kind}"),
                    delete_params(d),
                    Some((d.ref_to(&format!("{META}DeleteOptions")), &["*/*"])),
                    self.responses(&d.ref_to(&format!("{META}Status")), &["200", "202"]),
                ),
            );
        }
        ops
    }

    fn collection_ops(&self, list_ref: &str) -> Map<String, Value> {
        let kind = &self.info.kind;
        let d = self.dialect;
        let object = self.kind_ref();
        let mut ops = Map::new();
        ops.insert(
            "get".into(),
            self.operation(
                "list",
                self.op_id("list", ""),
                format!("list or watch objects of kind {kind}"),
                list_params(d),
                None,
                self.responses(&d.ref_to(list_ref), &["200"]),
            ),
        );
        ops.insert(
            "post".into(),
            self.operation(
                "post",
                self.op_id("create", ""),
                format!("create a {kind}"),
                write_params(d),
                Some((object.clone(), &["*/*"])),
                self.responses(&object, &["200", "201", "202"]),
            ),
        );
        let mut params = list_params(d);
        params.extend(delete_params(d));
        ops.insert(
            "delete".into(),
            self.operation(
                "deletecollection",
                self.op_id("deleteCollection", ""),
                format!("delete collection of {kind}"),
                params,
                Some((d.ref_to(&format!("{META}DeleteOptions")), &["*/*"])),
                self.responses(&d.ref_to(&format!("{META}Status")), &["200"]),
            ),
        );
        ops
    }
}

/// Adds the path-level parameters (`name`, `namespace`, `pretty`) to a path item.
fn path_item(d: Dialect, mut ops: Map<String, Value>, name: bool, namespace: bool) -> Value {
    let mut params = Vec::new();
    if name {
        params.push(d.param("name", "path", "string", "name of the object"));
    }
    if namespace {
        params.push(d.param(
            "namespace",
            "path",
            "string",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    params.push(d.param("pretty", "query", "string", "If 'true', then the output is pretty printed."));
    ops.insert("parameters".into(), json!(params));
    Value::Object(ops)
}

/// Inserts every path of `info`: the collection, the object, its subresources and, for namespaced
/// resources, the list across namespaces.
pub fn insert_paths(paths: &mut Map<String, Value>, info: &ResourceInfo, kind_ref: &str, dialect: Dialect) {
    let list_ref = match kind_ref.rsplit_once('.') {
        Some((prefix, _)) => format!("{prefix}.{}", info.list_kind),
        None => info.list_kind.clone(),
    };
    let ops = Ops { info, dialect, kind_ref: kind_ref.to_string() };
    let prefix = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    let scope = if info.namespaced { "/namespaces/{namespace}" } else { "" };
    let collection = format!("{prefix}{scope}/{}", info.resource);
    paths.insert(collection.clone(), path_item(dialect, ops.collection_ops(&list_ref), false, info.namespaced));
    paths.insert(
        format!("{collection}/{{name}}"),
        path_item(dialect, ops.object_ops("", "", true), true, info.namespaced),
    );
    for sub in &info.subresources {
        if sub == "status" {
            paths.insert(
                format!("{collection}/{{name}}/status"),
                path_item(dialect, ops.object_ops("Status", "status", false), true, info.namespaced),
            );
        }
    }
    if info.namespaced {
        let mut all = Map::new();
        all.insert(
            "get".into(),
            ops.operation(
                "list",
                ops.op_id("listForAllNamespaces", ""),
                format!("list or watch objects of kind {}", info.kind),
                list_params(dialect),
                None,
                ops.responses(&dialect.ref_to(&list_ref), &["200"]),
            ),
        );
        paths.insert(format!("{prefix}/{}", info.resource), path_item(dialect, all, false, false));
    }
}
