"""Checks of the Helm chart and the Dockerfile with real tools: Helm's own lint and
render (helm-python-sdk, Helm's Go SDK), the upstream Kubernetes schemas
(kubernetes-validate, strict) and checkov's security checks. Run by .ci/run; exits 1
and says what failed.
"""

import copy
import pathlib
import subprocess
import sys
import tempfile

import helm_python
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "podwarden"
NAMESPACE = "podwarden"
KUBE_VERSION = "1.32"
# Kinds of CRDs the chart may render (prometheus-operator's): no upstream schema.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

# Every documented option at a value other than its default.
EVERY_OPTION = {
    "image": {"tag": "0.1.0", "digest": "sha256:" + "ab" * 32, "pullPolicy": "Always"},
    "replicas": 3,
    "watchNamespaces": ["shop", "billing"],
    "eventQps": 10,
    "orphanRecreation": {"enabled": False, "createQps": 2, "guardQps": 10},
    "logFormat": "text",
    "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
    "metrics": {
        "service": {"enabled": True, "port": 9090},
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
    },
    "grafanaDashboard": {"enabled": True, "labels": {"grafana_dashboard": "1"}},
    "networkPolicy": {"enabled": True, "apiServerPorts": [443],
                      "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
    "podAnnotations": {"example.com/team": "platform"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}]}}},
    "priorityClassName": "system-cluster-critical",
}

# Values that must be refused at install time, and a word the error must contain.
BAD_VALUES = [
    ({"replicas": 0}, "replicas"),
    ({"logFormat": "xml"}, "logFormat"),
    ({"orphanRecreation": {"createQps": -1}}, "createQps"),
    ({"image": {"digest": "latest"}}, "digest"),
    ({"metrics": {"serviceMonitor": {"interval": "soon"}}}, "interval"),
    ({"replica": 2}, "replica"),
    ({"watchNamespaces": ["Shop"]}, "watchNamespaces"),
]

failures = []


def fail(message):
    failures.append(message)
    print("FAIL:", message)


def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out.get(k, {}), v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def lint():
    report = helm_python.lint(str(CHART), strict=True, namespace=NAMESPACE)
    bad = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    for m in bad:
        fail(f"helm lint: {m.get('path')}: {m.get('error')}")
    for e in report.get("errors") or []:
        fail(f"helm lint: {e}")
    print(f"helm lint: {report.get('total_charts_linted')} chart(s), {len(report.get('messages', []))} message(s)")


def render(chart, values, label):
    files = chart.render(values, name="podwarden", namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(files.items()):
        if not path.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((path, doc))
    print(f"render ({label}): {len(docs)} object(s): " + ", ".join(sorted({d['kind'] for _, d in docs})))
    return docs


def validate(docs, label):
    for path, doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            fail(f"{label}: {path}: {doc['kind']} {doc['metadata'].get('name')}: {e.message}")


def check_namespaced(docs, namespaces):
    """With watchNamespaces, the ClusterRole grants nodes only; each namespace gets the
    rest in a Role bound to the ServiceAccount, and the controller is told to read only
    those namespaces."""
    kinds = {}
    for _, doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    cluster_resources = {r for doc in kinds.get("ClusterRole", []) for rule in doc["rules"]
                         for r in rule["resources"]}
    if cluster_resources != {"nodes"}:
        fail(f"watchNamespaces: the ClusterRole grants {sorted(cluster_resources)}, not nodes only")
    roles = {doc["metadata"]["namespace"] for doc in kinds.get("Role", [])
             if any("pods" in rule["resources"] for rule in doc["rules"])}
    bindings = {doc["metadata"]["namespace"] for doc in kinds.get("RoleBinding", [])}
    for ns in namespaces:
        if ns not in roles or ns not in bindings:
            fail(f"watchNamespaces: no Role and RoleBinding for pods in {ns}")
    args = kinds["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
    if sorted(a for a in args if a.startswith("--namespace=")) != sorted(f"--namespace={n}" for n in namespaces):
        fail(f"watchNamespaces: the controller's arguments {args} do not name each namespace once")
    print(f"watchNamespaces: Role and RoleBinding in {', '.join(namespaces)}; ClusterRole: nodes only")


def bad_values(chart):
    for values, word in BAD_VALUES:
        try:
            chart.render(values, name="podwarden", namespace=NAMESPACE, is_install=True)
        except helm_python.HelmError as e:
            if word not in str(e):
                fail(f"bad values {values}: refused, but the message does not name {word!r}: {e}")
            continue
        fail(f"bad values {values} were accepted")
    print(f"bad values: {len(BAD_VALUES)} refused at install time")


def checkov(args):
    run = subprocess.run(
        ["checkov", *args, "--skip-download", "--compact", "--quiet"],
        capture_output=True, text=True,
    )
    print(run.stdout.strip()[-3000:])
    if run.returncode != 0:
        fail(f"checkov {' '.join(args)}: failed checks (above)")


def main():
    crd = (ROOT / "crds" / "podlifecyclepolicies.yaml").read_text()
    if (CHART / "crds" / "podlifecyclepolicies.yaml").read_text() != crd:
        fail("charts/podwarden/crds differs from crds/: copy crds/podlifecyclepolicies.yaml")
    validate([("crds/podlifecyclepolicies.yaml", yaml.safe_load(crd))], "crds")
    lint()
    chart = helm_python.Chart.load(str(CHART))
    with tempfile.TemporaryDirectory() as tmp:
        for label, values in (("defaults", {}), ("every option", EVERY_OPTION)):
            docs = render(chart, values, label)
            validate(docs, label)
            out = pathlib.Path(tmp) / label.replace(" ", "-")
            out.mkdir()
            for i, (_, doc) in enumerate(docs):
                (out / f"{i:02}-{doc['kind'].lower()}.yaml").write_text(yaml.safe_dump(doc))
            checkov(["-d", str(out), "--framework", "kubernetes"])
            if values.get("watchNamespaces"):
                check_namespaced(docs, values["watchNamespaces"])
        bad_values(chart)
    checkov(["-f", str(ROOT / "Dockerfile"), "--framework", "dockerfile"])
    chart.close()
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("chart and Dockerfile: ok")


if __name__ == "__main__":
    main()
