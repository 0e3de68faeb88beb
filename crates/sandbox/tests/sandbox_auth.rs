//! The sandbox with auth on: HTTPS with its own CA, the admin token of the written
//! kubeconfig, ServiceAccount tokens from the TokenRequest API (`kubectl create
//! token`), 401 for tokens that are not (or no longer) valid, and RBAC's 403 with
//! upstream's message until a RoleBinding allows the request.

mod kubectl_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kubectl_common::{Cluster, kubectl_available};
use podwarden_sandbox::api::{
    AuthConfig, Clock, Sandbox, SandboxConfig, SandboxError, SandboxHandle,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

/// A clock tests move by hand, for token lifetimes.
#[derive(Debug)]
struct HandClock(Mutex<jiff::Timestamp>);

impl HandClock {
    fn advance(&self, seconds: i64) {
        let mut now = self.0.lock().unwrap();
        *now = now
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .unwrap();
    }
}

impl Clock for HandClock {
    fn now(&self) -> jiff::Timestamp {
        *self.0.lock().unwrap()
    }
}

fn auth_config() -> SandboxConfig {
    SandboxConfig {
        auth: Some(AuthConfig::default()),
        ..SandboxConfig::default()
    }
}

async fn start_with_clock() -> (SandboxHandle, Arc<HandClock>) {
    let clock = Arc::new(HandClock(Mutex::new(jiff::Timestamp::now())));
    let config = SandboxConfig {
        auth: Some(AuthConfig {
            clock: clock.clone(),
            max_token_expiration: Duration::from_secs(2 * 3600),
        }),
        ..SandboxConfig::default()
    };
    let handle = Sandbox::start(config).await.expect("sandbox starts");
    (handle, clock)
}

/// Creates namespace `ns` and ServiceAccount `ns/name` as admin; returns the
/// ServiceAccount's uid.
async fn service_account(handle: &SandboxHandle, ns: &str, name: &str) -> String {
    let client = handle.client().expect("admin client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces
        .get_opt(ns)
        .await
        .expect("get namespace")
        .is_none()
    {
        let object = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .expect("namespace created");
    }
    let sas: Api<ServiceAccount> = Api::namespaced(client, ns);
    let object = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    let sa = sas
        .create(&PostParams::default(), &object)
        .await
        .expect("service account created");
    sa.metadata.uid.expect("a uid")
}

/// The code, reason and message of a failed call.
fn failure<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason, status.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Lists pods in `ns` with `client`: `Ok` or the failure.
async fn list_pods(client: &kube::Client, ns: &str) -> Result<usize, (u16, String, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    match pods.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items.len()),
        Err(e) => Err(failure::<()>(Err(e))),
    }
}

fn unauthorized() -> Result<usize, (u16, String, String)> {
    Err((401, "Unauthorized".into(), "Unauthorized".into()))
}

/// A Role allowing `verbs` on pods in `ns`, bound to ServiceAccount `ns/sa`.
async fn grant_pods(handle: &SandboxHandle, ns: &str, sa: &str, verbs: &[&str]) {
    let client = handle.client().expect("admin client");
    let create = |path: String, body: Value| {
        let client = client.clone();
        async move {
            let req = http::Request::post(path)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .unwrap();
            client.request::<Value>(req).await.expect("created")
        }
    };
    let prefix = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}");
    create(
        format!("{prefix}/roles"),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "pods"},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}]}),
    )
    .await;
    create(
        format!("{prefix}/rolebindings"),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "pods"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods"},
               "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]}),
    )
    .await;
}

#[tokio::test]
async fn the_admin_client_works_over_https_and_plain_http_is_refused() {
    let handle = Sandbox::start(auth_config()).await.expect("sandbox starts");
    assert!(
        handle.url().starts_with("https://127.0.0.1:"),
        "{}",
        handle.url()
    );
    let kubeconfig = handle.kubeconfig();
    assert!(
        kubeconfig.contains("certificate-authority-data: "),
        "{kubeconfig}"
    );
    assert!(
        kubeconfig.contains(&format!("token: {}", handle.admin_token().unwrap())),
        "{kubeconfig}"
    );
    let namespaces: Api<Namespace> = Api::all(handle.client().expect("admin client"));
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("admin lists namespaces")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"default".to_string()), "{names:?}");

    // Plain HTTP to the HTTPS port gets no API answer.
    let mut plain = handle.kube_config();
    plain.cluster_url = format!("http://{}", handle.addr()).parse().unwrap();
    plain.root_cert = None;
    let plain: Api<Namespace> = Api::all(kube::Client::try_from(plain).unwrap());
    assert!(plain.list(&ListParams::default()).await.is_err());

    // A client that does not trust the sandbox's CA refuses the server.
    let mut untrusting = handle.kube_config();
    untrusting.root_cert = Some(vec![]);
    if let Ok(client) = kube::Client::try_from(untrusting) {
        let api: Api<Namespace> = Api::all(client);
        assert!(api.list(&ListParams::default()).await.is_err());
    }
}

#[tokio::test]
async fn missing_unknown_forged_and_foreign_audience_tokens_are_401() {
    let handle = Sandbox::start(auth_config()).await.expect("sandbox starts");
    service_account(&handle, "demo", "app").await;

    let mut anonymous = handle.kube_config();
    anonymous.auth_info.token = None;
    let anonymous = kube::Client::try_from(anonymous).unwrap();
    assert_eq!(list_pods(&anonymous, "demo").await, unauthorized());
    // Even the version and the probes want a token (no anonymous requests).
    let version = anonymous.apiserver_version().await;
    assert_eq!(failure(version).0, 401);

    let unknown = handle.client_for_token("not-a-token").unwrap();
    assert_eq!(list_pods(&unknown, "demo").await, unauthorized());

    // Another sandbox's token: same claims, another key.
    let other = Sandbox::start(auth_config()).await.expect("sandbox starts");
    service_account(&other, "demo", "app").await;
    let foreign = other.create_token("demo", "app", None).unwrap();
    let client = handle.client_for_token(&foreign).unwrap();
    assert_eq!(list_pods(&client, "demo").await, unauthorized());

    // A token for another audience (`kubectl create token --audience vault`).
    let admin = handle.client().unwrap();
    let req = http::Request::post("/api/v1/namespaces/demo/serviceaccounts/app/token")
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(
                &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                        "spec": {"audiences": ["vault"]}}),
            )
            .unwrap(),
        )
        .unwrap();
    let answer: Value = admin.request(req).await.expect("token minted");
    assert_eq!(answer["spec"]["audiences"], json!(["vault"]));
    let vault = answer["status"]["token"].as_str().unwrap();
    let client = handle.client_for_token(vault).unwrap();
    assert_eq!(list_pods(&client, "demo").await, unauthorized());
}

#[tokio::test]
async fn a_token_expires_and_dies_with_its_service_account() {
    let (handle, clock) = start_with_clock().await;
    service_account(&handle, "demo", "app").await;
    grant_pods(&handle, "demo", "app", &["list"]).await;

    // Expiry: 10 minutes is the shortest lifetime; valid until then, 401 after.
    let token = handle
        .create_token("demo", "app", Some(Duration::from_secs(600)))
        .unwrap();
    let client = handle.client_for_token(&token).unwrap();
    assert_eq!(list_pods(&client, "demo").await, Ok(0));
    clock.advance(599);
    assert_eq!(list_pods(&client, "demo").await, Ok(0));
    clock.advance(1);
    assert_eq!(list_pods(&client, "demo").await, unauthorized());

    // Deletion: the token stops working with its ServiceAccount, and a new
    // ServiceAccount of the same name (another uid) does not revive it.
    let token = handle.create_token("demo", "app", None).unwrap();
    let client = handle.client_for_token(&token).unwrap();
    assert_eq!(list_pods(&client, "demo").await, Ok(0));
    let sas: Api<ServiceAccount> = Api::namespaced(handle.client().unwrap(), "demo");
    sas.delete("app", &DeleteParams::default())
        .await
        .expect("deleted");
    assert_eq!(list_pods(&client, "demo").await, unauthorized());
    service_account(&handle, "demo", "app").await;
    assert_eq!(list_pods(&client, "demo").await, unauthorized());
    let fresh = handle.create_token("demo", "app", None).unwrap();
    let client = handle.client_for_token(&fresh).unwrap();
    assert_eq!(list_pods(&client, "demo").await, Ok(0));
}

#[tokio::test]
async fn token_requests_are_validated_defaulted_and_bounded() {
    let (handle, clock) = start_with_clock().await;
    service_account(&handle, "demo", "app").await;
    let admin = handle.client().unwrap();
    let request = |sa: &str, spec: Value| {
        http::Request::post(format!(
            "/api/v1/namespaces/demo/serviceaccounts/{sa}/token"
        ))
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&json!({"apiVersion": "authentication.k8s.io/v1",
                                            "kind": "TokenRequest", "spec": spec}))
            .unwrap(),
        )
        .unwrap()
    };
    let now = clock.now().as_second();

    let answer: Value = admin.request(request("app", json!({}))).await.unwrap();
    assert_eq!(answer["kind"], "TokenRequest");
    assert_eq!(answer["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        answer["spec"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let expires: jiff::Timestamp = answer["status"]["expirationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(expires.as_second(), now + 3600);

    // Longer than the configured bound (2h here): cut to it.
    let answer: Value = admin
        .request(request("app", json!({"expirationSeconds": 86400})))
        .await
        .unwrap();
    assert_eq!(answer["spec"]["expirationSeconds"], 7200);

    let (code, reason, message) = failure(
        admin
            .request::<Value>(request("app", json!({"expirationSeconds": 10})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        message,
        "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 10: may not specify a duration less than 10 minutes"
    );
    let (code, _, message) = failure(
        admin
            .request::<Value>(request("app", json!({"expirationSeconds": "soon"})))
            .await,
    );
    assert_eq!(code, 400);
    assert!(message.contains("spec.expirationSeconds"), "{message}");

    let (code, _, message) = failure(admin.request::<Value>(request("nobody", json!({}))).await);
    assert_eq!(
        (code, message.as_str()),
        (404, "serviceaccounts \"nobody\" not found")
    );

    // The handle mints the same way.
    match handle.create_token("demo", "app", Some(Duration::from_secs(60))) {
        Err(SandboxError::Token(e)) => assert_eq!(e.code(), 422),
        other => panic!("a 60s token must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn rbac_denies_with_upstreams_message_until_bound() {
    let handle = Sandbox::start(auth_config()).await.expect("sandbox starts");
    service_account(&handle, "demo", "podwarden").await;
    let token = handle.create_token("demo", "podwarden", None).unwrap();
    let client = handle.client_for_token(&token).unwrap();
    let user = "system:serviceaccount:demo:podwarden";

    let denied = |verb: &str, scope: &str| {
        Err((
            403,
            "Forbidden".to_string(),
            format!(
                "pods is forbidden: User \"{user}\" cannot {verb} resource \"pods\" in API group \"\" {scope}"
            ),
        ))
    };
    assert_eq!(
        list_pods(&client, "demo").await,
        denied("list", "in the namespace \"demo\"")
    );
    let everywhere: Api<Pod> = Api::all(client.clone());
    let (code, _, message) = failure(everywhere.list(&ListParams::default()).await);
    assert_eq!(
        (code, message),
        (
            403,
            format!(
                "pods is forbidden: User \"{user}\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
            )
        )
    );

    grant_pods(&handle, "demo", "podwarden", &["get", "list", "watch"]).await;
    assert_eq!(list_pods(&client, "demo").await, Ok(0));
    // Only in the binding's namespace; only the Role's verbs.
    assert_eq!(
        list_pods(&client, "default").await,
        denied("list", "in the namespace \"default\"")
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "demo");
    let (code, reason, message) = failure(pods.delete("web", &DeleteParams::default()).await);
    assert_eq!(
        (code, reason.as_str(), message),
        (
            403,
            "Forbidden",
            format!(
                "pods \"web\" is forbidden: User \"{user}\" cannot delete resource \"pods\" in API group \"\" in the namespace \"demo\""
            )
        )
    );
    // A ServiceAccount may not reach the sandbox's admin endpoints.
    let req = http::Request::get("/sandbox/v1/faults")
        .body(vec![])
        .unwrap();
    let (code, _, message) = failure(client.request::<Value>(req).await);
    assert_eq!(
        (code, message),
        (
            403,
            format!("forbidden: User \"{user}\" cannot get path \"/sandbox/v1/faults\"")
        )
    );
    let req = http::Request::get("/sandbox/v1/faults")
        .body(vec![])
        .unwrap();
    let admin = handle.client().unwrap();
    admin
        .request::<Value>(req)
        .await
        .expect("admin reads faults");
    // Every refusal is noted, in order, with its message.
    let refusals = handle.auth().expect("auth on").refusals();
    assert_eq!(refusals.total, 5, "{:?}", refusals.recent);
    assert!(refusals.recent[0].contains("cannot list resource \"pods\""));
    assert!(refusals.recent[4].contains("cannot get path \"/sandbox/v1/faults\""));
}

#[tokio::test]
async fn a_restart_keeps_the_certificate_and_the_tokens() {
    let handle = Sandbox::start(auth_config()).await.expect("sandbox starts");
    service_account(&handle, "demo", "app").await;
    grant_pods(&handle, "demo", "app", &["list"]).await;
    let token = handle.create_token("demo", "app", None).unwrap();
    let ca = handle.ca_pem().unwrap().to_string();
    let sa_client = handle.client_for_token(&token).unwrap();
    let admin = handle.client().unwrap();
    assert_eq!(list_pods(&sa_client, "demo").await, Ok(0));

    handle.restart();
    assert_eq!(handle.ca_pem(), Some(ca.as_str()));
    // The clients made before the restart reconnect (their first call may meet a
    // dropped connection) and trust the same certificate with the same tokens.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let sa = list_pods(&sa_client, "demo").await;
        let ad = list_pods(&admin, "demo").await;
        if sa == Ok(0) && ad == Ok(0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after the restart: {sa:?} {ad:?}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn with_auth_off_there_is_no_token_api() {
    let handle = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    assert!(handle.url().starts_with("http://"));
    assert!(handle.admin_token().is_none());
    service_account(&handle, "demo", "app").await;
    assert!(matches!(
        handle.create_token("demo", "app", None),
        Err(SandboxError::AuthOff)
    ));
    let req = http::Request::post("/api/v1/namespaces/demo/serviceaccounts/app/token")
        .header("content-type", "application/json")
        .body(b"{}".to_vec())
        .unwrap();
    assert_eq!(
        failure(handle.client().unwrap().request::<Value>(req).await).0,
        404
    );
    // Any token, or none, is let through.
    let client = handle.client_for_token("anything").unwrap();
    assert_eq!(list_pods(&client, "demo").await, Ok(0));
}

#[tokio::test]
async fn kubectl_create_token_then_forbidden_until_a_role_binding() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start_with("auth", auth_config()).await;
    let kubeconfig = std::fs::read_to_string(cluster.dir.join("kubeconfig")).unwrap();
    assert!(
        kubeconfig.contains("server: https://127.0.0.1:"),
        "{kubeconfig}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cluster.dir.join("kubeconfig"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "a kubeconfig with a token is private");
    }

    let namespaces = cluster.ok(&["get", "ns"]).await;
    assert!(namespaces.contains("default"), "{namespaces}");
    cluster.ok(&["create", "namespace", "demo"]).await;
    cluster
        .ok(&["create", "serviceaccount", "podwarden", "-n", "demo"])
        .await;
    let token = cluster
        .ok(&[
            "create",
            "token",
            "podwarden",
            "-n",
            "demo",
            "--duration",
            "20m",
        ])
        .await;
    let token = token.trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    // The protobuf TokenRequest's --duration reached the server.
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1200
    );
    assert_eq!(claims["sub"], "system:serviceaccount:demo:podwarden");
    let as_sa = |args: &[&str]| {
        let mut all = vec!["--token", token.as_str()];
        all.extend_from_slice(args);
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let strs = |v: &[String]| v.iter().map(String::as_str).collect::<Vec<_>>().join(" ");

    let args = as_sa(&["get", "pods", "-n", "demo"]);
    let stderr = cluster
        .fails(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert!(
        stderr.contains(
            "Error from server (Forbidden): pods is forbidden: User \"system:serviceaccount:demo:podwarden\" cannot list resource \"pods\" in API group \"\" in the namespace \"demo\""
        ),
        "{}: {stderr}",
        strs(&args)
    );
    let args = as_sa(&["auth", "can-i", "list", "pods", "-n", "demo"]);
    let out = cluster
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    cluster
        .ok(&[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list,watch",
            "--resource=pods",
            "-n",
            "demo",
        ])
        .await;
    cluster
        .ok(&[
            "create",
            "rolebinding",
            "podwarden-reads-pods",
            "--role=pod-reader",
            "--serviceaccount=demo:podwarden",
            "-n",
            "demo",
        ])
        .await;

    let args = as_sa(&["get", "pods", "-n", "demo"]);
    let out = cluster
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        strs(&args),
        String::from_utf8_lossy(&out.stderr)
    );
    let args = as_sa(&["auth", "can-i", "list", "pods", "-n", "demo"]);
    let allowed = cluster
        .ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert_eq!(allowed.trim(), "yes");
    // Still not a verb outside the Role, nor another namespace.
    let args = as_sa(&["delete", "pod", "web", "-n", "demo"]);
    let stderr = cluster
        .fails(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert!(
        stderr.contains(
            "pods \"web\" is forbidden: User \"system:serviceaccount:demo:podwarden\" cannot delete resource \"pods\" in API group \"\" in the namespace \"demo\""
        ),
        "{stderr}"
    );
    let args = as_sa(&["get", "pods", "-n", "default"]);
    let stderr = cluster
        .fails(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert!(stderr.contains("in the namespace \"default\""), "{stderr}");

    // A token kubectl cannot use: 401, as kubectl reports it.
    let stderr = cluster
        .fails(&["--token", "bogus", "get", "pods", "-n", "demo"])
        .await;
    assert!(
        stderr.contains("You must be logged in to the server") || stderr.contains("Unauthorized"),
        "{stderr}"
    );
}
