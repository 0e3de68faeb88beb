//! What a request asks to do, in the terms RBAC decides on: upstream's
//! `k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`, from the method, the path
//! and the query alone (no knowledge of which resources exist).

use axum::http::Method;

/// The attributes of one request that an authorizer decides on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; for a non-resource request the lowercase HTTP method.
    pub verb: String,
    /// `/api/v1/...` or `/apis/GROUP/VERSION/...` with a resource; everything else
    /// (`/api`, `/apis/GROUP/VERSION`, `/version`, `/healthz`, ...) is a non-resource
    /// request decided on its path.
    pub resource_request: bool,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The URL path as requested.
    pub path: String,
}

impl Attributes {
    /// `pods`, `pods/status`: how RBAC rules and denial messages name the resource.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// A resource request (for tests and for `SelfSubjectAccessReview`).
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: &str) -> Self {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r, s),
            None => (resource, ""),
        };
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            namespace: namespace.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            ..Attributes::default()
        }
    }

    /// The same request on one named object.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// A non-resource request.
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Attributes::default()
        }
    }
}

/// Subresources of a namespace: `namespaces/{name}/status` stays a request on the
/// namespace, not on a resource inside it.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Parses a request as upstream does. Empty path segments are dropped, exactly as the
/// router drops them, so what is authorized is what is served.
pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Attributes {
    let mut info = Attributes {
        verb: method.as_str().to_ascii_lowercase(),
        path: path.to_string(),
        ..Attributes::default()
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut rest: &[&str] = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => {
            info.api_version = (*version).to_string();
            rest
        }
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            info.api_group = (*group).to_string();
            info.api_version = (*version).to_string();
            rest
        }
        _ => return info,
    };
    info.resource_request = true;
    // `/api/v1/watch/...`: the verb in the path (upstream's "special verbs"; `proxy`
    // is not served here).
    let mut verb_in_path = false;
    if rest.first() == Some(&"watch") && rest.len() >= 2 {
        info.verb = "watch".into();
        rest = &rest[1..];
        verb_in_path = true;
    } else {
        info.verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .into();
    }
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        info.namespace = rest[1].to_string();
        // `namespaces/{name}` and `namespaces/{name}/status` are requests on the
        // namespace object itself: the namespace is still set, as upstream does.
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
        }
    }
    if let Some(resource) = rest.first() {
        info.resource = (*resource).to_string();
    }
    if let Some(name) = rest.get(1) {
        info.name = (*name).to_string();
    }
    if let Some(subresource) = rest.get(2) {
        info.subresource = (*subresource).to_string();
    }
    if info.name.is_empty() && info.verb == "get" {
        let query = Query::parse(query);
        info.verb = if query.watch { "watch" } else { "list" }.into();
        if let Some(name) = query.exact_name {
            info.name = name;
        }
    } else if verb_in_path
        && info.name.is_empty()
        && let Some(name) = Query::parse(query).exact_name
    {
        info.name = name;
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".into();
    }
    info
}

/// What the query of a list or watch says that authorization reads.
struct Query {
    watch: bool,
    /// `fieldSelector=metadata.name=X`: a list or watch of one object, which a rule
    /// with `resourceNames` may allow.
    exact_name: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let mut watch = false;
        let mut exact_name = None;
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                // Go's strconv.ParseBool, as upstream parses `watch`.
                "watch" => {
                    watch = matches!(value.as_ref(), "1" | "t" | "T" | "true" | "TRUE" | "True")
                }
                "fieldSelector" => exact_name = exact_name_of(&value),
                _ => {}
            }
        }
        Query { watch, exact_name }
    }
}

/// The name a field selector requires (`metadata.name=X` or `==`), if it is a valid
/// path segment (upstream's `IsValidPathSegmentName`).
fn exact_name_of(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let term = term.trim();
        if term.contains("!=") {
            return None;
        }
        let (field, value) = term.split_once("==").or_else(|| term.split_once('='))?;
        let value = value.trim();
        let valid = !value.is_empty()
            && value != "."
            && value != ".."
            && !value.contains('/')
            && !value.contains('%');
        (field.trim() == "metadata.name" && valid).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(method: Method, uri: &str) -> Attributes {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        parse(&method, path, query)
    }

    /// (case, method, uri, [verb, group, namespace, resource, subresource, name])
    #[rustfmt::skip]
    const CASES: &[(&str, &str, &str, [&str; 6])] = &[
        ("get of a named pod", "GET", "/api/v1/namespaces/demo/pods/p", ["get", "", "demo", "pods", "", "p"]),
        ("list across namespaces", "GET", "/api/v1/pods", ["list", "", "", "pods", "", ""]),
        ("list in a namespace", "GET", "/api/v1/namespaces/demo/pods", ["list", "", "demo", "pods", "", ""]),
        ("watch by query", "GET", "/api/v1/namespaces/demo/pods?watch=true", ["watch", "", "demo", "pods", "", ""]),
        ("watch=1", "GET", "/api/v1/pods?watch=1", ["watch", "", "", "pods", "", ""]),
        ("watch=false is a list", "GET", "/api/v1/pods?watch=false", ["list", "", "", "pods", "", ""]),
        ("watch in the path", "GET", "/api/v1/watch/namespaces/demo/pods", ["watch", "", "demo", "pods", "", ""]),
        ("list of one name by field selector", "GET", "/api/v1/namespaces/demo/pods?fieldSelector=metadata.name%3Dp", ["list", "", "demo", "pods", "", "p"]),
        ("watch of one name by field selector", "GET", "/api/v1/namespaces/demo/pods?watch=true&fieldSelector=metadata.name%3D%3Dp", ["watch", "", "demo", "pods", "", "p"]),
        ("a != selector names nothing", "GET", "/api/v1/pods?fieldSelector=metadata.name!%3Dp", ["list", "", "", "pods", "", ""]),
        ("create", "POST", "/api/v1/namespaces/demo/pods", ["create", "", "demo", "pods", "", ""]),
        ("update of status", "PUT", "/api/v1/namespaces/demo/pods/p/status", ["update", "", "demo", "pods", "status", "p"]),
        ("patch in a group", "PATCH", "/apis/podwarden.io/v1alpha1/namespaces/demo/podlifecyclepolicies/x/status", ["patch", "podwarden.io", "demo", "podlifecyclepolicies", "status", "x"]),
        ("delete", "DELETE", "/api/v1/namespaces/demo/pods/p", ["delete", "", "demo", "pods", "", "p"]),
        ("delete of a collection", "DELETE", "/api/v1/namespaces/demo/pods", ["deletecollection", "", "demo", "pods", "", ""]),
        ("token request", "POST", "/api/v1/namespaces/demo/serviceaccounts/sa/token", ["create", "", "demo", "serviceaccounts", "token", "sa"]),
        ("a namespace is in its own namespace", "GET", "/api/v1/namespaces/demo", ["get", "", "demo", "namespaces", "", "demo"]),
        ("a namespace's status", "PUT", "/api/v1/namespaces/demo/status", ["update", "", "demo", "namespaces", "status", "demo"]),
        ("list of namespaces", "GET", "/api/v1/namespaces", ["list", "", "", "namespaces", "", ""]),
        ("cluster-scoped in a group", "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/view", ["get", "rbac.authorization.k8s.io", "", "clusterroles", "", "view"]),
        ("empty segments dropped as the router drops them", "GET", "/api/v1/namespaces/demo//pods", ["list", "", "demo", "pods", "", ""]),
    ];

    #[test]
    fn resource_requests_as_upstream() {
        for (case, method, uri, expected) in CASES {
            let method: Method = method.parse().expect("a method");
            let a = parsed(method.clone(), uri);
            assert!(a.resource_request, "{case}: a resource request");
            let got = [
                a.verb.as_str(),
                a.api_group.as_str(),
                a.namespace.as_str(),
                a.resource.as_str(),
                a.subresource.as_str(),
                a.name.as_str(),
            ];
            assert_eq!(&got, expected, "{case}: {method} {uri}");
        }
    }

    #[test]
    fn non_resource_requests_keep_method_and_path() {
        for (method, path) in [
            (Method::GET, "/api"),
            (Method::GET, "/api/v1"),
            (Method::GET, "/apis"),
            (Method::GET, "/apis/apps"),
            (Method::GET, "/apis/apps/v1"),
            (Method::GET, "/version"),
            (Method::GET, "/openapi/v3/api/v1"),
            (Method::PUT, "/sandbox/v1/faults"),
        ] {
            let a = parse(&method, path, None);
            assert!(!a.resource_request, "{method} {path}");
            assert_eq!(a.verb, method.as_str().to_ascii_lowercase(), "{path}");
            assert_eq!(a.path, path);
        }
    }
}
