//! `podwarden audit [FILE|-] [-o table|json] [--policy FILE]`.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::input::{DocumentReader, What};
use super::{Auditor, Scope, report};
use podwarden_model::{Finding, RuleSettings, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// An aligned table, then a summary.
    Table,
    /// One finding per line, printed as found, then one `{"summary": ...}` line.
    Json,
}

/// Audit recorded pod snapshots (kubectl get pods -o json|yaml, -w, --output-watch-events).
///
/// Exit status: 0 no violation, 1 at least one violation, 2 some input was unusable.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// File to read; `-` or nothing reads standard input.
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// A PodLifecyclePolicy (YAML or JSON) whose selector and rule settings apply.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The time the input ends at: deadline rules (stuck-pending, stuck-terminating) are
    /// evaluated once more at it after the last snapshot. An RFC 3339 time, or `wall` for
    /// this machine's clock (for a `kubectl get` taken just now). Default: the latest time
    /// in the input.
    #[arg(long, value_name = "TIME", value_parser = parse_now)]
    pub now: Option<Timestamp>,
}

/// `--now`: an RFC 3339 time or `wall`.
fn parse_now(s: &str) -> Result<Timestamp, String> {
    if s == "wall" {
        return Ok(Timestamp(jiff::Timestamp::now().as_second()));
    }
    Timestamp::parse(s).ok_or_else(|| {
        "expected an RFC 3339 time such as 2026-08-01T10:00:00Z, or `wall` for this machine's clock"
            .to_string()
    })
}

pub const EXIT_VIOLATION: u8 = 1;
pub const EXIT_UNUSABLE: u8 = 2;

pub fn run(args: &AuditArgs) -> ExitCode {
    let (settings, scope) = match &args.policy {
        Some(path) => match super::policy::load(path) {
            Ok(x) => x,
            Err(e) => {
                // The error names the file.
                eprintln!("podwarden: --policy {e}");
                return ExitCode::from(EXIT_UNUSABLE);
            }
        },
        None => (RuleSettings::default(), Scope::default()),
    };
    let source: Box<dyn Read> = match args.file.as_deref() {
        None => Box::new(io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(io::stdin().lock()),
        Some(p) => match File::open(p) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("podwarden: cannot read {}: {e}", p.display());
                return ExitCode::from(EXIT_UNUSABLE);
            }
        },
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let reader = DocumentReader::new(source);
    let auditor = Auditor::new(settings, scope).ending_at(args.now);
    match audit_documents(reader, auditor, args.output, &mut out, &mut io::stderr()) {
        Ok(code) => code,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podwarden: {e}");
            ExitCode::from(EXIT_UNUSABLE)
        }
    }
}

/// Audit what `reader` yields with `auditor`, writing findings to `out` and unusable
/// documents to `err`; returns the exit status.
pub fn audit_documents(
    mut reader: DocumentReader<impl Read>,
    mut auditor: Auditor,
    output: Output,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<ExitCode> {
    let mut table: Vec<Finding> = Vec::new();
    let mut emit = |found: Vec<Finding>| -> io::Result<()> {
        match output {
            Output::Json => {
                for f in &found {
                    report::write_json(out, f)?;
                }
                if !found.is_empty() {
                    out.flush()?;
                }
            }
            Output::Table => table.extend(found),
        }
        Ok(())
    };
    while let Some(items) = reader.next_document(auditor.tracker())? {
        for item in items {
            match item.what {
                What::Snapshot { view, deleted } => emit(auditor.audit(view, deleted))?,
                What::Unusable(reason) => {
                    auditor.note_unusable();
                    writeln!(err, "podwarden: {}: {reason}", item.at)?;
                }
            }
        }
    }
    emit(auditor.finish())?;
    let summary = auditor.summary();
    match output {
        Output::Table => {
            report::write_table(out, &table)?;
            report::write_summary(out, summary)?;
        }
        Output::Json => report::write_json_summary(out, summary)?,
    }
    out.flush()?;
    Ok(if summary.unusable > 0 {
        ExitCode::from(EXIT_UNUSABLE)
    } else if summary.violations() > 0 {
        ExitCode::from(EXIT_VIOLATION)
    } else {
        ExitCode::SUCCESS
    })
}
