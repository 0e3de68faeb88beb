//! Output of `podwarden audit`: an aligned table and a summary, or one JSON finding per line.

use std::io::{self, Write};

use super::Summary;
use podwarden_model::{Finding, RuleId, Severity};

/// Print findings as an aligned table.
pub fn write_table(out: &mut impl Write, findings: &[Finding]) -> io::Result<()> {
    if findings.is_empty() {
        return Ok(());
    }
    let pod = |f: &Finding| format!("{}/{}", f.namespace, f.pod);
    let headers = ["SEVERITY", "RULE", "POD", "RV"];
    let mut widths = headers.map(str::len);
    for f in findings {
        let cells = [
            f.severity.as_str().len(),
            f.rule.as_str().len(),
            pod(f).len(),
            f.resource_version.len(),
        ];
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c);
        }
    }
    let [ws, wr, wp, wv] = widths;
    writeln!(
        out,
        "{:ws$}  {:wr$}  {:wp$}  {:wv$}  MESSAGE",
        headers[0], headers[1], headers[2], headers[3]
    )?;
    for f in findings {
        writeln!(
            out,
            "{:ws$}  {:wr$}  {:wp$}  {:wv$}  {}",
            f.severity.as_str(),
            f.rule.as_str(),
            pod(f),
            f.resource_version,
            f.message
        )?;
    }
    Ok(())
}

/// One finding as one line of JSON.
pub fn write_json(out: &mut impl Write, finding: &Finding) -> io::Result<()> {
    serde_json::to_writer(&mut *out, finding)?;
    out.write_all(b"\n")
}

pub fn write_summary(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    let sev = |x: Severity| s.by_severity.get(&x).copied().unwrap_or(0);
    writeln!(
        out,
        "\npods: {}, snapshots: {}, findings: {} ({} violation, {} warning, {} info)",
        s.pods,
        s.snapshots,
        s.findings(),
        sev(Severity::Violation),
        sev(Severity::Warning),
        sev(Severity::Info)
    )?;
    if s.duplicates > 0 || s.stale > 0 {
        writeln!(
            out,
            "snapshots not audited: {} duplicate (resourceVersion seen before), {} stale (older resourceVersion)",
            s.duplicates, s.stale
        )?;
    }
    if s.out_of_scope > 0 {
        writeln!(
            out,
            "snapshots outside the policy's scope: {}",
            s.out_of_scope
        )?;
    }
    if s.unusable > 0 {
        writeln!(out, "unusable documents: {}", s.unusable)?;
    }
    let width = s
        .by_rule
        .keys()
        .map(|r| r.as_str().len())
        .max()
        .unwrap_or(0);
    for (rule, n) in &s.by_rule {
        writeln!(
            out,
            "  {:width$}  {:>5}  {}",
            rule.as_str(),
            n,
            severity_word(*rule)
        )?;
    }
    Ok(())
}

/// The summary as the last line of `-o json`: `{"summary": {...}}`, told apart from the
/// findings by its one key.
pub fn write_json_summary(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    let by_rule: serde_json::Map<String, serde_json::Value> = s
        .by_rule
        .iter()
        .map(|(r, n)| (r.as_str().to_string(), (*n).into()))
        .collect();
    let by_severity: serde_json::Map<String, serde_json::Value> = s
        .by_severity
        .iter()
        .map(|(sev, n)| (sev.as_str().to_string(), (*n).into()))
        .collect();
    let line = serde_json::json!({"summary": {
        "pods": s.pods,
        "snapshots": s.snapshots,
        "duplicates": s.duplicates,
        "stale": s.stale,
        "outOfScope": s.out_of_scope,
        "unusable": s.unusable,
        "findings": s.findings(),
        "bySeverity": by_severity,
        "byRule": by_rule,
    }});
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

fn severity_word(r: RuleId) -> &'static str {
    r.severity().as_str()
}
