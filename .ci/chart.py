"""Checks of the Helm chart and the Dockerfile with real tools: Helm's own lint and
render (helm-python-sdk, Helm's Go SDK), the upstream Kubernetes schemas
(kubernetes-validate, strict), checkov's security checks, and kubectl applying every
render to the sandbox API server (`podwarden sandbox --auth`, built by `cargo test` or
`cargo build`), and RBAC for real: the demo scenario run under the rendered
ServiceAccount's token over HTTPS (`podwarden demo --install`), passing with the chart's
rules and failing without any one verb of them. Run by .ci/run; exits 1 and says what
failed.
"""

import copy
import os
import pathlib
import queue
import signal
import subprocess
import sys
import tempfile
import threading

import helm_python
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "podwarden"
NAMESPACE = "podwarden"
KUBE_VERSION = "1.32"
# Kinds of CRDs the chart may render (prometheus-operator's): no upstream schema.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Their CRDs, reduced, for the sandbox (a real cluster has the operator's).
MONITORING_CRDS = ROOT / ".ci" / "fixtures" / "monitoring-crds.yaml"
# What `kubectl get` lists after the renders are applied: every kind the chart renders.
LISTED = "deploy,sa,svc,cm,clusterrole,clusterrolebinding,role,rolebinding,netpol,servicemonitor,prometheusrule"
# Bounds of the sandbox run: its start, and each kubectl call.
SANDBOX_START_SECONDS = 60
KUBECTL_SECONDS = 120
# Bound of one demo run (it takes seconds; a failure bound).
DEMO_SECONDS = 300
# The renders the demo runs under: cluster-wide with leader election (every verb the
# chart grants, the Lease's included), and limited to the demo's namespace.
RBAC_RENDERS = [
    ("cluster-wide, 2 replicas", {"replicas": 2}),
    ("watchNamespaces [demo], 2 replicas", {"replicas": 2, "watchNamespaces": ["demo"]}),
]
SERVICE_ACCOUNT_USER = f"system:serviceaccount:{NAMESPACE}:podwarden"

# Every documented option at a value other than its default.
EVERY_OPTION = {
    "image": {"tag": "0.1.0", "digest": "sha256:" + "ab" * 32, "pullPolicy": "Always"},
    "replicas": 3,
    "watchNamespaces": ["shop", "billing"],
    "eventQps": 10,
    "orphanRecreation": {"enabled": False, "createQps": 2, "guardQps": 10},
    "guardCleanup": {"enabled": True, "timeoutSeconds": 120},
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
    ({"guardCleanup": {"timeoutSeconds": 5}}, "timeoutSeconds"),
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


def sandbox_binary():
    target = os.environ.get("CARGO_TARGET_DIR") or str(ROOT / "target")
    return pathlib.Path(target).resolve() / "debug" / "podwarden"


class Sandbox:
    """`podwarden sandbox` (the API server alone) on a free loopback port, with its own
    kubeconfig and kubectl cache; stopped with Ctrl-C on exit, killed if that hangs."""

    def __init__(self, binary, tmp):
        self.dir = pathlib.Path(tmp) / "sandbox"
        self.dir.mkdir()
        self.kubeconfig = self.dir / "kubeconfig"
        self.proc = subprocess.Popen(
            [str(binary), "sandbox", "--listen", "127.0.0.1:0", "--kubeconfig", str(self.kubeconfig),
             "--nodes", "0", "--auth"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in self.proc.stdout], daemon=True).start()
        self.output = []
        try:
            while True:
                line = lines.get(timeout=SANDBOX_START_SECONDS)
                self.output.append(line)
                if line.startswith("kubeconfig written"):
                    break
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"the sandbox did not start in {SANDBOX_START_SECONDS}s: {''.join(self.output)}")

    def kubectl(self, *args):
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.dir / "cache"), *args],
            capture_output=True, text=True, timeout=KUBECTL_SECONDS,
            env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
        )

    def stop(self):
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def listed_name(doc):
    """An object as `kubectl get -o name` names it: `deployment.apps/podwarden`."""
    group = doc["apiVersion"].rpartition("/")[0]
    kind = doc["kind"].lower()
    return f"{kind}.{group}/{doc['metadata']['name']}" if group else f"{kind}/{doc['metadata']['name']}"


def apply_to_sandbox(renders, tmp):
    """kubectl applies the CRDs and each render in turn (the second an upgrade of the
    first) to the sandbox; each render's objects must then be listed, and applying it
    again must change nothing."""
    binary = sandbox_binary()
    if not binary.exists():
        fail(f"sandbox: {binary} does not exist; build it first (cargo build, or cargo test)")
        return
    try:
        sandbox = Sandbox(binary, tmp)
    except RuntimeError as e:
        fail(f"sandbox: {e}")
        return
    with sandbox:
        def kubectl(*args):
            try:
                run = sandbox.kubectl(*args)
            except subprocess.TimeoutExpired:
                fail(f"sandbox: kubectl {' '.join(args)} took over {KUBECTL_SECONDS}s")
                return subprocess.CompletedProcess(args, 1, "", "")
            if run.returncode != 0:
                fail(f"sandbox: kubectl {' '.join(args)}: {run.stderr.strip() or run.stdout.strip()}")
            return run
        kubectl("apply", "-f", str(ROOT / "crds"))
        kubectl("apply", "-f", str(MONITORING_CRDS))
        kubectl("create", "namespace", NAMESPACE)
        # The namespaces watchNamespaces names hold Roles: they exist before an install.
        others = sorted({d["metadata"]["namespace"] for _, _, docs, _ in renders for d in docs
                         if d["metadata"].get("namespace", NAMESPACE) != NAMESPACE})
        for ns in others:
            kubectl("create", "namespace", ns)
        for label, out, docs, hooks in renders:
            applied = kubectl("apply", "-f", str(out))
            if applied.returncode != 0:
                continue
            print(f"sandbox ({label}): {len(applied.stdout.splitlines())} object(s) applied")
            listed = kubectl("get", LISTED, "-A", "-o", "name").stdout.split()
            for doc in docs:
                if listed_name(doc) not in listed:
                    fail(f"sandbox ({label}): {listed_name(doc)} was applied but kubectl get does not list it")
            again = kubectl("apply", "-f", str(out)).stdout.splitlines()
            changed = [line for line in again if not line.endswith(" unchanged")]
            if changed:
                fail(f"sandbox ({label}): applying the same render again changed: {changed}")
            refused_outside_the_role(sandbox, label)
            if hooks:
                guard_cleanup_hook(sandbox, label, hooks, tmp)
        print(kubectl("get", LISTED, "-n", NAMESPACE).stdout.strip())


def refused_outside_the_role(sandbox, label):
    """With the rendered ServiceAccount's token (`kubectl create token`), a verb the
    chart does not grant is refused with 403, naming the user, verb and resource."""
    token = sandbox.kubectl("create", "token", "podwarden", "-n", NAMESPACE)
    if token.returncode != 0 or not token.stdout.strip():
        fail(f"sandbox ({label}): kubectl create token: {token.stderr.strip()}")
        return
    run = sandbox.kubectl("--token", token.stdout.strip(), "delete", "pod", "web", "-n", "default")
    expected = (f'pods "web" is forbidden: User "{SERVICE_ACCOUNT_USER}" cannot delete resource '
                f'"pods" in API group "" in the namespace "default"')
    if run.returncode == 0 or expected not in run.stderr:
        fail(f"sandbox ({label}): a delete outside the role was not refused as upstream: {run.stderr.strip()}")
        return
    print(f"sandbox ({label}): outside the role: {run.stderr.strip()}")


def is_uninstall_hook(doc):
    hooks = (doc["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
    return bool(hooks) and not {"pre-install", "post-install"} & {h.strip() for h in hooks.split(",")}


def guard_cleanup_hook(sandbox, label, hooks, tmp):
    """The post-delete hook's rights are enough for what its Job runs: with its
    ServiceAccount's token, `podwarden release-guards` (the Job's arguments) releases a
    guarded pod, and leaves its other finalizer."""
    job = next((d for d in hooks if d["kind"] == "Job"), None)
    if job is None:
        fail(f"hook ({label}): no Job among the uninstall hooks")
        return
    spec = job["spec"]["template"]["spec"]
    args = spec["containers"][0]["args"]
    if args[0] != "release-guards":
        fail(f"hook ({label}): the Job runs {args}, not release-guards")
        return
    rbac = [d for d in hooks if d["kind"] != "Job"]
    path = pathlib.Path(tmp) / f"hook-{label.replace(' ', '-')}.yaml"
    path.write_text(yaml.safe_dump_all(rbac))
    sandbox.kubectl("apply", "-f", str(path))
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "guarded", "namespace": "default",
                        "finalizers": ["podwarden.dev/orphan-guard", "example.com/keep"]},
           "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
    pod_path = pathlib.Path(tmp) / "guarded-pod.yaml"
    pod_path.write_text(yaml.safe_dump(pod))
    sandbox.kubectl("delete", "pod", "guarded", "-n", "default", "--ignore-not-found", "--wait=false")
    sandbox.kubectl("apply", "-f", str(pod_path))
    token = sandbox.kubectl("create", "token", spec["serviceAccountName"], "-n", NAMESPACE).stdout.strip()
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    as_hook = pathlib.Path(tmp) / f"hook-{label.replace(' ', '-')}.kubeconfig"
    as_hook.write_text(yaml.safe_dump(config))
    run = subprocess.run([str(sandbox_binary()), *args, "--kubeconfig", str(as_hook)],
                         capture_output=True, text=True, timeout=KUBECTL_SECONDS)
    left = sandbox.kubectl("get", "pod", "guarded", "-n", "default", "-o",
                           "jsonpath={.metadata.finalizers}").stdout
    if run.returncode != 0 or "orphan-guard" in left or "example.com/keep" not in left:
        fail(f"hook ({label}): release-guards under the hook's ServiceAccount: exit {run.returncode}, "
             f"finalizers left {left}: {run.stdout.strip()} {run.stderr.strip()}")
        return
    print(f"hook ({label}): under its ServiceAccount, {' '.join(args)}: {run.stdout.strip()}")
    sandbox.kubectl("patch", "pod", "guarded", "-n", "default", "--type", "json",
                    "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')


def write_docs(path, docs):
    path.write_text(yaml.safe_dump_all(docs))


def demo(path):
    """`podwarden demo --install path`: (passed, output)."""
    try:
        run = subprocess.run([str(sandbox_binary()), "demo", "--install", str(path)],
                             capture_output=True, text=True, timeout=DEMO_SECONDS)
    except subprocess.TimeoutExpired:
        return False, f"took over {DEMO_SECONDS}s"
    return run.returncode == 0, run.stdout + run.stderr


def without_verb(docs, d, r, verb):
    """`docs` with `verb` taken out of rule `r` of document `d` (the rule dropped when
    it has no verb left)."""
    out = copy.deepcopy(docs)
    rules = out[d]["rules"]
    rules[r]["verbs"] = [v for v in rules[r]["verbs"] if v != verb]
    if not rules[r]["verbs"]:
        del rules[r]
    return out


def rbac_for_real(chart, tmp):
    """The demo scenario under the rendered ServiceAccount passes with the chart's RBAC;
    without any one granted verb, the API refuses the controller that verb and the demo
    fails: nothing granted is unused."""
    if not sandbox_binary().exists():
        fail(f"rbac: {sandbox_binary()} does not exist; build it first")
        return
    for i, (label, values) in enumerate(RBAC_RENDERS):
        docs = [doc for _, doc in render(chart, values, label) if not is_uninstall_hook(doc)]
        path = pathlib.Path(tmp) / f"rbac-{i}.yaml"
        write_docs(path, docs)
        passed, out = demo(path)
        if not passed:
            fail(f"rbac ({label}): the demo under the chart's RBAC failed:\n{out[-3000:]}")
            continue
        print(f"rbac ({label}): the demo passes under ServiceAccount {NAMESPACE}/podwarden over HTTPS")
        if i > 0:
            continue  # the namespaced Roles carry the same rules: removed once, above
        removed = 0
        for d, doc in enumerate(docs):
            if doc["kind"] not in ("Role", "ClusterRole"):
                continue
            for r, rule in enumerate(doc["rules"]):
                for verb in rule["verbs"]:
                    cut = pathlib.Path(tmp) / f"rbac-without-{d}-{r}-{verb}.yaml"
                    write_docs(cut, without_verb(docs, d, r, verb))
                    passed, out = demo(cut)
                    what = f"{verb} {'/'.join(rule['resources'])} ({doc['kind']} {doc['metadata']['name']})"
                    refused = [f'cannot {verb} resource "{res}"' for res in rule["resources"]]
                    if passed:
                        fail(f"rbac: without {what} the demo still passes: the chart grants it for nothing")
                    elif not any(x in out for x in refused):
                        fail(f"rbac: without {what} the demo failed, but not on that verb:\n{out[-2000:]}")
                    else:
                        removed += 1
        print(f"rbac: each of {removed} granted verbs removed in turn: the API refused it and the demo failed")


def main():
    crd = (ROOT / "crds" / "podlifecyclepolicies.yaml").read_text()
    if (CHART / "crds" / "podlifecyclepolicies.yaml").read_text() != crd:
        fail("charts/podwarden/crds differs from crds/: copy crds/podlifecyclepolicies.yaml")
    validate([("crds/podlifecyclepolicies.yaml", yaml.safe_load(crd))], "crds")
    lint()
    chart = helm_python.Chart.load(str(CHART))
    with tempfile.TemporaryDirectory() as tmp:
        renders = []
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
            # What an install applies: not the hooks that run at uninstall.
            installed = [doc for _, doc in docs if not is_uninstall_hook(doc)]
            applied = pathlib.Path(tmp) / (label.replace(" ", "-") + "-applied")
            applied.mkdir()
            for i, doc in enumerate(installed):
                (applied / f"{i:02}-{doc['kind'].lower()}.yaml").write_text(yaml.safe_dump(doc))
            renders.append((label, applied, installed, [doc for _, doc in docs if is_uninstall_hook(doc)]))
        bad_values(chart)
        apply_to_sandbox(renders, tmp)
        rbac_for_real(chart, tmp)
    checkov(["-f", str(ROOT / "Dockerfile"), "--framework", "dockerfile"])
    chart.close()
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("chart and Dockerfile: ok")


if __name__ == "__main__":
    main()
