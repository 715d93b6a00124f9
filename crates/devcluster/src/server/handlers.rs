//! HTTP handlers: turn requests into the object operations of `objects.rs` and render the answers.

use super::objects::{DeleteOptions, FieldValidation, SubresourceWrite, WriteOutcome};
use super::strategy::{Strategy, Subresource};
use super::watch::{StartAt, WatchRequest, watch_response};
use super::{ApiServer, WriteContext, json_response};
use crate::accept::Representation;
use crate::admission::Operation;
use crate::auth::UserInfo;
use crate::body::{decode_body, decode_object};
use crate::error::ApiError;
use crate::faults::FaultAction;
use crate::patch::PatchType;
use crate::registry::ResourceInfo;
use crate::request::{ApiPath, Query, ResourcePath, is_legacy_watch, parse_path};
use crate::selector::{FieldSelector, LabelSelector};
use crate::table::{IncludeObject, to_table};
use crate::{discovery, meta, openapi};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn handle(server: Arc<ApiServer>, user: UserInfo, request: Request) -> Response {
    match route(server, user, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn not_found() -> ApiError {
    ApiError::new(404, "NotFound", "the server could not find the requested resource")
}

fn accept(headers: &HeaderMap) -> String {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

fn content_type(headers: &HeaderMap) -> String {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_string()
}

fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body, &HeaderMap::new())
}

/// Answers an access review body for the requesting user.
type ReviewHandler = fn(&ApiServer, &UserInfo, &Value) -> Result<Response, ApiError>;

async fn route(server: Arc<ApiServer>, user: UserInfo, request: Request) -> Result<Response, ApiError> {
    let path = request.uri().path().to_string();
    // Discovery and OpenAPI documents need the whole registry; resource requests do not (a hot path).
    let resources = || server.registry.all();
    let discovered = || {
        let mut all = resources();
        all.extend(crate::builtin::review_resources());
        all
    };
    if path == "/openapi/v2" {
        if openapi::wants_v2_protobuf(&accept(request.headers())) {
            let mut response = axum::body::Body::from(openapi::V2_PROTOBUF_DOCUMENT).into_response();
            let media = HeaderValue::from_static(openapi::V2_PROTOBUF_MEDIA_TYPE);
            response.headers_mut().insert(header::CONTENT_TYPE, media);
            return Ok(response);
        }
        return Ok(ok(&openapi::v2(&resources())));
    }
    if path == "/openapi/v3" || path == "/openapi/v3/" {
        return Ok(ok(&openapi::v3_index(&resources())));
    }
    if let Some(rest) = path.strip_prefix("/openapi/v3/") {
        let (group, version) = match rest.split('/').collect::<Vec<_>>().as_slice() {
            ["api", version] => (String::new(), version.to_string()),
            ["apis", group, version] => (group.to_string(), version.to_string()),
            _ => return Err(not_found()),
        };
        return openapi::v3_group_version(&resources(), &group, &version).map(|doc| ok(&doc)).ok_or_else(not_found);
    }
    if path.starts_with(super::admin::PREFIX) {
        let method = request.method().clone();
        let bytes = read_body(&server, request.into_body()).await?;
        return super::admin::handle(&server, &user, &method, &path, &bytes);
    }
    if let Some(review) = match path.trim_end_matches('/') {
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" => Some(super::access::access_review as ReviewHandler),
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews" => Some(super::access::rules_review as ReviewHandler),
        "/apis/authentication.k8s.io/v1/tokenreviews" => Some(super::tokens::token_review as ReviewHandler),
        _ => None,
    } {
        if request.method() != Method::POST {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let content_type = content_type(request.headers());
        let bytes = read_body(&server, request.into_body()).await?;
        return review(&server, &user, &super::access::decode_review(&bytes, &content_type)?);
    }
    if path.trim_end_matches('/') == "/apis/authentication.k8s.io/v1/selfsubjectreviews" {
        if request.method() != Method::POST {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let review = json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": meta::now_rfc3339()},
            "status": {"userInfo": user},
        });
        return Ok(json_response(StatusCode::CREATED, &review, &HeaderMap::new()));
    }
    match parse_path(&path).ok_or_else(not_found)? {
        ApiPath::Root { core } => {
            if discovery::wants_aggregated(&accept(request.headers())) {
                let mut response = ok(&discovery::aggregated(&discovered(), core));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(discovery::aggregated_content_type()));
                return Ok(response);
            }
            let address = server.server_address();
            Ok(ok(&if core { discovery::core_versions(&address) } else { discovery::group_list(&discovered()) }))
        }
        ApiPath::GroupVersion { group, version } => {
            discovery::resource_list(&discovered(), &group, &version).map(|doc| ok(&doc)).ok_or_else(not_found)
        }
        ApiPath::Resource(target) => {
            let legacy_watch = is_legacy_watch(&path);
            resource_request(server, user, request, target, legacy_watch).await
        }
    }
}

/// Reads the body, refusing bodies over the server's limit with 413 as the real server does.
pub(super) async fn read_body(server: &ApiServer, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let limit = server.settings.max_body_bytes;
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(format!("Request entity too large: limit is {limit}")))
}

fn user_agent_manager(headers: &HeaderMap) -> String {
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("unknown");
    agent.split('/').next().unwrap_or("unknown").chars().take(128).collect()
}

fn write_context(user: UserInfo, query: &Query, headers: &HeaderMap, apply: bool) -> Result<WriteContext, ApiError> {
    let manager = match query.get("fieldManager") {
        Some(m) if m.chars().count() > 128 => {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![crate::error::Cause::new(
                    "FieldValueTooLong",
                    "fieldManager",
                    "Too long: may not be more than 128 bytes",
                )],
            ));
        }
        Some(m) => m.to_string(),
        None if apply => String::new(),
        None => user_agent_manager(headers),
    };
    Ok(WriteContext {
        user,
        manager,
        field_validation: FieldValidation::parse(query.get("fieldValidation"))?,
        dry_run: query.dry_run()?,
        duplicate_fields: Vec::new(),
        admitted: false,
    })
}

pub(super) fn warning_headers(warnings: &[String]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in warnings.iter().filter_map(|w| crate::error::warning_header(w)) {
        headers.append("Warning", value);
    }
    headers
}

fn written(result: WriteOutcome, created_code: StatusCode) -> Response {
    let code = if result.created { created_code } else { StatusCode::OK };
    json_response(code, &result.object, &warning_headers(&result.warnings))
}

fn table_request(headers: &HeaderMap, query: &Query) -> Result<Option<IncludeObject>, ApiError> {
    if !crate::table::wants_table(&accept(headers)) {
        return Ok(None);
    }
    match query.get("includeObject") {
        None => Ok(Some(IncludeObject::Metadata)),
        Some(value) => IncludeObject::parse(value).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "includeObject: Unsupported value: {value:?}: supported values: \"None\", \"Metadata\", \"Object\""
            ))
        }),
    }
}

async fn resource_request(
    server: Arc<ApiServer>,
    user: UserInfo,
    request: Request,
    target: ResourcePath,
    legacy_watch: bool,
) -> Result<Response, ApiError> {
    let info = server.resolve(&target.group, &target.version, &target.resource)?;
    let own_storage = target.subresource.as_deref().and_then(|sub| Strategy::of(&info).subresource(sub));
    let scale = match target.subresource.as_deref() {
        Some("scale") if info.subresources.iter().any(|s| s == "scale") => server.scale_paths(&info),
        _ => None,
    };
    if let Some(sub) = &target.subresource
        && !(sub == "status" && info.has_status())
        && own_storage.is_none()
        && scale.is_none()
    {
        return Err(not_found());
    }
    if !info.namespaced && target.namespace.is_some() {
        return Err(not_found());
    }
    if info.namespaced && target.name.is_some() && target.namespace.is_none() {
        return Err(not_found());
    }
    let (mut parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query());
    let headers = std::mem::take(&mut parts.headers);
    let ns = target.namespace.as_deref();
    let name = target.name.as_deref();
    let sub = target.subresource.as_deref();
    let streams = matches!(own_storage, Some(Subresource::Exec | Subresource::Attach));
    // A WebSocket upgrade is a GET, but opening a stream into a container needs `create`.
    let verb =
        if streams { "create" } else { verb_of(&parts.method, name.is_some(), legacy_watch || query.flag("watch")) };
    server.authorizer.authorize(&crate::rbac::RequestAttributes {
        user: user.clone(),
        verb: verb.to_string(),
        group: info.group.clone(),
        resource: info.resource.clone(),
        subresource: target.subresource.clone(),
        namespace: target.namespace.clone(),
        name: target.name.clone(),
    })?;
    // Answers are JSON only: a client that accepts nothing the server can produce gets a 406.
    let metadata_only = crate::accept::negotiate(&accept(&headers))? == Representation::Metadata;
    match server.faults.intercept(verb, &info.resource, sub, name) {
        Some(FaultAction::Fail(error)) => return Err(error),
        Some(FaultAction::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    if let (Some(paths), Some(name)) = (&scale, name) {
        let write = match parts.method {
            Method::GET => None,
            Method::PUT => {
                let bytes = read_body(&server, body).await?;
                let decoded = decode_object(&bytes, &content_type(&headers))?;
                Some((super::scale::ScaleWrite::Replace(decoded.value), write_context(user, &query, &headers, false)?))
            }
            Method::PATCH => {
                let ct = content_type(&headers);
                let patch_type = PatchType::from_content_type(&ct)
                    .ok_or_else(|| ApiError::unsupported_media_type(info.patch_types()))?;
                let bytes = read_body(&server, body).await?;
                let decoded = decode_body(&bytes, &ct)?;
                let ctx = write_context(user, &query, &headers, false)?;
                Some((super::scale::ScaleWrite::Patch(patch_type, decoded.value), ctx))
            }
            _ => {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
        };
        return super::scale::serve(&server, &info, paths, ns, name, write);
    }
    if own_storage == Some(Subresource::Eviction) {
        let (true, Some(name), Some(namespace)) = (parts.method == Method::POST, name, ns) else {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        };
        let bytes = read_body(&server, body).await?;
        let mut request =
            if bytes.is_empty() { json!({}) } else { decode_object(&bytes, &content_type(&headers))?.value };
        let ctx = write_context(user.clone(), &query, &headers, false)?;
        let write = SubresourceWrite {
            info: &info,
            subresource: "eviction",
            body_kind: Subresource::Eviction.kind().unwrap_or_default(),
            operation: Operation::Create,
            namespace: Some(namespace),
            name,
            old: None,
            ctx: &ctx,
        };
        server.admit_subresource(&write, &mut request, |_| Ok(()))?;
        let options = DeleteOptions { user: user.clone(), ..DeleteOptions::default() };
        let answer = super::eviction::evict(&server, &info, namespace, name, &request, options)?;
        return Ok(json_response(StatusCode::CREATED, &answer, &HeaderMap::new()));
    }
    if own_storage == Some(Subresource::Token) {
        let (true, Some(name)) = (parts.method == Method::POST, name) else {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        };
        let account = server.get_object(&info, ns, name)?;
        let bytes = read_body(&server, body).await?;
        let mut request =
            if bytes.is_empty() { json!({}) } else { decode_object(&bytes, &content_type(&headers))?.value };
        let ctx = write_context(user.clone(), &query, &headers, false)?;
        let write = SubresourceWrite {
            info: &info,
            subresource: "token",
            body_kind: Subresource::Token.kind().unwrap_or_default(),
            operation: Operation::Create,
            namespace: ns,
            name,
            old: None,
            ctx: &ctx,
        };
        server.admit_subresource(&write, &mut request, |_| Ok(()))?;
        return super::tokens::token_request(&server, &account, &request);
    }
    if own_storage == Some(Subresource::Log) {
        let (true, Some(name)) = (parts.method == Method::GET, name) else {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        };
        let pod = server.get_object(&info, ns, name)?;
        let options = crate::runner::log_request::LogOptions::parse(&query)?;
        return crate::runner::log_request::log_response(&server.pod_logs, &pod, &options);
    }
    if let (Some(stream @ (Subresource::Exec | Subresource::Attach)), Some(name)) = (own_storage, name) {
        let exec = stream == Subresource::Exec;
        let options = super::streams::StreamOptions::parse(&query, exec)?;
        let pod = server.get_object(&info, ns, name)?;
        let ctx = write_context(user.clone(), &query, &headers, false)?;
        let write = SubresourceWrite {
            info: &info,
            subresource: if exec { "exec" } else { "attach" },
            body_kind: stream.kind().unwrap_or_default(),
            operation: Operation::Connect,
            namespace: ns,
            name,
            old: None,
            ctx: &ctx,
        };
        server.admit_subresource(&write, &mut options.admission_object(exec), |_| Ok(()))?;
        let container = crate::runner::log_request::container_name(&pod, options.container.as_deref())?;
        let container_id = super::streams::running_container(&pod, &container)?;
        use axum::extract::FromRequestParts;
        parts.headers = headers;
        let upgrade = axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|_| ApiError::bad_request("Upgrade request required: the dev cluster serves exec and attach over WebSocket (v5.channel.k8s.io) only"))?
            .protocols(super::streams::PROTOCOLS);
        let gone =
            || ApiError::bad_request(format!("unable to upgrade connection: container not found (\"{container}\")"));
        let response = if exec {
            let target = server.pod_exec.get(&container_id).ok_or_else(gone)?;
            upgrade.on_upgrade(move |socket| super::streams::exec(socket, target, options))
        } else {
            let output = server.pod_logs.get(&container_id).ok_or_else(gone)?;
            upgrade.on_upgrade(move |socket| super::streams::attach(socket, output, options))
        };
        return Ok(response);
    }
    match (parts.method, name) {
        (Method::GET, Some(name)) if !legacy_watch && !query.flag("watch") => {
            let object = server.get_object(&info, ns, name)?;
            if metadata_only {
                return Ok(ok(&crate::accept::partial(&object)));
            }
            match table_request(&headers, &query)? {
                Some(include) => {
                    let rv = meta::str_at(&object, "/metadata/resourceVersion").to_string();
                    Ok(ok(&to_table(&info, &[object], include, &rv, None)))
                }
                None => Ok(ok(&object)),
            }
        }
        (Method::GET, _) if legacy_watch || query.flag("watch") => {
            let mut watch = watch_request(&info, ns, &query, &headers)?;
            if let Some(name) = name {
                watch.fields = FieldSelector::parse_scoped(
                    &info.group,
                    &info.resource,
                    info.namespaced,
                    &format!("metadata.name={name}"),
                )?;
            }
            Ok(watch_response(server, watch))
        }
        (Method::GET, None) => list(&server, &info, ns, &query, &headers),
        (Method::POST, None) => {
            let bytes = read_body(&server, body).await?;
            let decoded = decode_object(&bytes, &content_type(&headers))?;
            let mut ctx = write_context(user, &query, &headers, false)?;
            ctx.duplicate_fields = decoded.duplicate_fields;
            Ok(written(server.create_resolved(&info, ns, decoded.value, &ctx)?, StatusCode::CREATED))
        }
        (Method::PUT, Some(name)) => {
            let bytes = read_body(&server, body).await?;
            let decoded = decode_object(&bytes, &content_type(&headers))?;
            let mut ctx = write_context(user, &query, &headers, false)?;
            ctx.duplicate_fields = decoded.duplicate_fields;
            Ok(written(server.update_object(&info, ns, name, sub, decoded.value, &ctx)?, StatusCode::CREATED))
        }
        (Method::PATCH, Some(name)) => {
            let ct = content_type(&headers);
            let patch_type = PatchType::from_content_type(&ct)
                .ok_or_else(|| ApiError::unsupported_media_type(info.patch_types()))?;
            let bytes = read_body(&server, body).await?;
            let decoded = decode_body(&bytes, &ct)?;
            let mut ctx = write_context(user, &query, &headers, patch_type == PatchType::Apply)?;
            ctx.duplicate_fields = decoded.duplicate_fields;
            if patch_type != PatchType::Apply && query.get("force").is_some() {
                return Err(ApiError::bad_request("force: Forbidden: may not be specified for non-apply patch"));
            }
            let force = query.flag("force");
            let mut result = server.patch_object(&info, ns, name, sub, patch_type, &decoded.value, force, &ctx)?;
            if metadata_only {
                result.object = crate::accept::partial(&result.object);
            }
            Ok(written(result, StatusCode::CREATED))
        }
        (Method::DELETE, Some(name)) => {
            let bytes = read_body(&server, body).await?;
            let mut options = delete_options(&bytes, &query)?;
            options.user = user.clone();
            let (code, answer) = server.delete_object(&info, ns, name, &options)?.answer(&info, &options);
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            Ok(json_response(code, &answer, &HeaderMap::new()))
        }
        (Method::DELETE, None) => {
            let bytes = read_body(&server, body).await?;
            let mut options = delete_options(&bytes, &query)?;
            options.user = user.clone();
            let (labels, fields) = selectors(&info, &query)?;
            let (group, resource) = info.storage();
            let listing = server.store.list(group, resource, ns);
            let mut deleted = Vec::new();
            for object in listing.objects.iter().filter(|o| labels.matches(o) && fields.matches(o)) {
                let obj_ns = meta::str_at(object, "/metadata/namespace");
                let obj_ns = (!obj_ns.is_empty()).then_some(obj_ns);
                match server.delete_object(&info, obj_ns, meta::str_at(object, "/metadata/name"), &options) {
                    Ok(deletion) => deleted.push(deletion.object),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let list = json!({
                "kind": info.list_kind,
                "apiVersion": info.api_version(),
                "metadata": {"resourceVersion": server.store.revision().to_string()},
                "items": deleted,
            });
            Ok(ok(&list))
        }
        _ => Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource")),
    }
}

/// The `labelSelector` and `fieldSelector` of a list, watch or deletecollection.
fn selectors(info: &ResourceInfo, query: &Query) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse_scoped(
        &info.group,
        &info.resource,
        info.namespaced,
        query.get("fieldSelector").unwrap_or(""),
    )?;
    Ok((labels, fields))
}

/// The RBAC verb of a request.
fn verb_of(method: &Method, named: bool, watch: bool) -> &'static str {
    match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

fn watch_request(
    info: &ResourceInfo,
    ns: Option<&str>,
    query: &Query,
    headers: &HeaderMap,
) -> Result<WatchRequest, ApiError> {
    let (labels, fields) = selectors(info, query)?;
    let rv = query.resource_version("resourceVersion")?;
    let initial_events = query.flag("sendInitialEvents");
    if initial_events && query.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![crate::error::Cause::new(
                "FieldValueForbidden",
                "resourceVersionMatch",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )],
        ));
    }
    let start = match rv {
        _ if initial_events => StartAt::InitialEvents,
        None | Some(0) => StartAt::CurrentState,
        Some(rv) => StartAt::After(rv),
    };
    let timeout = query.number("timeoutSeconds")?.map(Duration::from_secs);
    Ok(WatchRequest {
        info: info.clone(),
        namespace: ns.map(str::to_string),
        labels,
        fields,
        start,
        bookmarks: query.flag("allowWatchBookmarks") || initial_events,
        timeout,
        table: table_request(headers, query)?,
        metadata_only: crate::accept::negotiate(&accept(headers))? == Representation::Metadata,
    })
}

/// The continue token: the list's resourceVersion and the last key returned.
fn encode_continue(revision: u64, namespace: &str, name: &str) -> String {
    let token = json!({"rv": revision, "ns": namespace, "name": name});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    let invalid = || ApiError::bad_request("continue key is not valid: the token is malformed");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let rv = value.get("rv").and_then(Value::as_u64).ok_or_else(invalid)?;
    Ok((rv, meta::str_at(&value, "/ns").to_string(), meta::str_at(&value, "/name").to_string()))
}

fn list(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(info, query)?;
    let limit = query.number("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let after = query.get("continue").map(decode_continue).transpose()?;
    let selects = |o: &Value| labels.matches(o) && fields.matches(o);
    let filter: Option<&dyn Fn(&Value) -> bool> =
        if labels.is_empty() && fields.is_empty() { None } else { Some(&selects) };
    let (group, resource) = info.storage();
    let listed = server.store.list_page(
        group,
        resource,
        ns,
        after.as_ref().map(|(_, ans, aname)| (ans.as_str(), aname.as_str())),
        limit,
        filter,
    );
    let revision = after.as_ref().map(|(rv, _, _)| *rv).unwrap_or(listed.revision);
    let page: Vec<std::borrow::Cow<'_, Value>> =
        listed.objects.iter().map(|o| ApiServer::present_view(info, o)).collect();
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if listed.more
        && let Some(last) = page.last()
    {
        metadata["continue"] = json!(encode_continue(
            revision,
            meta::str_at(last, "/metadata/namespace"),
            meta::str_at(last, "/metadata/name")
        ));
        if let Some(remaining) = listed.remaining {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    if crate::accept::negotiate(&accept(headers))? == Representation::Metadata {
        let page: Vec<Value> = page.into_iter().map(std::borrow::Cow::into_owned).collect();
        return Ok(ok(&crate::accept::partial_list(metadata, &page)));
    }
    if let Some(include) = table_request(headers, query)? {
        let page: Vec<Value> = page.into_iter().map(std::borrow::Cow::into_owned).collect();
        let token = metadata.get("continue").and_then(Value::as_str).map(str::to_string);
        return Ok(ok(&to_table(info, &page, include, &revision.to_string(), token.as_deref())));
    }
    let items: Vec<&Value> = page.iter().map(|object| &**object).collect();
    let body = crate::wire::list_to_vec(&info.list_kind, &info.api_version(), &metadata, &items);
    Ok(super::json_bytes_response(StatusCode::OK, body, &HeaderMap::new()))
}

fn delete_options(bytes: &[u8], query: &Query) -> Result<DeleteOptions, ApiError> {
    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        decode_body(bytes, "application/json")?.value
    };
    let mut options = DeleteOptions::default();
    let propagation = body.get("propagationPolicy").and_then(Value::as_str).or(query.get("propagationPolicy"));
    if let Some(p) = propagation {
        options.propagation = Some(DeleteOptions::parse_propagation(p)?);
    }
    let orphan =
        body.get("orphanDependents").and_then(Value::as_bool).or(query.get("orphanDependents").map(|v| v == "true"));
    if let Some(orphan) = orphan {
        if options.propagation.is_some() {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                vec![crate::error::Cause::new(
                    "FieldValueInvalid",
                    "propagationPolicy",
                    "Invalid value: \"\": orphanDependents and deletionPropagation cannot be both set",
                )],
            ));
        }
        options.propagation = Some(if orphan { super::Propagation::Orphan } else { super::Propagation::Background });
        options.orphan_dependents = Some(orphan);
    }
    options.precondition_uid = body.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
    options.precondition_resource_version =
        body.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
    options.grace_period_seconds = body
        .get("gracePeriodSeconds")
        .and_then(Value::as_i64)
        .or(query.number("gracePeriodSeconds")?.map(|g| g as i64));
    let body_dry_run = body.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v == "All"));
    options.dry_run = body_dry_run || query.dry_run()?;
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let token = encode_continue(42, "ns", "name");
        assert_eq!(decode_continue(&token).unwrap(), (42, "ns".into(), "name".into()));
        assert_eq!(decode_continue("!!!").unwrap_err().code, 400);
        assert_eq!(decode_continue("e30").unwrap_err().code, 400);
    }

    #[test]
    fn delete_options_from_body_and_query() {
        let body =
            br#"{"propagationPolicy":"Foreground","preconditions":{"uid":"u","resourceVersion":"7"},"dryRun":["All"]}"#;
        let o = delete_options(body, &Query::default()).unwrap();
        assert_eq!(o.propagation, Some(super::super::Propagation::Foreground));
        assert_eq!(o.precondition_uid.as_deref(), Some("u"));
        assert_eq!(o.precondition_resource_version.as_deref(), Some("7"));
        assert!(o.dry_run);
        let o = delete_options(b"", &Query::parse(Some("propagationPolicy=Orphan&gracePeriodSeconds=3"))).unwrap();
        assert_eq!(o.propagation, Some(super::super::Propagation::Orphan));
        assert_eq!(o.grace_period_seconds, Some(3));
        assert_eq!(delete_options(b"", &Query::parse(Some("propagationPolicy=Sideways"))).unwrap_err().code, 422);
        let both = br#"{"propagationPolicy":"Foreground","orphanDependents":true}"#;
        assert_eq!(delete_options(both, &Query::default()).unwrap_err().code, 422);
        assert_eq!(delete_options(b"{bad", &Query::default()).unwrap_err().code, 400);
    }

    #[test]
    fn warnings_become_299_headers() {
        let h = warning_headers(&["unknown field \"spec.x\"".to_string()]);
        assert_eq!(h.get("Warning").unwrap(), "299 - \"unknown field \\\"spec.x\\\"\"");
    }

    #[test]
    fn managers_default_to_the_user_agent_program() {
        let mut h = HeaderMap::new();
        h.insert(header::USER_AGENT, HeaderValue::from_static("kubectl-edit/v1.37.1 (linux/amd64)"));
        assert_eq!(user_agent_manager(&h), "kubectl-edit");
        let ctx = write_context(UserInfo::admin(), &Query::default(), &h, true).unwrap();
        assert_eq!(ctx.manager, "");
        let long = "m".repeat(129);
        assert_eq!(
            write_context(UserInfo::admin(), &Query::parse(Some(&format!("fieldManager={long}"))), &h, false)
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            write_context(UserInfo::admin(), &Query::parse(Some("fieldValidation=Loud")), &h, false).unwrap_err().code,
            400
        );
    }
}
