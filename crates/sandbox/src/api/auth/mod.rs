//! Authentication and authorization, on when [`SandboxConfig::auth`] is set
//! (`podwarden sandbox --auth`); off, the server is plain HTTP and lets every request
//! through, as before.
//!
//! - HTTPS with a CA made at start ([`tls`]); the kubeconfig carries the CA.
//! - Bearer tokens: the admin token written into the kubeconfig (user `admin`, group
//!   `system:masters`), and ServiceAccount tokens from the TokenRequest API
//!   (`POST .../serviceaccounts/{name}/token`, `kubectl create token`), signed JWTs
//!   ([`tokens`]) that stop working when they expire or their ServiceAccount is
//!   deleted. Anything else is `401 Unauthorized`.
//! - RBAC ([`rbac`]) over the Roles, ClusterRoles and bindings in the store, on the
//!   attributes upstream derives from each request ([`request_info`]); a denial is
//!   `403 Forbidden` with upstream's message.
//! - `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` answers whether
//!   the caller may do something (`kubectl auth can-i`).
//!
//! [`SandboxConfig::auth`]: super::server::SandboxConfig::auth

pub mod rbac;
pub mod request_info;
pub mod tls;
pub mod tokens;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::clock::{SharedClock, SystemClock};
use super::error::{ApiError, Cause};
use super::object::{format_time, new_uid};
use super::options::ListOptions;
use super::resources::ResourceType;
use super::store::Store;

pub use rbac::{Decision, RbacSource, StaticPolicy, UserInfo};
pub use request_info::Attributes;
pub use tls::Tls;
pub use tokens::{API_AUDIENCE, ISSUER};

/// Name of the user the admin token authenticates.
pub const ADMIN_USER: &str = "admin";
/// A TokenRequest without `expirationSeconds` gets this lifetime (upstream's default).
pub const DEFAULT_TOKEN_SECONDS: i64 = 3600;
/// Shortest lifetime a TokenRequest may ask for (upstream's validation).
pub const MIN_TOKEN_SECONDS: i64 = 600;
/// Longest lifetime a TokenRequest may ask for before validation refuses it.
pub const MAX_REQUESTABLE_TOKEN_SECONDS: i64 = 1 << 32;
/// The path of SelfSubjectAccessReviews.
pub const SELF_SUBJECT_ACCESS_REVIEWS: &str =
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

/// How authentication behaves.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Tokens longer than this are cut to it, as upstream's
    /// `--service-account-max-token-expiration` does.
    pub max_token_expiration: Duration,
    /// The clock token lifetimes are measured on (wall-clock time by default, also
    /// when the simulator's clock runs faster).
    pub clock: SharedClock,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            max_token_expiration: Duration::from_secs(48 * 3600),
            clock: Arc::new(SystemClock),
        }
    }
}

/// The credentials and the policy of a sandbox with auth on. Made once per sandbox;
/// a restart of the server keeps it (same CA, same admin token, tokens stay valid).
#[derive(Debug)]
pub struct Auth {
    tls: Tls,
    admin_token: String,
    signer: tokens::Signer,
    store: Store,
    config: AuthConfig,
    refusals: std::sync::Mutex<Refusals>,
}

/// The requests authorization refused: how many, and the last [`REFUSALS_KEPT`]
/// messages (what an audit log of denials would show).
#[derive(Debug, Default, Clone)]
pub struct Refusals {
    pub total: u64,
    pub recent: std::collections::VecDeque<String>,
}

/// Refusal messages kept, newest last.
pub const REFUSALS_KEPT: usize = 64;

impl Auth {
    /// Makes the CA, the serving certificate, the admin token and the signing key.
    pub fn new(config: AuthConfig, store: Store, listen: IpAddr) -> Result<Auth, String> {
        let tls = Tls::generate(listen, config.clock.now())?;
        let signer =
            tokens::Signer::generate().map_err(|_| "no random numbers for the token key")?;
        let admin_token = signer
            .random(32)
            .map_err(|_| "no random numbers for the admin token")?;
        Ok(Auth {
            tls,
            admin_token,
            signer,
            store,
            config,
            refusals: Default::default(),
        })
    }

    /// Notes a refused request (its 403 message).
    pub fn refused(&self, message: String) {
        let mut r = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        r.total += 1;
        if r.recent.len() == REFUSALS_KEPT {
            r.recent.pop_front();
        }
        r.recent.push_back(message);
    }

    /// The requests refused so far.
    pub fn refusals(&self) -> Refusals {
        self.refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    /// The bearer token of user `admin` (group `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    fn now(&self) -> i64 {
        self.config.clock.now().as_second()
    }

    /// Who the request's bearer token says it comes from; 401 for a missing,
    /// unknown, expired or revoked token (the cause is logged, not sent).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
        let token = bearer_token(headers).ok_or_else(|| {
            tracing::debug!("sandbox: request without a bearer token");
            ApiError::Unauthorized
        })?;
        self.authenticate_token(token).map_err(|why| {
            tracing::debug!(%why, "sandbox: token refused");
            ApiError::Unauthorized
        })
    }

    /// The user a bearer token identifies, or why it does not.
    pub fn authenticate_token(&self, token: &str) -> Result<UserInfo, String> {
        if constant_time_eq(token.as_bytes(), self.admin_token.as_bytes()) {
            return Ok(UserInfo {
                name: ADMIN_USER.into(),
                uid: String::new(),
                groups: vec![
                    rbac::SYSTEM_MASTERS.into(),
                    rbac::SYSTEM_AUTHENTICATED.into(),
                ],
            });
        }
        let claims = self
            .signer
            .verify(token, self.now())
            .map_err(|e| e.to_string())?;
        let k = &claims.kubernetes;
        let sa = &k.serviceaccount;
        // As upstream's bound token validator: the ServiceAccount (and the Pod the
        // token is bound to) must still exist, be the same object and not be deleting.
        let sa_rt = self.service_accounts()?;
        self.still_there(&sa_rt, &k.namespace, &sa.name, &sa.uid)?;
        if let Some(pod) = &k.pod {
            let pods = self
                .store
                .registry()
                .storage_type(ResourceType::PODS)
                .ok_or("pods are not served")?;
            self.still_there(&pods, &k.namespace, &pod.name, &pod.uid)?;
        }
        let namespace = &k.namespace;
        Ok(UserInfo {
            name: format!("system:serviceaccount:{namespace}:{}", sa.name),
            uid: sa.uid.clone(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                rbac::SYSTEM_AUTHENTICATED.into(),
            ],
        })
    }

    fn service_accounts(&self) -> Result<Arc<ResourceType>, String> {
        self.store
            .registry()
            .storage_type(ResourceType::SERVICE_ACCOUNTS)
            .ok_or_else(|| "serviceaccounts are not served".to_string())
    }

    fn still_there(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<(), String> {
        let what = format!("{} {namespace}/{name}", rt.singular);
        let obj = self
            .store
            .get(rt, Some(namespace), name)
            .map_err(|_| format!("{what} no longer exists"))?;
        if obj.uid != uid {
            return Err(format!(
                "{what} was recreated (uid {}, token for {uid})",
                obj.uid
            ));
        }
        if obj.value().pointer("/metadata/deletionTimestamp").is_some() {
            return Err(format!("{what} is being deleted"));
        }
        Ok(())
    }

    /// Decides a request of `user` on the current RBAC objects of the store.
    pub fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Decision {
        rbac::authorize(&StoreSource(&self.store), user, attributes)
    }

    /// A TokenRequest (`authentication.k8s.io/v1`) for ServiceAccount
    /// `namespace/name`: the request echoed with its defaults, and `status.token`.
    pub fn request_token(
        &self,
        namespace: &str,
        name: &str,
        request: &Value,
    ) -> Result<Value, ApiError> {
        let spec = TokenSpec::parse(request)?;
        let sa_rt = self
            .service_accounts()
            .map_err(|_| ApiError::not_found("serviceaccounts", "", name))?;
        let sa = self.store.get(&sa_rt, Some(namespace), name)?;
        let pod = match &spec.bound_pod {
            Some(bound) => Some(self.bound_pod(namespace, name, bound)?),
            None => None,
        };
        let now = self.now();
        // Cut to the bound, as upstream's --service-account-max-token-expiration.
        let max = i64::try_from(self.config.max_token_expiration.as_secs()).unwrap_or(i64::MAX);
        let seconds = spec.expiration_seconds.min(max);
        let exp = now.saturating_add(seconds);
        let claims = tokens::Claims {
            aud: spec.audiences.clone(),
            exp,
            iat: now,
            iss: ISSUER.into(),
            jti: new_uid(),
            kubernetes: tokens::KubernetesClaims {
                namespace: namespace.into(),
                serviceaccount: tokens::ObjectRef {
                    name: name.into(),
                    uid: sa.uid.clone(),
                },
                pod,
            },
            nbf: now,
            sub: format!("system:serviceaccount:{namespace}:{name}"),
        };
        let token = self.signer.sign(&claims);
        let expires = jiff::Timestamp::from_second(exp)
            .map(format_time)
            .unwrap_or_default();
        let mut spec_out = json!({"audiences": spec.audiences, "expirationSeconds": seconds});
        if let Some(bound) = request.pointer("/spec/boundObjectRef") {
            spec_out["boundObjectRef"] = bound.clone();
        }
        Ok(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": format_time(self.config.clock.now())},
            "spec": spec_out,
            "status": {"token": token, "expirationTimestamp": expires},
        }))
    }

    /// The Pod a token is to be bound to, checked as upstream checks it.
    fn bound_pod(
        &self,
        namespace: &str,
        sa_name: &str,
        bound: &BoundRef,
    ) -> Result<tokens::ObjectRef, ApiError> {
        let pods = self
            .store
            .registry()
            .storage_type(ResourceType::PODS)
            .ok_or_else(|| ApiError::not_found("pods", "", &bound.name))?;
        let pod = self.store.get(&pods, Some(namespace), &bound.name)?;
        if !bound.uid.is_empty() && bound.uid != pod.uid {
            return Err(ApiError::Conflict {
                resource: "pods".into(),
                group: String::new(),
                name: bound.name.clone(),
                message: format!(
                    "the UID in the bound object reference ({}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                    bound.uid, pod.uid
                ),
            });
        }
        let runs_as = pod
            .value()
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        if runs_as != sa_name {
            return Err(ApiError::BadRequest(format!(
                "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
            )));
        }
        Ok(tokens::ObjectRef {
            name: bound.name.clone(),
            uid: pod.uid.clone(),
        })
    }

    /// A SelfSubjectAccessReview: may `user` do what the review's spec describes?
    pub fn self_subject_access_review(
        &self,
        user: &UserInfo,
        review: &Value,
    ) -> Result<Value, ApiError> {
        let spec = review.get("spec").cloned().unwrap_or(Value::Null);
        let text = |v: &Value, key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let attributes = match (
            spec.get("resourceAttributes"),
            spec.get("nonResourceAttributes"),
        ) {
            (Some(r), None) => {
                let resource = text(r, "resource");
                let subresource = text(r, "subresource");
                let combined = if subresource.is_empty() {
                    resource
                } else {
                    format!("{resource}/{subresource}")
                };
                Attributes::resource(
                    &text(r, "verb"),
                    &text(r, "group"),
                    &combined,
                    &text(r, "namespace"),
                )
                .named(&text(r, "name"))
            }
            (None, Some(n)) => Attributes::non_resource(&text(n, "verb"), &text(n, "path")),
            _ => {
                return Err(ApiError::invalid(
                    "SelfSubjectAccessReview.authorization.k8s.io",
                    "authorization.k8s.io",
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
                        field: "spec.resourceAttributes".into(),
                    }],
                ));
            }
        };
        let mut status = json!({"allowed": false});
        match self.authorize(user, &attributes) {
            Decision::Allow => status["allowed"] = json!(true),
            Decision::Deny { reason } if !reason.is_empty() => status["reason"] = json!(reason),
            Decision::Deny { .. } => {}
        }
        Ok(json!({
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status,
        }))
    }
}

/// What a TokenRequest asks for, validated as upstream validates it.
struct TokenSpec {
    audiences: Vec<String>,
    expiration_seconds: i64,
    bound_pod: Option<BoundRef>,
}

struct BoundRef {
    name: String,
    uid: String,
}

impl TokenSpec {
    fn parse(request: &Value) -> Result<TokenSpec, ApiError> {
        let bad =
            |field: &str, why: &str| ApiError::BadRequest(format!("TokenRequest {field}: {why}"));
        if let Some(kind) = request.get("kind").and_then(Value::as_str)
            && kind != "TokenRequest"
        {
            return Err(bad("kind", &format!("must be TokenRequest, not {kind:?}")));
        }
        let spec = request.get("spec").unwrap_or(&Value::Null);
        if !(spec.is_object() || spec.is_null()) {
            return Err(bad("spec", "must be an object"));
        }
        let expiration_seconds = match spec.get("expirationSeconds") {
            None | Some(Value::Null) => DEFAULT_TOKEN_SECONDS,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| bad("spec.expirationSeconds", "must be an integer"))?,
        };
        let invalid = |why: &str| {
            ApiError::invalid(
                "TokenRequest.authentication.k8s.io",
                "authentication.k8s.io",
                "",
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {expiration_seconds}: {why}"),
                    field: "spec.expirationSeconds".into(),
                }],
            )
        };
        if expiration_seconds < MIN_TOKEN_SECONDS {
            return Err(invalid("may not specify a duration less than 10 minutes"));
        }
        if expiration_seconds > MAX_REQUESTABLE_TOKEN_SECONDS {
            return Err(invalid(
                "may not specify a duration larger than 2^32 seconds",
            ));
        }
        let audiences = match spec.get("audiences") {
            None | Some(Value::Null) => vec![API_AUDIENCE.to_string()],
            Some(Value::Array(items)) if items.is_empty() => vec![API_AUDIENCE.to_string()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|a| a.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("spec.audiences", "must be a list of strings"))?,
            Some(_) => return Err(bad("spec.audiences", "must be a list of strings")),
        };
        let bound_pod = match spec.get("boundObjectRef") {
            None | Some(Value::Null) => None,
            Some(r) => {
                let field = |key: &str| r.get(key).and_then(Value::as_str).unwrap_or_default();
                if field("kind") != "Pod" {
                    return Err(bad(
                        "spec.boundObjectRef.kind",
                        &format!(
                            "cannot bind a token to a {:?}: this server binds tokens to Pods only",
                            field("kind")
                        ),
                    ));
                }
                if field("name").is_empty() {
                    return Err(bad("spec.boundObjectRef.name", "required"));
                }
                Some(BoundRef {
                    name: field("name").into(),
                    uid: field("uid").into(),
                })
            }
        };
        Ok(TokenSpec {
            audiences,
            expiration_seconds,
            bound_pod,
        })
    }
}

/// The token of an `Authorization: Bearer TOKEN` header (scheme case-insensitive, as
/// upstream).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// Compares without an early exit, so timing tells nothing about the admin token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// upstream's denial (`responsewriters.Forbidden` with `forbiddenMessage`, wrapped by
/// `apierrors.NewForbidden`), with the authorizer's reason if it gave one.
pub fn forbidden(user: &UserInfo, a: &Attributes, reason: &str) -> ApiError {
    let user_name = &user.name;
    let verb = &a.verb;
    let mut text = if !a.resource_request {
        format!("User {user_name:?} cannot {verb} path {:?}", a.path)
    } else {
        let resource = a.combined_resource();
        let group = &a.api_group;
        if a.namespace.is_empty() {
            format!(
                "User {user_name:?} cannot {verb} resource {resource:?} in API group {group:?} at the cluster scope"
            )
        } else {
            format!(
                "User {user_name:?} cannot {verb} resource {resource:?} in API group {group:?} in the namespace {:?}",
                a.namespace
            )
        }
    };
    if !reason.is_empty() {
        text = format!("{text}: {reason}");
    }
    let qualified = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let message = if qualified.is_empty() {
        format!("forbidden: {text}")
    } else if a.name.is_empty() {
        format!("{qualified} is forbidden: {text}")
    } else {
        format!("{qualified} {:?} is forbidden: {text}", a.name)
    };
    ApiError::Denied {
        resource: a.resource.clone(),
        group: a.api_group.clone(),
        name: a.name.clone(),
        message,
    }
}

/// The RBAC objects as the store holds them now. Each decision lists the
/// ClusterRoleBindings and the RoleBindings of one namespace and reads the roles
/// they name: bounded by what the store holds, nothing cached.
struct StoreSource<'a>(&'a Store);

impl StoreSource<'_> {
    fn objects(&self, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(rt) = self.0.registry().find(rbac::RBAC_GROUP, "v1", plural) else {
            return Vec::new();
        };
        match self.0.list(&rt, namespace, &ListOptions::default()) {
            Ok(page) => page.items.iter().map(|o| o.value()).collect(),
            Err(e) => {
                tracing::warn!(error = %e, plural, "sandbox: cannot read RBAC objects");
                Vec::new()
            }
        }
    }

    fn bindings(&self, plural: &str, namespace: Option<&str>) -> Vec<rbac::Binding> {
        self.objects(plural, namespace)
            .iter()
            .filter_map(|v| match rbac::Binding::from_json(v) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::warn!(error = %e, plural, "sandbox: unreadable binding ignored");
                    None
                }
            })
            .collect()
    }

    fn rules(
        &self,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Vec<rbac::PolicyRule>> {
        let rt = self.0.registry().find(rbac::RBAC_GROUP, "v1", plural)?;
        let obj = self.0.get(&rt, namespace, name).ok()?;
        match rbac::rules_of(&obj.value()) {
            Ok(rules) => Some(rules),
            Err(e) => {
                tracing::warn!(error = %e, plural, name, "sandbox: unreadable role ignored");
                Some(Vec::new())
            }
        }
    }
}

impl RbacSource for StoreSource<'_> {
    fn cluster_role_bindings(&self) -> Vec<rbac::Binding> {
        self.bindings("clusterrolebindings", None)
    }

    fn role_bindings(&self, namespace: &str) -> Vec<rbac::Binding> {
        self.bindings("rolebindings", Some(namespace))
    }

    fn cluster_role(&self, name: &str) -> Option<Vec<rbac::PolicyRule>> {
        self.rules("clusterroles", None, name)
    }

    fn role(&self, namespace: &str, name: &str) -> Option<Vec<rbac::PolicyRule>> {
        self.rules("roles", Some(namespace), name)
    }
}
