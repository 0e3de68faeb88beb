//! The README's rule and metrics references against what runs: every rule of
//! `RuleId::ALL` has an entry with its severity, its Event reason and an example that
//! `podwarden audit examples/every-rule.yaml` really prints; every metric family the
//! controller's registry exposes has a row with its type and its labels. A rule or a
//! metric added without its documentation fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use podwarden::controller::events::reason;
use podwarden::controller::metrics::Metrics;
use podwarden::controller::shard::Shard;
use podwarden_model::RuleId;

const README: &str = include_str!("../README.md");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/every-rule.yaml");

/// The text of a section, from its heading (`## Rules`, `### Metrics`) up to the next
/// heading of the same or a higher level.
fn section(heading: &str) -> &'static str {
    let level = heading.split(' ').next().unwrap();
    let start = README
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no section `{heading}`"));
    let body = &README[start + 1..];
    let end = body
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| {
            let line = &body[i..];
            (1..=level.len()).any(|n| line.starts_with(&format!("{} ", "#".repeat(n))))
        })
        .unwrap_or(body.len());
    &body[..end]
}

/// Each `#### ` entry of a section: its heading line and its body (up to the next
/// heading of any level).
fn entries(text: &str) -> Vec<(&str, &str)> {
    text.split("\n#### ")
        .skip(1)
        .map(|e| {
            let (heading, body) = e.split_once('\n').unwrap_or((e, ""));
            (heading, body.split("\n#").next().unwrap_or(body))
        })
        .collect()
}

/// Messages by rule, as `podwarden audit -o json` prints them for the example file.
fn example_findings() -> BTreeMap<String, Vec<String>> {
    let out = Command::new(env!("CARGO_BIN_EXE_podwarden"))
        .args(["audit", "-o", "json", EXAMPLE])
        .output()
        .expect("podwarden runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the example holds violations and nothing unusable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut by_rule: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let (Some(rule), Some(message)) = (v["rule"].as_str(), v["message"].as_str()) {
            by_rule
                .entry(rule.to_string())
                .or_default()
                .push(message.to_string());
        }
    }
    by_rule
}

#[test]
fn the_rule_reference_has_every_rule_with_its_severity_and_a_real_example() {
    let rules = section("## Rules");
    let examples = example_findings();
    let entries = entries(rules);
    let mut problems = Vec::new();
    for &rule in RuleId::ALL {
        let (id, severity) = (rule.as_str(), rule.severity().as_str());
        if !rules.contains(&format!("| `{id}` | {severity} |")) {
            problems.push(format!(
                "the rules table has no row `| `{id}` | {severity} |`"
            ));
        }
        let heading = format!("`{id}` ({severity})");
        let found: Vec<&str> = entries
            .iter()
            .filter(|(h, _)| *h == heading)
            .map(|(_, body)| *body)
            .collect();
        let [body] = found[..] else {
            problems.push(format!(
                "want exactly one entry `#### {heading}`, found {}",
                found.len()
            ));
            continue;
        };
        for part in ["**Checks**", "**Upstream**", "**Example**"] {
            if !body.contains(part) {
                problems.push(format!("{id}: the entry has no {part}"));
            }
        }
        let why = if severity == "violation" {
            "**Why definite**"
        } else {
            "**Why not definite**"
        };
        if !body.contains(why) {
            problems.push(format!("{id}: the entry has no {why}"));
        }
        let event = format!("Event `{}`", reason(rule));
        if !body.contains(&event) {
            problems.push(format!("{id}: the entry does not name its {event}"));
        }
        match examples.get(id) {
            None => problems.push(format!(
                "{id}: examples/every-rule.yaml has no pod that breaks it; add one"
            )),
            Some(messages) => {
                if !messages.iter().any(|m| body.contains(&format!("`{m}`"))) {
                    problems.push(format!(
                        "{id}: the entry's example is not what `podwarden audit examples/every-rule.yaml` prints; it prints {messages:?}"
                    ));
                }
            }
        }
    }
    // No entry for a rule that does not exist (renamed, removed).
    let ids: BTreeSet<String> = RuleId::ALL
        .iter()
        .map(|r| format!("`{}` ({})", r.as_str(), r.severity()))
        .collect();
    for (heading, _) in &entries {
        if heading.starts_with('`') && !ids.contains(*heading) {
            problems.push(format!("an entry for no rule: `#### {heading}`"));
        }
    }
    assert!(
        problems.is_empty(),
        "README ## Rules:\n{}",
        problems.join("\n")
    );
}

/// A family of the text exposition: its name as queried (counters with `_total`), its
/// type and its label names (`le` of histograms left out).
#[derive(Debug)]
struct Family {
    name: String,
    kind: String,
    labels: BTreeSet<String>,
}

fn families(exposition: &str) -> Vec<Family> {
    let mut out: Vec<Family> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').expect("# TYPE name type");
            let name = match kind {
                "counter" if !name.ends_with("_total") => format!("{name}_total"),
                _ => name.to_string(),
            };
            Family {
                name,
                kind: kind.to_string(),
                labels: BTreeSet::new(),
            }
        })
        .collect();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let Some((sample, rest)) = line.split_once('{') else {
            continue;
        };
        let family = out
            .iter_mut()
            .filter(|f| sample.starts_with(f.name.trim_end_matches("_total")))
            .max_by_key(|f| f.name.len())
            .unwrap_or_else(|| panic!("a sample of no family: {line}"));
        let labels = rest.split_once('}').expect("closing brace").0;
        for pair in labels.split("\",") {
            let key = pair.split_once("=\"").expect("key=\"value\"").0;
            if key != "le" {
                family.labels.insert(key.to_string());
            }
        }
    }
    out
}

#[test]
fn the_metrics_reference_has_every_family_with_its_type_and_labels() {
    let families = families(&Metrics::new().encode());
    let reference = section("### Metrics");
    let rows: Vec<&str> = reference.lines().filter(|l| l.starts_with("| `")).collect();
    assert!(families.len() >= 20, "{families:?}");
    let mut problems = Vec::new();
    for f in &families {
        let prefix = format!("| `{}` | {} |", f.name, f.kind);
        let Some(row) = rows.iter().find(|r| r.starts_with(&prefix)) else {
            problems.push(format!("no row starting `{prefix}`"));
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        let labels = cells.get(2).copied().unwrap_or("");
        for label in &f.labels {
            if !labels.contains(&format!("`{label}`")) {
                problems.push(format!("{}: the labels cell lacks `{label}`", f.name));
            }
        }
    }
    // No row for a family the controller does not export.
    let names: BTreeSet<&str> = families.iter().map(|f| f.name.as_str()).collect();
    for row in &rows {
        let name = row.trim_start_matches("| `").split('`').next().unwrap();
        if name.starts_with("podwarden_") && !names.contains(name) {
            problems.push(format!("a row for no exported family: {name}"));
        }
    }
    // Run in shards, every series carries `shard`: the reference says so.
    let shard: Shard = "1/4".parse().unwrap();
    let sharded = Metrics::for_shard(Some(shard)).encode();
    assert!(sharded.contains("shard=\"1/4\""));
    if !reference.contains("`shard`") {
        problems.push("the reference does not mention the `shard` label".into());
    }
    assert!(
        problems.is_empty(),
        "README ### Metrics:\n{}",
        problems.join("\n")
    );
}
