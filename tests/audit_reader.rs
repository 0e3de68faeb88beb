//! The reader's shortcuts (blanking managedFields and known specs before parsing) never
//! change what is read: every snapshot comes out exactly as a plain parse of it.

use podwarden::audit::input::{DocumentReader, What};
use podwarden_model::{PodView, RuleSettings, Timestamp, Tracker};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn arb_managed_fields() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        ("[a-z-]{1,12}", "[a-zA-Z:.\"\\\\{}\\[\\] ]{0,20}"),
        0..6,
    )
    .prop_map(|entries| {
        Value::Array(
            entries
                .into_iter()
                .map(|(manager, f)| {
                    json!({"manager": manager, "operation": "Update", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:metadata": {format!("f:{f}"): {}}, "f:status": {".": {}}}})
                })
                .collect(),
        )
    })
}

/// A pod as an API server might write it, in a shuffled key order.
fn arb_pod() -> impl Strategy<Value = (Value, Vec<Value>)> {
    (
        "[a-z0-9-]{1,20}",
        prop::option::of(any::<bool>()),
        prop::option::of("node-[0-9]"),
        prop::collection::btree_map("[a-z./-]{1,10}", "[a-z0-9]{0,8}", 0..4),
        arb_managed_fields(),
        prop::collection::vec("[a-z]{1,6}", 1..3),
        prop::collection::vec((any::<bool>(), 0i32..4, "Running|Pending|Failed"), 1..4),
        any::<u64>(),
    )
        .prop_map(|(name, owner, node, labels, managed, containers, steps, seed)| {
            let mut metadata = json!({"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                "labels": labels, "managedFields": managed, "annotations": {"note": "\"spec\": {\"x\": 1}"}});
            if let Some(controller) = owner {
                metadata["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "rs", "uid": "rs-1", "controller": controller}]);
            }
            let spec = json!({"restartPolicy": "Always", "nodeName": node,
                "containers": containers.iter().map(|c| json!({"name": c, "image": "img", "env": [{"name": "A", "value": "}]\"{"}]})).collect::<Vec<_>>()});
            let statuses: Vec<Value> = steps
                .iter()
                .enumerate()
                .map(|(i, (ready, restarts, phase))| {
                    json!({"phase": phase, "conditions": [{"type": "Ready", "status": if *ready { "True" } else { "False" },
                           "lastTransitionTime": Timestamp(1_785_578_400 + i as i64).to_string()}],
                           "containerStatuses": containers.iter().map(|c| json!({"name": c, "ready": ready, "restartCount": restarts,
                              "state": {"running": {"startedAt": "2026-08-01T10:00:00Z"}}})).collect::<Vec<_>>()})
                })
                .collect();
            let order = seed % 6;
            let pod = |status: &Value, rv: usize| {
                let mut m = metadata.clone();
                m["resourceVersion"] = json!(rv.to_string());
                let parts = [("metadata", m), ("spec", spec.clone()), ("status", status.clone())];
                let perm: [usize; 3] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]][order as usize];
                let mut obj = Map::new();
                obj.insert("kind".into(), json!("Pod"));
                for i in perm {
                    obj.insert(parts[i].0.into(), parts[i].1.clone());
                }
                Value::Object(obj)
            };
            let snapshots: Vec<Value> = statuses.iter().enumerate().map(|(i, s)| pod(s, i + 1)).collect();
            (json!(seed), snapshots)
        })
}

fn render(snapshots: &[Value], seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, pod) in snapshots.iter().enumerate() {
        let pretty = (seed >> i) & 1 == 1;
        let type_first = (seed >> (i + 8)) & 1 == 1;
        let obj = if pretty {
            serde_json::to_string_pretty(pod).unwrap()
        } else {
            pod.to_string()
        };
        let doc = match ((seed >> (i + 16)) & 1 == 1, type_first) {
            (false, _) => obj,
            (true, true) => format!("{{\"type\":\"MODIFIED\",\"object\":{obj}}}"),
            (true, false) => format!("{{\"object\":{obj},\n \"type\":\"MODIFIED\"}}"),
        };
        out.extend_from_slice(doc.as_bytes());
        out.push(b'\n');
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn shortcuts_never_change_a_snapshot((seed, snapshots) in arb_pod()) {
        let seed = seed.as_u64().unwrap_or(0);
        let bytes = render(&snapshots, seed);
        let mut reader = DocumentReader::from_vec(bytes);
        let mut tracker = Tracker::new();
        let mut got = Vec::new();
        while let Some(items) = reader.next_document(&tracker).unwrap() {
            for item in items {
                match item.what {
                    What::Snapshot { view, .. } => {
                        got.push(view.clone());
                        tracker.observe(view, Timestamp(0), &RuleSettings::default());
                    }
                    What::Unusable(reason) => prop_assert!(false, "{}: {}", item.at, reason),
                }
            }
        }
        let want: Vec<PodView> = snapshots.iter().map(|p| PodView::from_value(p).unwrap()).collect();
        // A controlled, bound pod's later snapshots share the spec read first.
        if want[0].controlled && want[0].spec.node_name.is_some() {
            for v in &got[1..] {
                prop_assert!(std::sync::Arc::ptr_eq(&v.spec, &got[0].spec));
            }
        }
        prop_assert_eq!(got, want);
    }
}
