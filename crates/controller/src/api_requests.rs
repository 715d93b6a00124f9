//! Counting the controller's requests to the API server, by verb and
//! resource: the figure a platform team watches on the shared API server
//! (`review_operator_api_requests_total`), and the one that shows a cold
//! start lists each resource once.

use std::sync::Arc;

use http::{Method, Request};
use kube::client::{Body, ClientBuilder};

use crate::metrics::{ApiRequestLabels, Metrics};

/// A client for `config` whose every request is counted in `metrics`.
pub fn counted_client(config: kube::Config, metrics: Arc<Metrics>) -> Result<kube::Client, kube::Error> {
    let count = tower::util::MapRequestLayer::new(move |request: Request<Body>| {
        let (verb, resource) = classify(request.method(), request.uri().path(), request.uri().query());
        metrics.api_requests.get_or_create(&ApiRequestLabels { verb: verb.into(), resource }).inc();
        request
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&count).build())
}

/// The verb and resource of a request, as kube-apiserver's request info
/// names them (`get`, `list`, `watch`, `create`, `update`, `patch`,
/// `delete`, `deletecollection`); a subresource is `resource/subresource`.
/// Paths outside the resource APIs (discovery, `/version`) are resource `""`.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[][..],
    };
    // `namespaces/<ns>/<resource>...` is a namespaced resource; `namespaces/<ns>` alone, or
    // with one of a Namespace's own subresources, is the Namespace.
    let rest = match rest {
        ["namespaces", _namespace, inner @ ..] if !matches!(inner, [] | ["status" | "finalize"]) => inner,
        other => other,
    };
    let named = rest.len() >= 2;
    let resource = match rest {
        [resource, _name, subresource, ..] => format!("{resource}/{subresource}"),
        [resource, ..] => (*resource).to_owned(),
        [] => String::new(),
    };
    let watch =
        query.is_some_and(|query| query.split('&').any(|pair| matches!(pair, "watch=true" | "watch=1" | "watch")));
    let verb = match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb_and_resource(method: Method, uri: &str) -> (&'static str, String) {
        let (path, query) = uri.split_once('?').map_or((uri, None), |(path, query)| (path, Some(query)));
        classify(&method, path, query)
    }

    #[test]
    fn names_the_verbs_of_resource_requests() {
        let cases = [
            (Method::GET, "/apis/review.ao.dev/v1alpha1/reviewruns?limit=500", "list", "reviewruns"),
            (
                Method::GET,
                "/apis/review.ao.dev/v1alpha1/reviewruns?watch=true&resourceVersion=7",
                "watch",
                "reviewruns",
            ),
            (Method::GET, "/api/v1/namespaces/ci/pods/review-a-1", "get", "pods"),
            (Method::GET, "/api/v1/namespaces/ci/pods", "list", "pods"),
            (Method::POST, "/api/v1/namespaces/ci/pods", "create", "pods"),
            (Method::DELETE, "/api/v1/namespaces/ci/pods/review-a-1", "delete", "pods"),
            (Method::DELETE, "/api/v1/namespaces/ci/pods", "deletecollection", "pods"),
            (
                Method::PATCH,
                "/apis/review.ao.dev/v1alpha1/namespaces/ci/reviewruns/r1/status?fieldManager=x",
                "patch",
                "reviewruns/status",
            ),
            (Method::PUT, "/apis/coordination.k8s.io/v1/namespaces/ci/leases/review-operator", "update", "leases"),
            (Method::POST, "/apis/events.k8s.io/v1/namespaces/ci/events", "create", "events"),
        ];
        for (method, uri, verb, resource) in cases {
            assert_eq!(verb_and_resource(method, uri), (verb, resource.to_owned()), "{uri}");
        }
    }

    #[test]
    fn a_namespace_is_a_cluster_scoped_resource() {
        assert_eq!(verb_and_resource(Method::GET, "/api/v1/namespaces/ci"), ("get", "namespaces".to_owned()));
        assert_eq!(verb_and_resource(Method::GET, "/api/v1/namespaces"), ("list", "namespaces".to_owned()));
        assert_eq!(
            verb_and_resource(Method::PUT, "/api/v1/namespaces/ci/finalize"),
            ("update", "namespaces/finalize".to_owned())
        );
    }

    #[test]
    fn paths_outside_the_resource_apis_have_no_resource() {
        assert_eq!(verb_and_resource(Method::GET, "/version"), ("list", String::new()));
        assert_eq!(verb_and_resource(Method::GET, "/apis"), ("list", String::new()));
        assert_eq!(verb_and_resource(Method::GET, "/apis/review.ao.dev/v1alpha1"), ("list", String::new()));
    }
}
