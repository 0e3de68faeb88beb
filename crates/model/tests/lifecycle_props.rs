//! Property tests: arbitrary input never panics the auditor's core; real pods cut short or
//! mutated read as the same view directly and through `serde_json::Value`, or fail with an
//! error that says where; and sequences from an independent legal-lifecycle generator never
//! give a violation.

mod common;

use std::fmt;
use std::sync::OnceLock;

use common::*;
use podwarden_model::view::{NoSpecs, PodSeed};
use podwarden_model::{
    Input, PodView, RuleId, RuleSettings, Severity, Timestamp, Tracker, evaluate,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-zA-Z0-9:._-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_string()),
                    Just("spec".to_string()),
                    Just("status".to_string()),
                    Just("kind".to_string()),
                    "[a-z]{1,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_time() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..100_000).prop_map(|s| json!(t(s))),
        Just(Value::Null),
        Just(json!("not-a-time")),
        Just(json!(42)),
    ]
}

fn arb_state() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        Just(Value::Null),
        arb_time().prop_map(|t| json!({"running": {"startedAt": t}})),
        (any::<i32>(), arb_time(), arb_time(), prop::option::of("OOMKilled|Error|Completed"))
            .prop_map(|(c, a, b, r)| json!({"terminated": {"exitCode": c, "startedAt": a, "finishedAt": b, "reason": r}})),
        "[A-Za-z]{0,10}".prop_map(|r| json!({"waiting": {"reason": r}})),
        Just(json!({"running": {}, "terminated": {"exitCode": 1}})),
        Just(json!("garbage")),
    ]
}

fn arb_container_status() -> impl Strategy<Value = Value> {
    (
        "a|b|c|d",
        arb_state(),
        arb_state(),
        any::<bool>(),
        prop::option::of(any::<bool>()),
        -3i32..5,
    )
        .prop_map(|(n, s, l, ready, started, rc)| {
            json!({"name": n, "state": s, "lastState": l, "ready": ready, "started": started, "restartCount": rc})
        })
}

fn arb_container() -> impl Strategy<Value = Value> {
    (
        "a|b|c|d",
        prop::option::of("Always|OnFailure|Never|Sometimes"),
        prop::option::of(prop::collection::vec(
            ("Restart|Ignore", "In|NotIn", prop::collection::vec(-2i32..4, 0..3)),
            0..3,
        )),
    )
        .prop_map(|(n, p, rules)| {
            let rules = rules.map(|rs| {
                rs.into_iter()
                    .map(|(a, op, v)| json!({"action": a, "exitCodes": {"operator": op, "values": v}}))
                    .collect::<Vec<_>>()
            });
            json!({"name": n, "restartPolicy": p, "restartPolicyRules": rules})
        })
}

fn arb_condition() -> impl Strategy<Value = Value> {
    (
        "Ready|ContainersReady|Initialized|PodScheduled|DisruptionTarget|Custom",
        "True|False|Unknown",
        arb_time(),
        prop::option::of("[A-Za-z]{0,12}"),
    )
        .prop_map(
            |(k, s, t, r)| json!({"type": k, "status": s, "lastTransitionTime": t, "reason": r}),
        )
}

fn arb_pod() -> impl Strategy<Value = Value> {
    (
        prop::option::of("p|q"),
        prop::option::of("u1|u2"),
        prop::option::of("Always|OnFailure|Never"),
        prop::collection::vec(arb_container(), 0..3),
        prop::collection::vec(arb_container(), 0..3),
        prop::option::of("Pending|Running|Succeeded|Failed|Unknown|Weird"),
        prop::collection::vec(arb_condition(), 0..5),
        prop::collection::vec(arb_container_status(), 0..4),
        prop::collection::vec(arb_container_status(), 0..3),
        (arb_time(), prop::option::of(arb_time()), any::<bool>(), prop::option::of("[a-z]{0,6}")),
    )
        .prop_map(|(name, uid, policy, cs, ics, phase, conds, st, ist, (created, deleted, owned, gate))| {
            json!({
                "kind": "Pod",
                "metadata": {"name": name, "uid": uid, "namespace": "ns", "creationTimestamp": created,
                             "deletionTimestamp": deleted,
                             "ownerReferences": if owned { json!([{"controller": true}]) } else { Value::Null }},
                "spec": {"restartPolicy": policy, "containers": cs, "initContainers": ics,
                         "readinessGates": gate.map(|g| json!([{"conditionType": g}]))},
                "status": {"phase": phase, "conditions": conds, "containerStatuses": st, "initContainerStatuses": ist}
            })
        })
}

fn feed(tracker: &mut Tracker, docs: &[Value]) {
    let settings = RuleSettings::default();
    for (i, doc) in docs.iter().enumerate() {
        if let Ok(view) = PodView::from_slice(doc.to_string().as_bytes()) {
            let now = view.latest_time().unwrap_or(Timestamp(i as i64));
            let _ = tracker.observe(view, now, &settings);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(docs in prop::collection::vec(arb_json(), 1..6)) {
        feed(&mut Tracker::new(), &docs);
    }

    #[test]
    fn arbitrary_pod_shaped_json_never_panics(docs in prop::collection::vec(arb_pod(), 1..8)) {
        feed(&mut Tracker::new(), &docs);
    }
}

// ---- Real pods, truncated and mutated ----------------------------------------------
//
// Arbitrary bytes fail at the first byte. These start from pods as the API writes them
// (the repository's watch-event fixture and pods built by the common helpers), then cut
// them short or change them where the model reads: values of another JSON type, dropped,
// duplicated and unknown members, other enum strings and timestamps, numbers beyond every
// integer type, arrays nested past the parser's depth limit, members in another order.

const WATCH_EVENT: &str = include_str!("../../../fixtures/pod-watch-event.json");

/// JSON as text has it: members in their order, duplicates kept, numbers as their token.
#[derive(Clone, Debug)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = J;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<J, E> {
                Ok(J::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<J, E> {
                Ok(J::Num(n.to_string()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<J, E> {
                Ok(J::Num(n.to_string()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<J, E> {
                Ok(J::Num(json!(n).to_string()))
            }
            fn visit_str<E>(self, s: &str) -> Result<J, E> {
                Ok(J::Str(s.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(J::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(J::Obj(members))
            }
        }
        d.deserialize_any(V)
    }
}

impl J {
    fn parse(text: &str) -> J {
        serde_json::from_str(text).expect("base pod is JSON")
    }

    fn render(&self, pretty: bool) -> String {
        let mut out = String::new();
        self.write(&mut out, pretty, 0);
        out
    }

    fn write(&self, out: &mut String, pretty: bool, depth: usize) {
        let newline = |out: &mut String, depth: usize| {
            if pretty {
                out.push('\n');
                out.push_str(&"  ".repeat(depth));
            }
        };
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(token) => out.push_str(token),
            J::Str(s) => out.push_str(&json!(s).to_string()),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    item.write(out, pretty, depth + 1);
                }
                if !items.is_empty() {
                    newline(out, depth);
                }
                out.push(']');
            }
            J::Obj(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    out.push_str(&json!(key).to_string());
                    out.push_str(if pretty { ": " } else { ":" });
                    value.write(out, pretty, depth + 1);
                }
                if !members.is_empty() {
                    newline(out, depth);
                }
                out.push('}');
            }
        }
    }

    /// Every node as (positions from the root, member keys and item indices).
    fn nodes(
        &self,
        at: &mut Vec<usize>,
        path: &mut Vec<Seg>,
        out: &mut Vec<(Vec<usize>, Vec<Seg>)>,
    ) {
        out.push((at.clone(), path.clone()));
        let children: Vec<(Seg, &J)> = match self {
            J::Arr(items) => items
                .iter()
                .enumerate()
                .map(|(i, j)| (Seg::Index(i), j))
                .collect(),
            J::Obj(members) => members
                .iter()
                .map(|(k, j)| (Seg::Key(k.clone()), j))
                .collect(),
            _ => return,
        };
        for (i, (seg, child)) in children.into_iter().enumerate() {
            at.push(i);
            path.push(seg);
            child.nodes(at, path, out);
            at.pop();
            path.pop();
        }
    }

    fn at(&self, at: &[usize]) -> &J {
        match (at.split_first(), self) {
            (None, j) => j,
            (Some((&i, rest)), J::Arr(items)) => items[i].at(rest),
            (Some((&i, rest)), J::Obj(members)) => members[i].1.at(rest),
            _ => unreachable!("positions come from nodes()"),
        }
    }

    fn at_mut(&mut self, at: &[usize]) -> &mut J {
        match (at.split_first(), self) {
            (None, j) => j,
            (Some((&i, rest)), J::Arr(items)) => items[i].at_mut(rest),
            (Some((&i, rest)), J::Obj(members)) => members[i].1.at_mut(rest),
            _ => unreachable!("positions come from nodes()"),
        }
    }

    fn remove_member(&mut self, key: &str) {
        if let J::Obj(members) = self {
            members.retain(|(k, _)| k != key);
        }
    }

    fn member_mut(&mut self, key: &str) -> Option<&mut J> {
        match self {
            J::Obj(members) => members.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A step of a path: what `serde_path_to_error` names.
#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn show_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if s.is_empty() { ".".into() } else { s }
}

/// The members the model reads (everything else is skipped unread).
#[rustfmt::skip]
const READ_KEYS: &[&str] = &[
    "kind", "metadata", "name", "namespace", "uid", "resourceVersion", "labels", "annotations",
    "creationTimestamp", "deletionTimestamp", "ownerReferences", "controller", "spec",
    "restartPolicy", "nodeName", "containers", "initContainers", "restartPolicyRules",
    "action", "exitCodes", "operator", "values", "readinessGates", "conditionType",
    "status", "phase", "reason", "conditions", "type", "lastTransitionTime",
    "containerStatuses", "initContainerStatuses", "containerID", "state", "lastState",
    "ready", "started", "restartCount", "waiting", "running", "terminated", "exitCode",
    "startedAt", "finishedAt", "startTime",
];

fn is_read(path: &[Seg]) -> bool {
    path.iter().enumerate().all(|(i, seg)| match seg {
        Seg::Index(_) => true,
        Seg::Key(k) => {
            READ_KEYS.contains(&k.as_str())
                || (i > 0
                    && (path[i - 1] == Seg::Key("labels".into())
                        || path[i - 1] == Seg::Key("annotations".into())))
        }
    })
}

/// The pods the mutations start from, each of which parses.
fn bases() -> &'static [(&'static str, J)] {
    static BASES: OnceLock<Vec<(&'static str, J)>> = OnceLock::new();
    BASES.get_or_init(|| {
        let event = J::parse(WATCH_EVENT);
        let J::Obj(members) = &event else { panic!("the watch event is an object") };
        let fixture = members
            .iter()
            .find(|(k, _)| k == "object")
            .map(|(_, o)| o.clone())
            .expect("the watch event has an object");
        let mut orphan = fixture.clone();
        if let Some(meta) = orphan.member_mut("metadata") {
            meta.remove_member("ownerReferences");
        }
        // spec before metadata: the full spec is read before the owner is known.
        let mut spec_first = fixture.clone();
        if let J::Obj(members) = &mut spec_first {
            members.sort_by_key(|(k, _)| k != "spec");
        }
        let running = Pod::new("web")
            .init("setup")
            .sidecar("envoy")
            .containers(&["app", "helper"])
            .readiness_gate("example.com/gate")
            .container_spec("app", "restartPolicy", json!("OnFailure"))
            .container_spec(
                "app",
                "restartPolicyRules",
                json!([{"action": "Restart", "exitCodes": {"operator": "In", "values": [42, 137]}}]),
            )
            .phase("Running")
            .state("setup", terminated(0, 1, 2))
            .run("envoy", 2, true)
            .run("app", 3, true)
            .run("helper", 3, false)
            .kubelet_conditions(4);
        let failed = Pod::new("batch")
            .policy("Never")
            .containers(&["app"])
            .phase("Failed")
            .reason("Evicted")
            .state("app", oom(2, 30))
            .last("app", terminated(1, 1, 2))
            .cond("DisruptionTarget", "True", 30)
            .cond_reason("DisruptionTarget", "TerminationByKubelet")
            .deleting(31)
            .kubelet_conditions(30);
        let crash_loop = Pod::new("loop")
            .orphan()
            .policy("OnFailure")
            .containers(&["app"])
            .phase("Running")
            .state("app", waiting("CrashLoopBackOff"))
            .last("app", terminated(2, 40, 41))
            .restarts("app", 4)
            .kubelet_conditions(41);
        let mut out = vec![
            ("fixture", fixture),
            ("fixture without owner", orphan),
            ("fixture with spec first", spec_first),
        ];
        for (name, pod) in [("running", running), ("failed", failed), ("crash loop", crash_loop)] {
            out.push((name, J::parse(&pod.json())));
        }
        out
    })
}

#[rustfmt::skip]
const STRINGS: &[&str] = &[
    "Pod", "Service", "Pending", "Running", "running", "Succeeded", "Failed", "Unknown",
    "Exploded", "Always", "OnFailure", "Never", "Sometimes", "True", "False", "true",
    "Ready", "ContainersReady", "Initialized", "PodScheduled", "DisruptionTarget", "In",
    "NotIn", "Restart", "Ignore", "OOMKilled", "Completed", "CrashLoopBackOff", "",
    "2026-08-01T10:00:00Z", "2026-08-01T10:00:00.123456Z", "2026-08-01T12:00:00+02:00",
    "2026-02-30T10:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z", "soon", "quoted \"\\ and\nnew line", "\u{e9}t\u{e9} \u{1f600}",
];

/// Number tokens: in and out of every integer type's range, the limits included.
#[rustfmt::skip]
const NUMBERS: &[&str] = &[
    "0", "-1", "1", "42", "137", "2147483646", "2147483647", "-2147483648", "2147483648",
    "-2147483649",
    "9223372036854775807", "9223372036854775808", "-9223372036854775809",
    "18446744073709551616", "123456789012345678901234567890", "1.5", "-0", "1e3", "1e400",
    "-1e400", "1e-400", "1.7976931348623157e308",
];

/// A value put where another was.
#[derive(Clone, Debug)]
enum New {
    Null,
    Bool(bool),
    Num(usize),
    Str(usize),
    EmptyArr,
    EmptyObj,
    /// `[[[...]]]`, this deep (serde_json refuses more than 128 levels where it builds).
    Nested(usize),
    /// Another node of the same pod (a list where a map was, and so on).
    Graft(prop::sample::Index),
}

fn arb_new() -> impl Strategy<Value = New> {
    prop_oneof![
        Just(New::Null),
        any::<bool>().prop_map(New::Bool),
        (0..NUMBERS.len()).prop_map(New::Num),
        (0..STRINGS.len()).prop_map(New::Str),
        Just(New::EmptyArr),
        Just(New::EmptyObj),
        prop_oneof![1usize..8, 120usize..140, 250usize..400].prop_map(New::Nested),
        any::<prop::sample::Index>().prop_map(New::Graft),
    ]
}

#[derive(Clone, Debug)]
enum Change {
    Replace(New),
    /// The member is removed from its object.
    Drop,
    /// The member appears again, right after itself or at the end of its object, with its
    /// own value or another.
    Duplicate {
        at_end: bool,
        value: Option<New>,
    },
    /// An object gets a member the model does not know.
    Unknown(New),
    /// An object's members in reverse order.
    Reverse,
}

fn arb_change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => arb_new().prop_map(Change::Replace),
        2 => Just(Change::Drop),
        2 => (any::<bool>(), prop::option::of(arb_new()))
            .prop_map(|(at_end, value)| Change::Duplicate { at_end, value }),
        1 => arb_new().prop_map(Change::Unknown),
        1 => Just(Change::Reverse),
    ]
}

/// Which nodes a mutation picks from.
#[derive(Clone, Copy, Debug)]
enum Target {
    Any,
    /// A node the model reads.
    Read,
    /// A read node of the replacement's JSON type: another enum string, timestamp, number
    /// or flag where one was, so that the pod still parses and the rules see the change.
    SameType,
}

#[derive(Clone, Debug)]
struct Mutation {
    target: Target,
    node: prop::sample::Index,
    change: Change,
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    let target = prop_oneof![
        1 => Just(Target::Any),
        2 => Just(Target::Read),
        2 => Just(Target::SameType),
    ];
    (target, any::<prop::sample::Index>(), arb_change()).prop_map(|(target, node, change)| {
        Mutation {
            target,
            node,
            change,
        }
    })
}

impl New {
    fn build(&self, pod: &J, nodes: &[(Vec<usize>, Vec<Seg>)]) -> J {
        match self {
            New::Null => J::Null,
            New::Bool(b) => J::Bool(*b),
            New::Num(i) => J::Num(NUMBERS[*i].into()),
            New::Str(i) => J::Str(STRINGS[*i].into()),
            New::EmptyArr => J::Arr(Vec::new()),
            New::EmptyObj => J::Obj(Vec::new()),
            New::Nested(depth) => {
                (0..*depth).fold(J::Arr(Vec::new()), |inner, _| J::Arr(vec![inner]))
            }
            New::Graft(i) => pod.at(&i.get(nodes).0).clone(),
        }
    }
}

fn same_type(a: &J, b: &J) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Apply `mutations` in order; returns the key paths of the nodes changed.
fn mutate(pod: &mut J, mutations: &[Mutation]) -> Vec<Vec<Seg>> {
    let mut changed = Vec::new();
    for (n, m) in mutations.iter().enumerate() {
        let mut nodes = Vec::new();
        pod.nodes(&mut Vec::new(), &mut Vec::new(), &mut nodes);
        let replacement = match &m.change {
            Change::Replace(new) => Some(new.build(pod, &nodes)),
            _ => None,
        };
        let read: Vec<_> = nodes.iter().filter(|(_, p)| is_read(p)).cloned().collect();
        let same: Vec<_> = match (m.target, &replacement) {
            (Target::SameType, Some(r)) => read
                .iter()
                .filter(|(at, _)| same_type(pod.at(at), r))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let pool = match m.target {
            _ if !same.is_empty() => &same,
            Target::Read | Target::SameType if !read.is_empty() => &read,
            _ => &nodes,
        };
        let (at, path) = m.node.get(pool).clone();
        // Member changes need a parent object; elsewhere the node becomes null.
        let member = match at.split_last() {
            Some((&i, parent)) if matches!(pod.at(parent), J::Obj(_)) => Some((parent, i)),
            _ => None,
        };
        let is_obj = matches!(pod.at(&at), J::Obj(_));
        let new = match (&m.change, member) {
            (Change::Replace(_), _) => replacement,
            (Change::Drop, Some((parent, i))) => {
                if let J::Obj(members) = pod.at_mut(parent) {
                    members.remove(i);
                }
                None
            }
            (Change::Duplicate { at_end, value }, Some((parent, i))) => {
                let copy = value.as_ref().map(|v| v.build(pod, &nodes));
                if let J::Obj(members) = pod.at_mut(parent) {
                    let (key, original) = members[i].clone();
                    let to = if *at_end { members.len() } else { i + 1 };
                    members.insert(to, (key, copy.unwrap_or(original)));
                }
                None
            }
            (Change::Unknown(value), _) if is_obj => {
                let value = value.build(pod, &nodes);
                if let J::Obj(members) = pod.at_mut(&at) {
                    members.push((format!("x-unknown-{n}"), value));
                }
                None
            }
            (Change::Reverse, _) if is_obj => {
                if let J::Obj(members) = pod.at_mut(&at) {
                    members.reverse();
                }
                None
            }
            _ => Some(J::Null),
        };
        if let Some(new) = new {
            *pod.at_mut(&at) = new;
        }
        changed.push(path);
    }
    changed
}

/// (line, column) of byte `offset` as serde_json counts them.
fn line_column(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count();
    (line, column)
}

/// The paths of the objects in `text` that have a key twice; none if it is not JSON.
fn objects_with_a_key_twice(text: &[u8]) -> Option<Vec<Vec<Seg>>> {
    fn walk(j: &J, path: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        match j {
            J::Arr(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk(item, path, out);
                    path.pop();
                }
            }
            J::Obj(members) => {
                let mut seen = std::collections::HashSet::new();
                if !members.iter().all(|(k, _)| seen.insert(k)) {
                    out.push(path.clone());
                }
                for (k, v) in members {
                    path.push(Seg::Key(k.clone()));
                    walk(v, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let j: J = serde_json::from_slice(text).ok()?;
    let mut out = Vec::new();
    walk(&j, &mut Vec::new(), &mut out);
    Some(out)
}

/// Where the auditor says a data error is: the path `serde_path_to_error` tracks while
/// the same bytes are parsed again (as `audit::input::explain` does), and the error; none
/// if the pod parses (as it may when the error was trailing text).
fn explain(text: &[u8]) -> Option<(Vec<Seg>, serde_json::Error)> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let mut track = serde_path_to_error::Track::new();
    let err = PodSeed(&NoSpecs)
        .deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track))
        .err()?;
    let path = track
        .path()
        .iter()
        .map(|seg| match seg {
            serde_path_to_error::Segment::Seq { index } => Seg::Index(*index),
            serde_path_to_error::Segment::Map { key } => Seg::Key(key.clone()),
            other => Seg::Key(other.to_string()),
        })
        .collect();
    Some((path, err))
}

/// What every parse of pod bytes must satisfy, whatever the bytes: it gives a view or an
/// error that says where, and reading through `serde_json::Value` first gives the same
/// view. Returns what the direct parse gave.
fn check_parse(text: &[u8]) -> Result<Result<PodView, serde_json::Error>, TestCaseError> {
    let direct = PodView::from_slice(text);
    if let Err(e) = &direct {
        let (line, column) = (e.line(), e.column());
        prop_assert!(line >= 1, "{}", e);
        prop_assert!(
            e.to_string()
                .ends_with(&format!(" at line {line} column {column}")),
            "the error names its position: {}",
            e
        );
        let lines = text.split(|&b| b == b'\n').count();
        prop_assert!(line <= lines, "{}: the text has {} lines", e, lines);
        // The auditor's second parse, which tracks the path, fails the same way (it
        // may pass a pod followed by trailing text: that is no data error).
        match explain(text) {
            Some((_, again)) => prop_assert_eq!(again.to_string(), e.to_string()),
            None => prop_assert!(!e.is_data(), "the path-tracking parse passes: {}", e),
        }
    }
    let through_value = serde_json::from_slice::<Value>(text).map(|v| PodView::from_value(&v));
    match (&direct, through_value) {
        (_, Err(value_err)) => {
            // A Value holds numbers in range, valid text and at most 128 levels; the
            // view skips what it does not read without building it.
            let msg = value_err.to_string();
            let skipped = [
                "recursion limit exceeded",
                "number out of range",
                "invalid unicode code point",
            ]
            .iter()
            .any(|m| msg.starts_with(m));
            prop_assert!(
                direct.is_err() || skipped,
                "read directly but not as a Value: {}",
                value_err
            );
        }
        (Ok(view), Ok(from_value)) => {
            let from_value = from_value.map_err(|e| {
                TestCaseError::fail(format!("read directly, not from its Value: {e}"))
            })?;
            let dups = objects_with_a_key_twice(text).expect("it is JSON");
            // Known divergence: a label or annotation key written twice keeps its first
            // value read directly, its last (what the API server keeps) through a Value.
            let twice = |at: &str| dups.iter().any(|p| show_path(p) == at);
            if twice("metadata.labels") || twice("metadata.annotations") {
                let rest = PodView {
                    labels: from_value.labels.clone(),
                    annotations: from_value.annotations.clone(),
                    ..view.clone()
                };
                prop_assert_eq!(rest, from_value);
            } else {
                prop_assert_eq!(view, &from_value);
            }
        }
        (Err(e), Ok(Ok(_))) => {
            // Only a key written twice reads differently: directly every occurrence is
            // read (and a typed object refuses the second), a Value keeps the last.
            let dups = objects_with_a_key_twice(text).expect("it is JSON");
            prop_assert!(
                !dups.is_empty(),
                "an error directly, a view from its Value: {}",
                e
            );
        }
        (Err(_), Ok(Err(_))) => {}
    }
    Ok(direct)
}

fn is_prefix(short: &[Seg], long: &[Seg]) -> bool {
    short.len() <= long.len() && long[..short.len()] == *short
}

/// The rules over a mutated view after its base: evaluation never panics, the tracker
/// keeps the view under its uid, and a snapshot repeated reports nothing new.
fn audit_after(
    base: &PodView,
    view: &PodView,
    now: Timestamp,
    restarts: u32,
) -> Result<(), TestCaseError> {
    let settings = RuleSettings::default();
    for prev in [None, Some(base), Some(view)] {
        let _ = evaluate(&Input {
            prev,
            cur: view,
            settings: &settings,
            now,
            restarts_in_window: restarts,
            pending_since: base.creation_timestamp,
        });
    }
    let mut tracker = Tracker::new();
    let _ = tracker.observe(base.clone(), base.latest_time().unwrap_or(now), &settings);
    // A mutated view may carry its base's resourceVersion (a duplicate) or a lower one
    // (stale): the tracker keeps the state it has.
    let kept = if tracker.arrival(view).is_audited() {
        view
    } else {
        base
    };
    let _ = tracker.observe(view.clone(), now, &settings);
    prop_assert_eq!(tracker.get(&view.uid), Some(kept));
    prop_assert_eq!(tracker.len(), if view.uid == base.uid { 1 } else { 2 });
    // The first repeat may still report: a rule can defer to another on a transition
    // (phase-mismatch to terminal-phase-regression) and hold on the unchanged snapshot.
    // Once a snapshot has followed itself, repeating it (a relist) reports nothing.
    let _ = tracker.observe(view.clone(), now, &settings);
    let again = tracker.observe(view.clone(), now, &settings);
    prop_assert!(
        again.is_empty(),
        "a repeated snapshot reports again: {:#?}",
        again
    );
    Ok(())
}

fn arb_now() -> impl Strategy<Value = Option<i64>> {
    prop::option::of(prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0),
        (T0 - 100_000)..(T0 + 10_000_000),
    ])
}

/// restartCount is an int32 and the offline auditor reads any file: at the limits the
/// restart rules must compare, not overflow.
#[test]
fn restart_counts_at_the_int32_limits_do_not_overflow() {
    let pod = |count: i32| {
        Pod::new("loop")
            .containers(&["app"])
            .phase("Running")
            .run("app", 5, true)
            .last("app", terminated(1, 1, 2))
            .restarts("app", count)
    };
    for (before, after) in [(i32::MAX, i32::MAX), (4, i32::MIN), (i32::MIN, i32::MAX)] {
        let mut seq = Seq::new();
        seq.push(pod(before)).push(pod(after));
        let _ = seq.audit();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn mutated_real_pods_give_the_same_view_or_an_error_that_says_where(
        base in 0..bases().len(),
        mutations in prop::collection::vec(arb_mutation(), 0..6),
        pretty in any::<bool>(),
        cut in prop::option::weighted(0.3, any::<prop::sample::Index>()),
        now in arb_now(),
        restarts in 0u32..20,
    ) {
        let (_, pod) = &bases()[base];
        let base_view = PodView::from_slice(pod.render(false).as_bytes()).expect("base parses");
        let mut mutated = pod.clone();
        let changed = mutate(&mut mutated, &mutations);
        let text = mutated.render(pretty);
        let full = check_parse(text.as_bytes())?;
        if mutations.is_empty() {
            prop_assert_eq!(full.as_ref().ok(), Some(&base_view));
        }
        if let Some(at) = cut {
            // Cut short: the error the whole text has before the cut, or one at the cut.
            let k = at.index(text.len());
            let prefix = &text.as_bytes()[..k];
            let e = match check_parse(prefix)? {
                Ok(view) => return Err(TestCaseError::fail(format!("{k} of {} bytes read as {view:?}", text.len()))),
                Err(e) => e,
            };
            let at_cut = (e.line(), e.column()) == line_column(prefix, k);
            let before_cut = full.as_ref().is_err_and(|f| f.to_string() == e.to_string());
            prop_assert!(at_cut || before_cut, "cut at {}: {}", k, e);
            return Ok(());
        }
        match &full {
            Err(e) => {
                // The text is JSON: the error is the model's, and the field the path
                // tracking names is on the path of a change.
                let (mut named, _) = explain(text.as_bytes())
                    .ok_or_else(|| TestCaseError::fail(format!("no path for {e}")))?;
                if named.is_empty() && e.to_string().starts_with("spec: ") {
                    named.push(Seg::Key("spec".into()));
                }
                prop_assert!(
                    changed.iter().any(|c| is_prefix(&named, c) || is_prefix(c, &named)),
                    "{}: {} is not on the path of a change {:?}",
                    e,
                    show_path(&named),
                    changed.iter().map(|c| show_path(c)).collect::<Vec<_>>()
                );
            }
            Ok(view) => {
                let now = match now {
                    Some(s) => Timestamp(s),
                    None => view.latest_time().unwrap_or(Timestamp(T0)),
                };
                audit_after(&base_view, view, now, restarts)?;
            }
        }
    }

    #[test]
    fn byte_edits_of_real_pods_never_panic_and_read_as_through_a_value(
        base in 0..bases().len(),
        pretty in any::<bool>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..8),
    ) {
        let (_, pod) = &bases()[base];
        let base_view = PodView::from_slice(pod.render(false).as_bytes()).expect("base parses");
        let mut bytes = pod.render(pretty).into_bytes();
        for (at, kind, byte) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => drop(bytes.drain(i..(i + 1 + usize::from(byte % 8)).min(bytes.len()))),
            }
        }
        if let Ok(view) = check_parse(&bytes)? {
            let now = view.latest_time().unwrap_or(Timestamp(T0));
            audit_after(&base_view, &view, now, 0)?;
        }
    }
}

// ---- An independent legal-lifecycle generator --------------------------------------
//
// A small kubelet written from the A6 table and B1/B6, not from the auditor's code: it
// runs an optional init container, then the regular containers; each exit is restarted
// or not by the pod policy, with the crash-loop back-off (immediate, then 10 s, 20 s ...).

#[derive(Clone, Copy, Debug)]
enum Exit {
    Ok,
    Fail,
    Oom,
}

#[derive(Clone, Debug)]
struct Plan {
    policy: &'static str,
    init: Option<Exit>,
    /// Per container, the exits it goes through (the last run may run forever).
    runs: Vec<Vec<(u8, Exit)>>,
}

fn arb_exit() -> impl Strategy<Value = Exit> {
    prop_oneof![Just(Exit::Ok), Just(Exit::Fail), Just(Exit::Oom)]
}

fn arb_plan() -> impl Strategy<Value = Plan> {
    (
        prop_oneof![Just("Always"), Just("OnFailure"), Just("Never")],
        prop::option::of(arb_exit()),
        prop::collection::vec(prop::collection::vec((1u8..120, arb_exit()), 0..5), 1..4),
    )
        .prop_map(|(policy, init, runs)| Plan { policy, init, runs })
}

fn restarts(policy: &str, e: Exit) -> bool {
    match policy {
        "Always" => true,
        "OnFailure" => !matches!(e, Exit::Ok),
        _ => false,
    }
}

fn exit_state(e: Exit, from: i64, to: i64) -> Value {
    match e {
        Exit::Ok => terminated(0, from, to),
        Exit::Fail => terminated(1, from, to),
        Exit::Oom => oom(from, to),
    }
}

/// The kubelet writes conditions and the snapshot is recorded.
fn snap(pod: &mut Pod, at: i64, out: &mut Vec<Pod>) {
    *pod = pod.clone().kubelet_conditions(at);
    out.push(pod.clone());
}

/// Play a plan and return the snapshots the API would show.
fn play(plan: &Plan) -> Vec<Pod> {
    let names: Vec<String> = (0..plan.runs.len()).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut pod = Pod::new("gen").policy(plan.policy);
    if plan.init.is_some() {
        pod = pod.init("setup");
    }
    pod = pod.containers(&refs);
    let mut out = Vec::new();
    snap(&mut pod, 0, &mut out);
    let mut now = 1;

    if let Some(e) = plan.init {
        pod = pod.run("setup", now, false);
        snap(&mut pod, now, &mut out);
        now += 5;
        pod = pod.state("setup", exit_state(e, now - 5, now));
        if !matches!(e, Exit::Ok) {
            if plan.policy == "Never" {
                pod = pod.phase("Failed");
                snap(&mut pod, now, &mut out);
                return out;
            }
            // Restarted once, then succeeds (back-off: the first restart is immediate).
            pod = pod.restart("setup", now);
            snap(&mut pod, now, &mut out);
            now += 5;
            pod = pod.state("setup", exit_state(Exit::Ok, now - 5, now));
        }
        snap(&mut pod, now, &mut out);
    }

    pod = pod.phase("Running");
    for n in &refs {
        pod = pod.run(n, now, true);
    }
    snap(&mut pod, now + 1, &mut out);
    now += 2;

    // Per container: index of the current run, start of that run, restarts so far, done?
    let mut run_idx = vec![0usize; refs.len()];
    let mut started_at = vec![now - 2; refs.len()];
    let mut restart_count = vec![0i64; refs.len()];
    let mut done = vec![false; refs.len()];
    let mut last_exit: Vec<Option<Exit>> = vec![None; refs.len()];
    loop {
        // The container whose current run ends first.
        let next = (0..refs.len())
            .filter(|&i| !done[i] && run_idx[i] < plan.runs[i].len())
            .min_by_key(|&i| started_at[i] + i64::from(plan.runs[i][run_idx[i]].0));
        let Some(i) = next else { break };
        let (dur, e) = plan.runs[i][run_idx[i]];
        let end = started_at[i] + i64::from(dur);
        now = now.max(end);
        pod = pod
            .state(refs[i], exit_state(e, started_at[i], end))
            .ready(refs[i], false);
        last_exit[i] = Some(e);
        run_idx[i] += 1;
        let restart = restarts(plan.policy, e);
        if !restart {
            done[i] = true;
        }
        pod = pod.phase(&phase_of(plan.policy, &done, &last_exit));
        snap(&mut pod, now, &mut out);
        if pod.0["status"]["phase"] == "Failed" || pod.0["status"]["phase"] == "Succeeded" {
            return out;
        }
        if restart {
            let backoff = if restart_count[i] == 0 {
                0
            } else {
                (10i64 << (restart_count[i] - 1).min(5)).min(300)
            };
            let at = now + backoff;
            restart_count[i] += 1;
            pod = pod.restart(refs[i], at).run(refs[i], at, true);
            started_at[i] = at;
            last_exit[i] = None;
            snap(&mut pod, at, &mut out);
        }
    }
    out
}

/// The phase from the A6 table: containers that are done (not restarting) decide once all
/// are done; Succeeded only if each exited 0.
fn phase_of(policy: &str, done: &[bool], last: &[Option<Exit>]) -> String {
    if policy == "Always" || !done.iter().all(|d| *d) {
        return "Running".into();
    }
    if last.iter().all(|e| matches!(e, Some(Exit::Ok))) {
        "Succeeded".into()
    } else {
        "Failed".into()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn legal_lifecycles_never_give_a_violation(plan in arb_plan()) {
        let mut seq = Seq::new();
        for p in play(&plan) {
            seq.push(p);
        }
        let findings = seq.audit();
        let bad: Vec<_> = findings
            .iter()
            .filter(|f| f.severity == Severity::Violation || f.rule == RuleId::PhaseMismatch)
            .collect();
        prop_assert!(bad.is_empty(), "{:?}\n{:#?}", plan, bad);
    }
}
