//! Container scripts: what a simulated container does, from the pod annotation
//! `sandbox.podwarden.dev/script.<container-name>`.
//!
//! A script is a list of runs separated by `;`; the last run repeats forever. A run is
//! whitespace-separated words: `run=<duration>`, then exactly one outcome (`exit=<code>`,
//! `oom` or `forever`), and optionally `ready=<duration>` (or `ready=never`). Durations
//! are a number with a unit: `ms`, `s`, `m`, `h` (`1.5s`, `300ms`, `2m`).
//!
//! `run=2s exit=1; run=5s exit=0`: fails after 2 s, then exits cleanly after 5 s on every
//! later start. `forever` may omit `run=`. Without `ready=` a container is ready 1 s
//! after it starts (if it still runs then).

use std::fmt;

/// The annotation prefix; the container name follows.
pub const ANNOTATION_PREFIX: &str = "sandbox.podwarden.dev/script.";

/// Readiness delay when a run does not say.
pub const DEFAULT_READY_MS: u64 = 1000;

/// Longest script accepted (characters) and most runs: scripts are outside input.
pub const MAX_SCRIPT_LEN: usize = 4096;
pub const MAX_RUNS: usize = 64;
/// Longest duration accepted: one year.
const MAX_DURATION_MS: u64 = 365 * 24 * 3600 * 1000;

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exit(i32),
    /// Killed for exceeding its memory limit (exit 137, reason `OOMKilled`).
    Oom,
    Forever,
}

/// One run of a container, from start to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Milliseconds from start to the end (unused for `Forever`).
    pub run_ms: u64,
    pub outcome: Outcome,
    /// Milliseconds from start until ready; `None`: never ready.
    pub ready_ms: Option<u64>,
}

impl Run {
    /// A container without a script: runs forever, ready after 1 s.
    pub const DEFAULT: Run = Run {
        run_ms: 0,
        outcome: Outcome::Forever,
        ready_ms: Some(DEFAULT_READY_MS),
    };
}

/// A parsed script: at least one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    runs: Vec<Run>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            runs: vec![Run::DEFAULT],
        }
    }
}

impl Script {
    /// The run of the `n`-th start (from 0); the last run repeats.
    pub fn run(&self, n: usize) -> Run {
        let last = self.runs.len().saturating_sub(1);
        self.runs.get(n.min(last)).copied().unwrap_or(Run::DEFAULT)
    }

    pub fn runs(&self) -> &[Run] {
        &self.runs
    }
}

/// What is wrong with a script, in words a pod's author can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError(pub String);

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScriptError {}

fn fail<T>(msg: impl Into<String>) -> Result<T, ScriptError> {
    Err(ScriptError(msg.into()))
}

/// Parses a script (see the module documentation).
pub fn parse(text: &str) -> Result<Script, ScriptError> {
    if text.len() > MAX_SCRIPT_LEN {
        return fail(format!(
            "script is {} characters long; at most {MAX_SCRIPT_LEN} are accepted",
            text.len()
        ));
    }
    let parts: Vec<&str> = text.split(';').collect();
    // A trailing `;` is allowed; an empty run elsewhere is not.
    let parts = match parts.split_last() {
        Some((last, rest)) if last.trim().is_empty() && !rest.is_empty() => rest,
        _ => &parts[..],
    };
    if parts.len() > MAX_RUNS {
        return fail(format!(
            "script has {} runs; at most {MAX_RUNS} are accepted",
            parts.len()
        ));
    }
    let mut runs = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let run = parse_run(part).map_err(|e| ScriptError(format!("run {}: {e}", i + 1)))?;
        runs.push(run);
    }
    Ok(Script { runs })
}

fn parse_run(text: &str) -> Result<Run, ScriptError> {
    let mut run_ms: Option<u64> = None;
    let mut outcome: Option<Outcome> = None;
    let mut ready: Option<Option<u64>> = None;
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return fail("empty run (expected e.g. \"run=2s exit=1\")");
    }
    for word in words {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        let set_outcome = |outcome: &mut Option<Outcome>, o: Outcome| {
            if outcome.is_some() {
                return fail(format!(
                    "{word:?}: a run ends one way only (exit=<code>, oom or forever)"
                ));
            }
            *outcome = Some(o);
            Ok(())
        };
        match (key, value) {
            ("run", Some(v)) => {
                if run_ms.is_some() {
                    return fail("run= given twice");
                }
                run_ms = Some(duration_ms(v)?);
            }
            ("ready", Some("never")) => {
                if ready.is_some() {
                    return fail("ready= given twice");
                }
                ready = Some(None);
            }
            ("ready", Some(v)) => {
                if ready.is_some() {
                    return fail("ready= given twice");
                }
                ready = Some(Some(duration_ms(v)?));
            }
            ("exit", Some(v)) => {
                let code: i32 = v
                    .parse()
                    .ok()
                    .filter(|c| (0..=255).contains(c))
                    .ok_or_else(|| {
                        ScriptError(format!("exit code {v:?} is not a number from 0 to 255"))
                    })?;
                set_outcome(&mut outcome, Outcome::Exit(code))?;
            }
            ("oom", None) => set_outcome(&mut outcome, Outcome::Oom)?,
            ("forever", None) => set_outcome(&mut outcome, Outcome::Forever)?,
            ("run" | "ready" | "exit", None) => {
                return fail(format!("{key:?} needs a value ({key}=...)"));
            }
            ("oom" | "forever", Some(_)) => {
                return fail(format!("{key:?} takes no value"));
            }
            _ => {
                return fail(format!(
                    "unknown word {word:?} (expected run=<duration>, exit=<code>, oom, forever, ready=<duration>)"
                ));
            }
        }
    }
    let Some(outcome) = outcome else {
        return fail("the run does not say how it ends (exit=<code>, oom or forever)");
    };
    let run_ms = match (run_ms, outcome) {
        (Some(ms), _) => ms,
        (None, Outcome::Forever) => 0,
        (None, _) => return fail("the run does not say how long it runs (run=<duration>)"),
    };
    Ok(Run {
        run_ms,
        outcome,
        ready_ms: ready.unwrap_or(Some(DEFAULT_READY_MS)),
    })
}

/// `1.5s`, `300ms`, `2m`, `1h` in milliseconds.
fn duration_ms(text: &str) -> Result<u64, ScriptError> {
    let bad = || {
        ScriptError(format!(
            "{text:?} is not a duration (a number with ms, s, m or h, e.g. 2s)"
        ))
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(bad()),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let ms = (value * scale).round();
    if !ms.is_finite() || ms < 0.0 || ms > MAX_DURATION_MS as f64 {
        return fail(format!(
            "duration {text:?} is out of range (at most 365 days)"
        ));
    }
    Ok(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(run_ms: u64, outcome: Outcome, ready_ms: Option<u64>) -> Run {
        Run {
            run_ms,
            outcome,
            ready_ms,
        }
    }

    #[test]
    fn good_scripts() {
        let cases: Vec<(&str, &str, Vec<Run>)> = vec![
            (
                "one failing run",
                "run=2s exit=1",
                vec![run(2000, Outcome::Exit(1), Some(1000))],
            ),
            (
                "two runs, the last repeats",
                "run=2s exit=1; run=5s exit=0",
                vec![
                    run(2000, Outcome::Exit(1), Some(1000)),
                    run(5000, Outcome::Exit(0), Some(1000)),
                ],
            ),
            (
                "oom with readiness",
                "run=1500ms oom ready=500ms",
                vec![run(1500, Outcome::Oom, Some(500))],
            ),
            (
                "forever without run=",
                "forever",
                vec![run(0, Outcome::Forever, Some(1000))],
            ),
            (
                "forever, never ready",
                "run=1s forever ready=never",
                vec![run(1000, Outcome::Forever, None)],
            ),
            (
                "minutes, hours, fractions, any order, trailing ;",
                "exit=3 run=1.5m; ready=2s run=1h exit=0;",
                vec![
                    run(90_000, Outcome::Exit(3), Some(1000)),
                    run(3_600_000, Outcome::Exit(0), Some(2000)),
                ],
            ),
            (
                "extra whitespace",
                "  run=1s   exit=255 ",
                vec![run(1000, Outcome::Exit(255), Some(1000))],
            ),
        ];
        for (case, text, runs) in cases {
            let script = parse(text).unwrap_or_else(|e| panic!("{case}: {text:?}: {e}"));
            assert_eq!(script.runs(), &runs[..], "{case}");
        }
    }

    #[test]
    fn bad_scripts_name_the_problem() {
        let cases: [(&str, &str, &str); 14] = [
            ("empty", "", "empty run"),
            ("blank run in the middle", "run=1s exit=0;;forever", "run 2"),
            ("no outcome", "run=1s", "how it ends"),
            ("no duration", "exit=1", "how long"),
            ("two outcomes", "run=1s exit=1 oom", "one way only"),
            ("unknown word", "run=1s exit=1 fast", "fast"),
            ("bad unit", "run=1d exit=0", "1d"),
            ("no unit", "run=10 exit=0", "\"10\""),
            ("negative", "run=-1s exit=0", "-1s"),
            ("exit out of range", "run=1s exit=300", "300"),
            ("exit not a number", "run=1s exit=x", "\"x\""),
            ("value missing", "run exit=0", "needs a value"),
            ("oom with value", "run=1s oom=yes", "takes no value"),
            ("duplicate run", "run=1s run=2s exit=0", "twice"),
        ];
        for (case, text, needle) in cases {
            match parse(text) {
                Ok(s) => panic!("{case}: {text:?} parsed as {s:?}"),
                Err(e) => assert!(
                    e.to_string().contains(needle),
                    "{case}: {text:?}: {e} should mention {needle:?}"
                ),
            }
        }
        assert!(parse(&"run=1s exit=0;".repeat(2000)).is_err(), "too long");
        assert!(parse(&"forever;".repeat(100)).is_err(), "too many runs");
    }

    #[test]
    fn last_run_repeats() {
        let s = parse("run=1s exit=1; run=2s exit=0").unwrap();
        assert_eq!(s.run(0).outcome, Outcome::Exit(1));
        assert_eq!(s.run(1).outcome, Outcome::Exit(0));
        assert_eq!(s.run(7).outcome, Outcome::Exit(0));
        assert_eq!(Script::default().run(3), Run::DEFAULT);
    }
}
