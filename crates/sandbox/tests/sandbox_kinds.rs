//! The kinds a Helm chart installs, through the real kubectl: ServiceAccounts,
//! ConfigMaps, Secrets, Services (cluster IPs), Deployments (defaults, the selector
//! check), NetworkPolicies and the four RBAC kinds; their tables as upstream's printers
//! make them, server-side apply, client-side apply updates, delete. Skipped with a
//! message when kubectl is not installed (CI requires it).

use podwarden_sandbox::api::ResourceType;

mod kubectl_common;
use kubectl_common::{Cluster, header, kubectl_available, row};

const SERVICE_ACCOUNT: &str = "
apiVersion: v1
kind: ServiceAccount
metadata: {name: auditor, namespace: default}
secrets: [{name: auditor-token}]
";

const CONFIG_MAP: &str = "
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: default}
data: {a.json: '{}', b: two}
binaryData: {c: AAEC}
";

const SECRET: &str = "
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: default}
stringData: {user: admin}
data: {password: c2VjcmV0}
";

const SERVICE: &str = "
apiVersion: v1
kind: Service
metadata: {name: metrics, namespace: default}
spec:
  selector: {app: podwarden, tier: audit}
  ports: [{name: http-metrics, port: 9090, targetPort: http}]
";

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: podwarden, namespace: default}
spec:
  replicas: 2
  selector:
    matchLabels: {app: podwarden}
  template:
    metadata:
      labels: {app: podwarden, tier: audit}
    spec:
      containers:
        - name: podwarden
          image: ghcr.io/podwarden/podwarden:0.1.0
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {port: http}}
        - name: sidecar
          image: busybox
";

const NETWORK_POLICY: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: podwarden, namespace: default}
spec:
  podSelector: {matchLabels: {app: podwarden}}
  egress: [{ports: [{port: 53, protocol: UDP}, {port: 443}]}]
";

const ROLE: &str = "
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: leader-election, namespace: default}
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, create, update]
";

const CLUSTER_ROLE: &str = "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: podwarden}
rules:
  - apiGroups: ['']
    resources: [pods]
    verbs: [get, list, watch]
  - nonResourceURLs: [/metrics]
    verbs: [get]
";

const ROLE_BINDING: &str = "
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: leader-election, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leader-election}
subjects: [{kind: ServiceAccount, name: auditor}]
";

const CLUSTER_ROLE_BINDING: &str = "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: podwarden}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: podwarden}
subjects:
  - {kind: ServiceAccount, name: auditor, namespace: default}
  - {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
  - {kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}
";

/// One kind: its manifest, what `kubectl get` calls it, the table and wide table
/// headers, and the cells (after NAME) of its row up to AGE, or of its wide row
/// after AGE.
struct KindCase {
    name: &'static str,
    yaml: &'static str,
    resource: &'static str,
    object: &'static str,
    columns: &'static [&'static str],
    wide: &'static [&'static str],
    cells: &'static [&'static str],
    wide_cells: &'static [&'static str],
    /// What kubectl says of a second apply of the same manifest.
    reapplied: &'static str,
}

const CASES: &[KindCase] = &[
    KindCase {
        name: "service account",
        yaml: SERVICE_ACCOUNT,
        resource: "sa",
        object: "auditor",
        columns: &["NAME", "SECRETS", "AGE"],
        wide: &["NAME", "SECRETS", "AGE"],
        cells: &["1"],
        wide_cells: &[],
        reapplied: "unchanged",
    },
    KindCase {
        name: "config map counts data and binaryData",
        yaml: CONFIG_MAP,
        resource: "cm",
        object: "settings",
        columns: &["NAME", "DATA", "AGE"],
        wide: &["NAME", "DATA", "AGE"],
        cells: &["3"],
        wide_cells: &[],
        reapplied: "unchanged",
    },
    KindCase {
        name: "secret with stringData moved into data",
        yaml: SECRET,
        resource: "secret",
        object: "creds",
        columns: &["NAME", "TYPE", "DATA", "AGE"],
        wide: &["NAME", "TYPE", "DATA", "AGE"],
        cells: &["Opaque", "2"],
        wide_cells: &[],
        // As with a real server: the live Secret has no stringData, so kubectl's
        // three-way patch sends it again (and the server finds nothing to change).
        reapplied: "configured",
    },
    KindCase {
        name: "service",
        yaml: SERVICE,
        resource: "svc",
        object: "metrics",
        columns: &[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        wide: &[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR",
        ],
        // The first dynamic address of 10.96.0.0/12 (the first 256 are for Services
        // that ask for one).
        cells: &["ClusterIP", "10.96.1.0", "<none>", "9090/TCP"],
        wide_cells: &["app=podwarden,tier=audit"],
        reapplied: "unchanged",
    },
    KindCase {
        name: "deployment: nothing runs its pods, READY 0/2",
        yaml: DEPLOYMENT,
        resource: "deploy",
        object: "podwarden",
        columns: &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        wide: &[
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
        ],
        cells: &["0/2", "0", "0"],
        wide_cells: &[
            "podwarden,sidecar",
            "ghcr.io/podwarden/podwarden:0.1.0,busybox",
            "app=podwarden",
        ],
        reapplied: "unchanged",
    },
    KindCase {
        name: "network policy",
        yaml: NETWORK_POLICY,
        resource: "netpol",
        object: "podwarden",
        columns: &["NAME", "POD-SELECTOR", "AGE"],
        wide: &["NAME", "POD-SELECTOR", "AGE"],
        cells: &["app=podwarden"],
        wide_cells: &[],
        // As with a real server: the egress rules are an atomic list and the live one
        // has the defaulted protocol of port 443, so kubectl's patch sends the list
        // again (and the server, defaulting it, finds nothing to change).
        reapplied: "configured",
    },
    KindCase {
        name: "role: the default table",
        yaml: ROLE,
        resource: "role",
        object: "leader-election",
        columns: &["NAME", "CREATED", "AT"],
        wide: &["NAME", "CREATED", "AT"],
        cells: &[],
        wide_cells: &[],
        reapplied: "unchanged",
    },
    KindCase {
        name: "cluster role: the default table",
        yaml: CLUSTER_ROLE,
        resource: "clusterrole",
        object: "podwarden",
        columns: &["NAME", "CREATED", "AT"],
        wide: &["NAME", "CREATED", "AT"],
        cells: &[],
        wide_cells: &[],
        reapplied: "unchanged",
    },
    KindCase {
        name: "role binding",
        yaml: ROLE_BINDING,
        resource: "rolebinding",
        object: "leader-election",
        columns: &["NAME", "ROLE", "AGE"],
        wide: &["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
        cells: &["Role/leader-election"],
        // No users or groups: empty cells; the subject without a namespace by name.
        wide_cells: &["auditor"],
        reapplied: "unchanged",
    },
    KindCase {
        name: "cluster role binding",
        yaml: CLUSTER_ROLE_BINDING,
        resource: "clusterrolebinding",
        object: "podwarden",
        columns: &["NAME", "ROLE", "AGE"],
        wide: &["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
        cells: &["ClusterRole/podwarden"],
        wide_cells: &["alice", "devs", "default:auditor"],
        reapplied: "unchanged",
    },
];

/// The cells of a row between NAME and AGE (`before_age`), or after AGE.
fn cells_around_age<'a>(cells: &[&'a str], columns: &[String], before_age: bool) -> Vec<&'a str> {
    let age = columns.iter().position(|c| c == "AGE");
    match (age, before_age) {
        (Some(a), true) => cells[1..a].to_vec(),
        (Some(a), false) => cells[a + 1..].to_vec(),
        // The default table (NAME, CREATED AT): nothing besides the name to compare.
        (None, _) => vec![],
    }
}

#[tokio::test]
async fn each_kind_applies_prints_and_deletes_as_upstream() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("kinds").await;
    for case in CASES {
        let file = c.file(case.object, case.yaml);
        let out = c.ok(&["apply", "-f", &file]).await;
        assert!(out.contains(" created"), "{}: {out}", case.name);
        let table = c.ok(&["get", case.resource, case.object]).await;
        let columns = header(&table);
        assert_eq!(columns, case.columns, "{}: {table}", case.name);
        let r = row(&table, case.object);
        assert_eq!(
            cells_around_age(&r, &columns, true),
            case.cells,
            "{}: {table}",
            case.name
        );
        let wide = c
            .ok(&["get", case.resource, case.object, "-o", "wide"])
            .await;
        let wide_columns = header(&wide);
        assert_eq!(wide_columns, case.wide, "{}: {wide}", case.name);
        let r = row(&wide, case.object);
        assert_eq!(
            cells_around_age(&r, &wide_columns, false),
            case.wide_cells,
            "{}: {wide}",
            case.name
        );
        // The same manifest again: nothing written.
        let rv = [
            "get",
            case.resource,
            case.object,
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ];
        let before = c.ok(&rv).await;
        let out = c.ok(&["apply", "-f", &file]).await;
        assert!(out.contains(case.reapplied), "{}: {out}", case.name);
        assert_eq!(c.ok(&rv).await, before, "{}", case.name);
    }
    // The kinds in `kubectl get all`: services and deployments (and pods).
    let all = c.ok(&["get", "all"]).await;
    assert!(
        all.contains("service/metrics") && all.contains("deployment.apps/podwarden"),
        "{all}"
    );
    for case in CASES {
        let out = c.ok(&["delete", case.resource, case.object]).await;
        assert!(out.contains("deleted"), "{}: {out}", case.name);
        let err = c.fails(&["get", case.resource, case.object]).await;
        assert!(err.contains("NotFound"), "{}: {err}", case.name);
    }
}

/// The resourceVersions of every case's object, in case order.
async fn resource_versions(c: &Cluster) -> String {
    let mut args = vec!["get".to_string()];
    args.extend(CASES.iter().map(|k| format!("{}/{}", k.resource, k.object)));
    args.extend([
        "-o".into(),
        "jsonpath={.items[*].metadata.resourceVersion}".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    c.ok(&args).await
}

#[tokio::test]
async fn server_side_apply_twice_changes_nothing() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("kinds-ssa").await;
    let all: Vec<&str> = CASES.iter().map(|k| k.yaml).collect();
    let file = c.file("all", &all.join("\n---\n"));
    let out = c.ok(&["apply", "--server-side", "-f", &file]).await;
    assert_eq!(
        out.matches("serverside-applied").count(),
        CASES.len(),
        "{out}"
    );
    let before = resource_versions(&c).await;
    assert_eq!(before.split_whitespace().count(), CASES.len(), "{before}");
    c.ok(&["apply", "--server-side", "-f", &file]).await;
    let after = resource_versions(&c).await;
    assert_eq!(before, after, "a second apply of the same manifests wrote");
    let managers = c
        .ok(&[
            "get",
            "deploy",
            "podwarden",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
        .await;
    assert_eq!(managers, "kubectl", "{managers}");
}

#[tokio::test]
async fn services_get_unique_cluster_ips_they_keep() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("kinds-svc").await;
    let two = format!("{SERVICE}\n---\n{}", SERVICE.replace("metrics", "other"));
    c.ok(&["apply", "-f", &c.file("two", &two)]).await;
    let ip = |name: &'static str| {
        let c = &c;
        async move {
            c.ok(&[
                "get",
                "svc",
                name,
                "-o",
                "jsonpath={.spec.clusterIP} {.spec.clusterIPs[0]}",
            ])
            .await
        }
    };
    let (a, b) = (ip("metrics").await, ip("other").await);
    let a: Vec<&str> = a.split(' ').collect();
    let b: Vec<&str> = b.split(' ').collect();
    assert_eq!(a[0], a[1], "clusterIPs[0] is clusterIP");
    assert_ne!(a[0], b[0], "two services, two IPs");
    for ip in [a[0], b[0]] {
        let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
        assert!(
            octets[0] == 10 && (96..112).contains(&octets[1]),
            "{ip} is in 10.96.0.0/12"
        );
    }
    let table = c.ok(&["get", "svc"]).await;
    assert_eq!(
        row(&table, "metrics")[1..5],
        ["ClusterIP", a[0], "<none>", "9090/TCP"],
        "{table}"
    );
    // Defaults as upstream's.
    let defaults = c
        .ok(&[
            "get",
            "svc",
            "metrics",
            "-o",
            "jsonpath={.spec.sessionAffinity} {.spec.ports[0].protocol} {.spec.internalTrafficPolicy} {.spec.ipFamilies[0]}",
        ])
        .await;
    assert_eq!(defaults, "None TCP Cluster IPv4");

    // A client-side apply that changes the port: the ports list merges by `port`,
    // so the old port goes and the IP stays.
    let moved = SERVICE.replace("port: 9090, targetPort: http", "port: 9091");
    c.ok(&["apply", "-f", &c.file("moved", &moved)]).await;
    let table = c.ok(&["get", "svc", "metrics"]).await;
    assert_eq!(
        row(&table, "metrics")[2..5],
        [a[0], "<none>", "9091/TCP"],
        "{table}"
    );
    let target = c
        .ok(&[
            "get",
            "svc",
            "metrics",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}",
        ])
        .await;
    assert_eq!(target, "9091", "targetPort defaults to the port");

    let cases = [
        (
            "an IP another service holds",
            format!("clusterIP: {}", b[0]),
            "provided IP is already allocated",
        ),
        (
            "an IP outside the range",
            "clusterIP: 192.168.0.1".to_string(),
            "The range of valid IPs is 10.96.0.0/12",
        ),
        (
            "not an IP",
            "clusterIP: ten".to_string(),
            "spec.clusterIPs[0]",
        ),
    ];
    for (case, spec_line, want) in cases {
        let yaml = SERVICE
            .replace("name: metrics", "name: asked")
            .replace("spec:\n", &format!("spec:\n  {spec_line}\n"));
        let err = c.fails(&["apply", "-f", &c.file("asked", &yaml)]).await;
        assert!(err.contains(want), "{case}: {err}");
    }
    // An IP of the range nobody holds is granted; changing it later is refused.
    let asked = SERVICE
        .replace("name: metrics", "name: asked")
        .replace("spec:\n", "spec:\n  clusterIP: 10.96.0.10\n");
    c.ok(&["apply", "-f", &c.file("asked", &asked)]).await;
    assert_eq!(
        row(&c.ok(&["get", "svc", "asked"]).await, "asked")[2],
        "10.96.0.10"
    );
    let err = c
        .fails(&[
            "apply",
            "-f",
            &c.file("asked2", &asked.replace("10.96.0.10", "10.96.0.11")),
        ])
        .await;
    assert!(err.contains("may not change once set"), "{err}");

    // Headless: no IP allocated, None shown; no ports needed.
    let headless = "apiVersion: v1\nkind: Service\nmetadata: {name: peers}\nspec: {clusterIP: None, selector: {app: p}}\n";
    c.ok(&["apply", "-f", &c.file("headless", headless)]).await;
    let table = c.ok(&["get", "svc", "peers"]).await;
    assert_eq!(
        row(&table, "peers")[1..5],
        ["ClusterIP", "None", "<none>", "<none>"],
        "{table}"
    );
    // A ClusterIP service without ports is refused, naming the field.
    let err = c
        .fails(&[
            "apply",
            "-f",
            &c.file(
                "portless",
                &headless
                    .replace("clusterIP: None, ", "")
                    .replace("peers", "portless"),
            ),
        ])
        .await;
    assert!(err.contains("spec.ports: Required value"), "{err}");
}

#[tokio::test]
async fn deployments_are_defaulted_and_checked() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("kinds-deploy").await;
    c.ok(&["apply", "-f", &c.file("d", DEPLOYMENT)]).await;
    let cases = [
        ("strategy", "{.spec.strategy.type}", "RollingUpdate"),
        (
            "rolling update",
            "{.spec.strategy.rollingUpdate.maxSurge} {.spec.strategy.rollingUpdate.maxUnavailable}",
            "25% 25%",
        ),
        ("history", "{.spec.revisionHistoryLimit}", "10"),
        ("deadline", "{.spec.progressDeadlineSeconds}", "600"),
        (
            "pod template",
            "{.spec.template.spec.restartPolicy} {.spec.template.spec.dnsPolicy} {.spec.template.spec.terminationGracePeriodSeconds}",
            "Always ClusterFirst 30",
        ),
        (
            "pull policy by tag",
            "{.spec.template.spec.containers[*].imagePullPolicy}",
            "IfNotPresent Always",
        ),
        (
            "container port",
            "{.spec.template.spec.containers[0].ports[0].protocol}",
            "TCP",
        ),
        (
            "probe",
            "{.spec.template.spec.containers[0].readinessProbe.periodSeconds} {.spec.template.spec.containers[0].readinessProbe.httpGet.scheme}",
            "10 HTTP",
        ),
        ("generation", "{.metadata.generation}", "1"),
    ];
    for (case, path, want) in cases {
        let got = c
            .ok(&[
                "get",
                "deploy",
                "podwarden",
                "-o",
                &format!("jsonpath={path}"),
            ])
            .await;
        assert_eq!(got, want, "{case}");
    }
    // A typed client reads it back (every member in its place).
    let client = c.handle.client().unwrap();
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client, "default");
    let d = deployments.get("podwarden").await.unwrap();
    assert_eq!(d.spec.replicas, Some(2));

    let refused = [
        (
            "selector does not match the template",
            DEPLOYMENT.replace("matchLabels: {app: podwarden}", "matchLabels: {app: other}"),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"podwarden\", \"tier\":\"audit\"}: `selector` does not match template `labels`",
        ),
        (
            "no selector",
            DEPLOYMENT.replace("  selector:\n    matchLabels: {app: podwarden}\n", ""),
            "spec.selector: Required value",
        ),
        (
            "restart policy",
            DEPLOYMENT.replace(
                "      containers:",
                "      restartPolicy: Never\n      containers:",
            ),
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ),
        (
            "no containers",
            DEPLOYMENT.replace(
                "      containers:",
                "      nodeSelector: {}\n      initContainers:",
            ),
            "spec.template.spec.containers: Required value",
        ),
    ];
    for (case, yaml, want) in refused {
        let yaml = yaml.replace("name: podwarden, namespace", "name: bad, namespace");
        let err = c.fails(&["apply", "-f", &c.file("bad", &yaml)]).await;
        assert!(
            err.contains("The Deployment \"bad\" is invalid") && err.contains(want),
            "{case}: {err}"
        );
    }
    // The selector is immutable.
    let changed = DEPLOYMENT.replace(
        "matchLabels: {app: podwarden}",
        "matchLabels: {app: podwarden, tier: audit}",
    );
    let err = c
        .fails(&["apply", "-f", &c.file("changed", &changed)])
        .await;
    assert!(
        err.contains("spec.selector") && err.contains("field is immutable"),
        "{err}"
    );
    // A spec change moves the generation; the replicas show in READY.
    c.ok(&[
        "apply",
        "-f",
        &c.file("three", &DEPLOYMENT.replace("replicas: 2", "replicas: 3")),
    ])
    .await;
    let table = c.ok(&["get", "deploy", "podwarden"]).await;
    assert_eq!(row(&table, "podwarden")[1], "0/3", "{table}");
    let generation = c
        .ok(&[
            "get",
            "deploy",
            "podwarden",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
        .await;
    assert_eq!(generation, "2");
}

#[tokio::test]
async fn rbac_and_config_mistakes_name_the_field() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("kinds-rbac").await;
    let refused = [
        (
            "rule without verbs",
            ROLE.replace("verbs: [get, create, update]", "verbs: []"),
            "rules[0].verbs: Required value: verbs must contain at least one value",
        ),
        (
            "namespaced rule on a URL",
            ROLE.replace(
                "  - apiGroups: [coordination.k8s.io]\n    resources: [leases]\n",
                "  - nonResourceURLs: [/metrics]\n",
            ),
            "rules[0].nonResourceURLs: Invalid value: []string{\"/metrics\"}: namespaced rules cannot apply to non-resource URLs",
        ),
        (
            "cluster binding to a Role",
            CLUSTER_ROLE_BINDING.replace("kind: ClusterRole,", "kind: Role,"),
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
        ),
        (
            "cluster binding's service account without namespace",
            CLUSTER_ROLE_BINDING.replace(", namespace: default}", "}"),
            "subjects[0].namespace: Required value",
        ),
        (
            "subject of an unknown kind",
            ROLE_BINDING.replace("kind: ServiceAccount", "kind: Robot"),
            "subjects[0].kind: Unsupported value: \"Robot\"",
        ),
        (
            "config map key",
            CONFIG_MAP.replace("b: two", "b/c: two"),
            "data[b/c]: Invalid value: \"b/c\": a valid config key",
        ),
        (
            "secret data not base64",
            SECRET.replace("c2VjcmV0", "not base64!"),
            "Secret in version \"v1\" cannot be handled as a Secret",
        ),
    ];
    for (case, yaml, want) in refused {
        let err = c.fails(&["apply", "-f", &c.file("bad", &yaml)]).await;
        assert!(err.contains(want), "{case}: {err}");
    }
    // A binding's roleRef is immutable; a Secret's stringData lands in data.
    c.ok(&["apply", "-f", &c.file("rb", ROLE_BINDING)]).await;
    let err = c
        .fails(&[
            "apply",
            "-f",
            &c.file(
                "rb2",
                &ROLE_BINDING.replace("kind: Role,", "kind: ClusterRole,"),
            ),
        ])
        .await;
    assert!(
        err.contains("roleRef: Invalid value") && err.contains("cannot change roleRef"),
        "{err}"
    );
    c.ok(&["apply", "-f", &c.file("s", SECRET)]).await;
    let user = c
        .ok(&[
            "get",
            "secret",
            "creds",
            "-o",
            "jsonpath={.data.user} {.stringData}",
        ])
        .await;
    assert_eq!(user.trim(), "YWRtaW4=");
    let defaulted = c
        .ok(&[
            "get",
            "clusterrolebinding",
            "-o",
            "jsonpath={.items[*].subjects[*].apiGroup}",
        ])
        .await;
    assert_eq!(defaulted, "", "no cluster role binding yet");
    let without_groups =
        CLUSTER_ROLE_BINDING.replace(", apiGroup: rbac.authorization.k8s.io}", "}");
    c.ok(&["apply", "-f", &c.file("crb", &without_groups)])
        .await;
    let groups = c
        .ok(&[
            "get",
            "clusterrolebinding",
            "podwarden",
            "-o",
            "jsonpath={.subjects[*].apiGroup}",
        ])
        .await;
    assert_eq!(
        groups, "rbac.authorization.k8s.io rbac.authorization.k8s.io",
        "User and Group subjects get rbac's apiGroup, a ServiceAccount none"
    );
}

#[tokio::test]
async fn monitoring_crds_fixture_serves_the_charts_custom_resources() {
    if !kubectl_available() {
        return;
    }
    let c = Cluster::start("kinds-monitoring").await;
    let fixture = format!(
        "{}/../../.ci/fixtures/monitoring-crds.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = c.ok(&["apply", "-f", &fixture]).await;
    assert!(
        out.contains("servicemonitors.monitoring.coreos.com created")
            && out.contains("prometheusrules.monitoring.coreos.com created"),
        "{out}"
    );
    let objects = "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: podwarden}\nspec: {selector: {matchLabels: {app: podwarden}}, endpoints: [{port: http-metrics}]}\n---\napiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: podwarden}\nspec: {groups: [{name: podwarden, rules: [{alert: A, expr: up == 0}]}]}\n";
    c.ok(&["apply", "-f", &c.file("monitoring", objects)]).await;
    let names = c.ok(&["get", "smon,promrule", "-o", "name"]).await;
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [
            "servicemonitor.monitoring.coreos.com/podwarden",
            "prometheusrule.monitoring.coreos.com/podwarden"
        ]
    );
}

#[test]
fn storage_keys_name_each_served_kind() {
    let store = podwarden_sandbox::api::Store::default();
    let cases = [
        ("", "serviceaccounts", ResourceType::SERVICE_ACCOUNTS),
        ("", "services", ResourceType::SERVICES),
        ("", "configmaps", ResourceType::CONFIG_MAPS),
        ("", "secrets", ResourceType::SECRETS),
        ("apps", "deployments", ResourceType::DEPLOYMENTS),
        (
            "networking.k8s.io",
            "networkpolicies",
            ResourceType::NETWORK_POLICIES,
        ),
        ("rbac.authorization.k8s.io", "roles", ResourceType::ROLES),
        (
            "rbac.authorization.k8s.io",
            "clusterroles",
            ResourceType::CLUSTER_ROLES,
        ),
        (
            "rbac.authorization.k8s.io",
            "rolebindings",
            ResourceType::ROLE_BINDINGS,
        ),
        (
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            ResourceType::CLUSTER_ROLE_BINDINGS,
        ),
    ];
    for (group, plural, key) in cases {
        let rt = store.resource(group, "v1", plural).unwrap();
        assert_eq!(rt.storage, key, "{plural}");
        assert_eq!(
            store.registry().storage_type(key).map(|t| t.plural.clone()),
            Some(plural.to_string()),
            "{plural}"
        );
    }
}
