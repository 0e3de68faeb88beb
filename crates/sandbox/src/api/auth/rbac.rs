//! The RBAC authorizer: Role and ClusterRole rules reached through RoleBindings and
//! ClusterRoleBindings, evaluated as upstream's `plugin/pkg/auth/authorizer/rbac` and
//! `pkg/registry/rbac/validation/rule.go` do (no aggregation of ClusterRoles).
//!
//! The objects come from an [`RbacSource`]: the store, read afresh for every request
//! (a ClusterRoleBinding scan, the RoleBindings of the request's namespace, and the
//! roles they name: no cache to go stale), or a fixed [`StaticPolicy`] in tests.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::request_info::Attributes;

/// The group whose members may do everything, decided before RBAC as upstream's
/// privileged-groups authorizer does.
pub const SYSTEM_MASTERS: &str = "system:masters";
/// Every authenticated user's group.
pub const SYSTEM_AUTHENTICATED: &str = "system:authenticated";
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied; `reason` is what went wrong on the way (a binding naming a missing
    /// role), empty when simply no rule allows it.
    Deny {
        reason: String,
    },
}

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    #[serde(default)]
    pub api_group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
struct Metadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

/// A RoleBinding or a ClusterRoleBinding (empty namespace).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    pub role_ref: RoleRef,
    #[serde(default)]
    pub subjects: Vec<Subject>,
}

impl Binding {
    pub fn from_json(value: &Value) -> Result<Binding, serde_json::Error> {
        Binding::deserialize(value)
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn namespace(&self) -> &str {
        &self.metadata.namespace
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RoleRules {
    #[serde(default)]
    rules: Vec<PolicyRule>,
}

/// The rules of a Role or ClusterRole object.
pub fn rules_of(value: &Value) -> Result<Vec<PolicyRule>, serde_json::Error> {
    RoleRules::deserialize(value).map(|r| r.rules)
}

/// Where the authorizer reads RBAC objects from.
pub trait RbacSource {
    fn cluster_role_bindings(&self) -> Vec<Binding>;
    fn role_bindings(&self, namespace: &str) -> Vec<Binding>;
    /// The rules of a ClusterRole; `None` when there is no such ClusterRole.
    fn cluster_role(&self, name: &str) -> Option<Vec<PolicyRule>>;
    /// The rules of a Role in `namespace`; `None` when there is no such Role.
    fn role(&self, namespace: &str, name: &str) -> Option<Vec<PolicyRule>>;
}

/// Upstream's bootstrap policy every authenticated user holds (`system:discovery`,
/// `system:public-info-viewer` and `system:basic-user`, bound to
/// `system:authenticated` by the bootstrap ClusterRoleBindings): discovery, the
/// OpenAPI documents, version and health, and reviews of one's own access.
fn bootstrap_rules() -> Vec<PolicyRule> {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        PolicyRule {
            verbs: strings(&["get"]),
            non_resource_urls: strings(&[
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ]),
            ..PolicyRule::default()
        },
        PolicyRule {
            verbs: strings(&["create"]),
            api_groups: strings(&["authorization.k8s.io"]),
            resources: strings(&["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            ..PolicyRule::default()
        },
        PolicyRule {
            verbs: strings(&["create"]),
            api_groups: strings(&["authentication.k8s.io"]),
            resources: strings(&["selfsubjectreviews"]),
            ..PolicyRule::default()
        },
    ]
}

/// Decides a request: `system:masters` may do everything; every authenticated user
/// holds the bootstrap rules; then the ClusterRoleBindings, then the RoleBindings of
/// the request's namespace (a RoleBinding grants nothing outside its namespace, even
/// when it names a ClusterRole).
pub fn authorize(source: &impl RbacSource, user: &UserInfo, a: &Attributes) -> Decision {
    if user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
        return Decision::Allow;
    }
    if user.groups.iter().any(|g| g == SYSTEM_AUTHENTICATED)
        && bootstrap_rules().iter().any(|r| rule_allows(a, r))
    {
        return Decision::Allow;
    }
    let mut errors: Vec<String> = Vec::new();
    let mut visit = |binding: &Binding, namespace: &str| -> bool {
        if !binding
            .subjects
            .iter()
            .any(|s| applies_to(user, s, namespace))
        {
            return false;
        }
        match role_rules(source, &binding.role_ref, namespace) {
            Ok(rules) => rules.iter().any(|r| rule_allows(a, r)),
            Err(e) => {
                errors.push(e);
                false
            }
        }
    };
    if source.cluster_role_bindings().iter().any(|b| visit(b, "")) {
        return Decision::Allow;
    }
    if !a.namespace.is_empty()
        && source
            .role_bindings(&a.namespace)
            .iter()
            .any(|b| visit(b, &a.namespace))
    {
        return Decision::Allow;
    }
    // Upstream's reason: "RBAC: " and the aggregate of the errors met ("[a, b]" for
    // more than one).
    let reason = match errors.len() {
        0 => String::new(),
        1 => format!("RBAC: {}", errors[0]),
        _ => format!("RBAC: [{}]", errors.join(", ")),
    };
    Decision::Deny { reason }
}

/// The rules a binding's roleRef names (`rule.go` `GetRoleReferenceRules`): a Role of
/// the binding's namespace (none for a ClusterRoleBinding) or a ClusterRole.
fn role_rules(
    source: &impl RbacSource,
    role_ref: &RoleRef,
    namespace: &str,
) -> Result<Vec<PolicyRule>, String> {
    let name = &role_ref.name;
    let not_found = |kind: &str| format!("{kind}.{RBAC_GROUP} {name:?} not found");
    match role_ref.kind.as_str() {
        "Role" if namespace.is_empty() => Err(not_found("role")),
        "Role" => source
            .role(namespace, name)
            .ok_or_else(|| not_found("role")),
        "ClusterRole" => source
            .cluster_role(name)
            .ok_or_else(|| not_found("clusterrole")),
        other => Err(format!("unsupported role reference kind: {other:?}")),
    }
}

/// Whether a binding's subject is this user (`rule.go` `appliesToUser`). A
/// ServiceAccount subject without a namespace means the binding's own namespace.
pub fn applies_to(user: &UserInfo, subject: &Subject, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let namespace = if subject.namespace.is_empty() {
                binding_namespace
            } else {
                subject.namespace.as_str()
            };
            !namespace.is_empty()
                && user.name == format!("system:serviceaccount:{namespace}:{}", subject.name)
        }
        _ => false,
    }
}

/// Whether one rule allows the request (`rbac.go` `RuleAllows`).
pub fn rule_allows(a: &Attributes, rule: &PolicyRule) -> bool {
    let verb = rule.verbs.iter().any(|v| v == "*" || *v == a.verb);
    if !a.resource_request {
        return verb && non_resource_url_matches(rule, &a.path);
    }
    verb && rule
        .api_groups
        .iter()
        .any(|g| g == "*" || *g == a.api_group)
        && resource_matches(rule, &a.combined_resource(), &a.subresource)
        && (rule.resource_names.is_empty() || rule.resource_names.contains(&a.name))
}

/// `*`, the exact `resource` or `resource/subresource`, or `*/subresource`.
fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// `*`, the exact path, or a prefix ending in `*`.
fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|u| {
        u == "*"
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// A fixed set of RBAC objects (tests; a policy decided without a store).
#[derive(Debug, Clone, Default)]
pub struct StaticPolicy {
    cluster_roles: BTreeMap<String, Vec<PolicyRule>>,
    roles: BTreeMap<(String, String), Vec<PolicyRule>>,
    cluster_role_bindings: Vec<Binding>,
    role_bindings: Vec<Binding>,
}

impl StaticPolicy {
    /// From Role, ClusterRole, RoleBinding and ClusterRoleBinding objects as JSON;
    /// names the object that is not one of them or does not parse.
    pub fn from_objects(objects: &[Value]) -> Result<StaticPolicy, String> {
        let mut policy = StaticPolicy::default();
        for object in objects {
            let kind = object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let meta: Metadata = object
                .get("metadata")
                .map(Metadata::deserialize)
                .transpose()
                .map_err(|e| format!("{kind}: metadata: {e}"))?
                .unwrap_or_default();
            let bad = |e: serde_json::Error| format!("{kind} {:?}: {e}", meta.name);
            match kind {
                "ClusterRole" => {
                    policy
                        .cluster_roles
                        .insert(meta.name.clone(), rules_of(object).map_err(bad)?);
                }
                "Role" => {
                    policy.roles.insert(
                        (meta.namespace.clone(), meta.name.clone()),
                        rules_of(object).map_err(bad)?,
                    );
                }
                "ClusterRoleBinding" => policy
                    .cluster_role_bindings
                    .push(Binding::from_json(object).map_err(bad)?),
                "RoleBinding" => policy
                    .role_bindings
                    .push(Binding::from_json(object).map_err(bad)?),
                other => return Err(format!("not an RBAC object: kind {other:?}")),
            }
        }
        Ok(policy)
    }
}

impl RbacSource for StaticPolicy {
    fn cluster_role_bindings(&self) -> Vec<Binding> {
        self.cluster_role_bindings.clone()
    }

    fn role_bindings(&self, namespace: &str) -> Vec<Binding> {
        self.role_bindings
            .iter()
            .filter(|b| b.namespace() == namespace)
            .cloned()
            .collect()
    }

    fn cluster_role(&self, name: &str) -> Option<Vec<PolicyRule>> {
        self.cluster_roles.get(name).cloned()
    }

    fn role(&self, namespace: &str, name: &str) -> Option<Vec<PolicyRule>> {
        self.roles
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sa(namespace: &str, name: &str) -> UserInfo {
        UserInfo {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            uid: "uid".into(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                SYSTEM_AUTHENTICATED.into(),
            ],
        }
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        groups.push(SYSTEM_AUTHENTICATED.into());
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups,
        }
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
        json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
    }

    fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
        json!({"kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})
    }

    fn role(namespace: &str, name: &str, rules: Vec<Value>) -> Value {
        json!({"kind": "Role", "metadata": {"name": name, "namespace": namespace}, "rules": rules})
    }

    fn binding(kind: &str, namespace: &str, role_kind: &str, role: &str, subjects: Value) -> Value {
        json!({
            "kind": kind,
            "metadata": {"name": format!("{role}-binding"), "namespace": namespace},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role},
            "subjects": subjects,
        })
    }

    fn sa_subject(namespace: &str, name: &str) -> Value {
        json!([{"kind": "ServiceAccount", "name": name, "namespace": namespace}])
    }

    /// The policy every case below is decided on.
    fn policy() -> StaticPolicy {
        StaticPolicy::from_objects(&[
            // podwarden:podwarden reads pods everywhere (ClusterRoleBinding).
            cluster_role(
                "pod-reader",
                vec![rule(&["get", "list", "watch"], &[""], &["pods"], &[])],
            ),
            binding(
                "ClusterRoleBinding",
                "",
                "ClusterRole",
                "pod-reader",
                sa_subject("podwarden", "podwarden"),
            ),
            // ... and writes policy status only in its namespace (RoleBinding to a Role).
            role(
                "podwarden",
                "status-writer",
                vec![rule(
                    &["update", "patch"],
                    &["podwarden.io"],
                    &["podlifecyclepolicies/status"],
                    &[],
                )],
            ),
            binding(
                "RoleBinding",
                "podwarden",
                "Role",
                "status-writer",
                sa_subject("podwarden", "podwarden"),
            ),
            // demo:app deletes pods, through a ClusterRole bound in demo only.
            cluster_role(
                "pod-deleter",
                vec![rule(&["delete"], &[""], &["pods"], &[])],
            ),
            binding(
                "RoleBinding",
                "demo",
                "ClusterRole",
                "pod-deleter",
                json!([{"kind": "ServiceAccount", "name": "app"}]),
            ),
            // demo:lister lists pods (no watch); demo:one gets one config by name.
            role(
                "demo",
                "lister",
                vec![rule(&["list"], &[""], &["pods"], &[])],
            ),
            binding(
                "RoleBinding",
                "demo",
                "Role",
                "lister",
                sa_subject("demo", "lister"),
            ),
            role(
                "demo",
                "one",
                vec![rule(&["get"], &[""], &["configmaps"], &["settings"])],
            ),
            binding(
                "RoleBinding",
                "demo",
                "Role",
                "one",
                sa_subject("demo", "one"),
            ),
            // Group auditors: everything in podwarden.io; group ops: every */status.
            cluster_role(
                "policy-admin",
                vec![rule(&["*"], &["podwarden.io"], &["*"], &[])],
            ),
            binding(
                "ClusterRoleBinding",
                "",
                "ClusterRole",
                "policy-admin",
                json!([{"kind": "Group", "name": "auditors"}]),
            ),
            cluster_role(
                "status-patcher",
                vec![rule(&["patch"], &["*"], &["*/status"], &[])],
            ),
            binding(
                "ClusterRoleBinding",
                "",
                "ClusterRole",
                "status-patcher",
                json!([{"kind": "Group", "name": "ops"}]),
            ),
            // User alice may do anything with events in any group.
            cluster_role("events", vec![rule(&["*"], &["*"], &["events"], &[])]),
            binding(
                "ClusterRoleBinding",
                "",
                "ClusterRole",
                "events",
                json!([{"kind": "User", "name": "alice"}]),
            ),
            // A binding whose role does not exist.
            binding(
                "RoleBinding",
                "ghost",
                "Role",
                "missing",
                sa_subject("ghost", "sa"),
            ),
        ])
        .expect("the policy parses")
    }

    #[test]
    fn decisions_follow_bindings_rules_and_scopes() {
        let policy = policy();
        let podwarden = sa("podwarden", "podwarden");
        let app = sa("demo", "app");
        let other_app = sa("other", "app");
        let lister = sa("demo", "lister");
        let one = sa("demo", "one");
        let auditor = user("bob", &["auditors"]);
        let ops = user("carol", &["ops"]);
        let alice = user("alice", &[]);
        let mallory = user("mallory", &[]);
        let named_like_a_group = user("auditors", &[]);
        let admin = user("admin", &[SYSTEM_MASTERS]);
        let nobody = sa("demo", "nobody");
        let pods = |verb: &str, ns: &str| Attributes::resource(verb, "", "pods", ns);
        let plp_status = |verb: &str, ns: &str| {
            Attributes::resource(verb, "podwarden.io", "podlifecyclepolicies/status", ns).named("p")
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, &UserInfo, Attributes, bool)> = vec![
            ("ClusterRoleBinding grants list at the cluster scope", &podwarden, pods("list", ""), true),
            ("ClusterRoleBinding grants in every namespace", &podwarden, pods("watch", "demo"), true),
            ("a verb outside the rule is denied", &podwarden, pods("delete", "demo").named("p"), false),
            ("another resource is denied", &podwarden, Attributes::resource("list", "", "nodes", ""), false),
            ("another group is denied", &podwarden, Attributes::resource("list", "apps", "pods", ""), false),
            ("RoleBinding to a Role grants in its namespace", &podwarden, plp_status("patch", "podwarden"), true),
            ("RoleBinding grants nothing in another namespace", &podwarden, plp_status("patch", "demo"), false),
            ("a subresource rule does not grant the main resource", &podwarden, Attributes::resource("patch", "podwarden.io", "podlifecyclepolicies", "podwarden").named("p"), false),
            ("a main resource rule does not grant its subresource", &podwarden, Attributes::resource("get", "", "pods/status", "demo").named("p"), false),
            ("RoleBinding to a ClusterRole grants in the binding's namespace", &app, pods("delete", "demo").named("p"), true),
            ("RoleBinding to a ClusterRole grants nothing at the cluster scope", &app, pods("deletecollection", ""), false),
            ("RoleBinding to a ClusterRole grants nothing in another namespace", &app, pods("delete", "other").named("p"), false),
            ("a subject without namespace is the binding's namespace only", &other_app, pods("delete", "demo").named("p"), false),
            ("list is granted", &lister, pods("list", "demo"), true),
            ("list does not grant watch", &lister, pods("watch", "demo"), false),
            ("list does not grant get", &lister, pods("get", "demo").named("p"), false),
            ("resourceNames grant get of that name", &one, Attributes::resource("get", "", "configmaps", "demo").named("settings"), true),
            ("resourceNames deny another name", &one, Attributes::resource("get", "", "configmaps", "demo").named("other"), false),
            ("resourceNames deny a list", &one, Attributes::resource("list", "", "configmaps", "demo"), false),
            ("group subject with * verbs and resources", &auditor, Attributes::resource("deletecollection", "podwarden.io", "podlifecyclepolicies", "demo"), true),
            ("* resources cover subresources", &auditor, plp_status("update", "demo"), true),
            ("group subject stays in its API group", &auditor, pods("list", "demo"), false),
            ("*/status matches any status subresource", &ops, Attributes::resource("patch", "", "pods/status", "demo").named("p"), true),
            ("*/status matches in any group", &ops, plp_status("patch", "x"), true),
            ("*/status does not match the main resource", &ops, pods("patch", "demo").named("p"), false),
            ("*/status does not match other subresources", &ops, Attributes::resource("patch", "", "pods/binding", "demo").named("p"), false),
            ("user subject, * groups", &alice, Attributes::resource("create", "events.k8s.io", "events", "demo"), true),
            ("a user subject does not match another user", &mallory, Attributes::resource("create", "", "events", "demo"), false),
            ("a group name is not a user name", &named_like_a_group, Attributes::resource("list", "podwarden.io", "podlifecyclepolicies", ""), false),
            ("system:masters may do everything", &admin, Attributes::resource("delete", "", "nodes", "").named("n"), true),
            ("discovery is every authenticated user's", &lister, Attributes::non_resource("get", "/apis/podwarden.io/v1alpha1"), true),
            ("version is every authenticated user's", &lister, Attributes::non_resource("get", "/version"), true),
            ("other non-resource paths are not", &lister, Attributes::non_resource("put", "/sandbox/v1/faults"), false),
            ("own access reviews are every authenticated user's", &lister, Attributes::resource("create", "authorization.k8s.io", "selfsubjectaccessreviews", ""), true),
            ("no binding, no access", &nobody, pods("get", "demo").named("p"), false),
        ];
        for (case, who, attributes, allowed) in cases {
            let decision = authorize(&policy, who, &attributes);
            assert_eq!(decision == Decision::Allow, allowed, "{case}: {decision:?}");
        }
    }

    #[test]
    fn a_binding_to_a_missing_role_says_so_in_the_reason() {
        let decision = authorize(
            &policy(),
            &sa("ghost", "sa"),
            &Attributes::resource("get", "", "pods", "ghost").named("p"),
        );
        assert_eq!(
            decision,
            Decision::Deny {
                reason: r#"RBAC: role.rbac.authorization.k8s.io "missing" not found"#.into()
            }
        );
        let plain = authorize(
            &policy(),
            &sa("demo", "lister"),
            &Attributes::resource("watch", "", "pods", "demo"),
        );
        assert_eq!(
            plain,
            Decision::Deny {
                reason: String::new()
            }
        );
    }

    #[test]
    fn non_resource_rules_match_exact_paths_and_star_prefixes() {
        let policy = StaticPolicy::from_objects(&[
            json!({"kind": "ClusterRole", "metadata": {"name": "faults"}, "rules": [
                {"verbs": ["get"], "nonResourceURLs": ["/sandbox/v1/faults"]},
                {"verbs": ["post"], "nonResourceURLs": ["/sandbox/v1/faults/*"]},
            ]}),
            binding(
                "ClusterRoleBinding",
                "",
                "ClusterRole",
                "faults",
                json!([{"kind": "User", "name": "chaos"}]),
            ),
        ])
        .expect("the policy parses");
        let chaos = user("chaos", &[]);
        for (verb, path, allowed) in [
            ("get", "/sandbox/v1/faults", true),
            ("put", "/sandbox/v1/faults", false),
            ("post", "/sandbox/v1/faults/restart", true),
            ("post", "/sandbox/v1/faultsx", false),
            ("get", "/sandbox/v1/nodes", false),
        ] {
            let decision = authorize(&policy, &chaos, &Attributes::non_resource(verb, path));
            assert_eq!(decision == Decision::Allow, allowed, "{verb} {path}");
        }
    }

    #[test]
    fn a_malformed_object_is_named() {
        let err = StaticPolicy::from_objects(&[
            json!({"kind": "Role", "metadata": {"name": "r"}, "rules": "all"}),
        ])
        .expect_err("rules must be a list");
        assert!(err.starts_with("Role \"r\": "), "{err}");
        let err = StaticPolicy::from_objects(&[json!({"kind": "Pod"})]).expect_err("not RBAC");
        assert_eq!(err, "not an RBAC object: kind \"Pod\"");
    }
}
