//! Orphan recreation under chaos, many seeds: `cargo bench --bench orphans`
//! (`CHAOS_RUNS=N` runs, default 200; `CHAOS_SEED=S` the first seed, default 1000).
//!
//! Each run is the scenario of `tests/orphan_chaos` (two replicas killed and restarted,
//! watches closed, 410 Gone and server errors, five nodes failing in a random order);
//! the summary counts duplicate replacements, missed recreations and replacements of
//! pods without evidence (each must be 0), and the time to converge after the chaos.

#[path = "../tests/orphan_chaos/mod.rs"]
mod orphan_chaos;

fn main() {
    let runs: u64 = std::env::var("CHAOS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let first: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    let (mut losses, mut recreated, mut kills, mut faults) = (0, 0, 0, 0);
    let mut converge = Vec::new();
    for seed in first..first + runs {
        let report = runtime.block_on(orphan_chaos::run(seed));
        losses += report.fenced_losses;
        recreated += report.recreated;
        kills += report.replica_kills;
        faults += report.api_faults;
        converge.push(report.converge);
        if !report.ok() {
            eprintln!("seed {seed}: {report:#?}");
            failed.push(seed);
        }
    }
    converge.sort();
    let pct = |p: f64| converge[((converge.len() - 1) as f64 * p) as usize];
    println!(
        "orphan chaos: {runs} runs (seeds {first}..{}), {:.0} s",
        first + runs,
        started.elapsed().as_secs_f64()
    );
    println!(
        "  fenced losses {losses}, recreated {recreated}; replica kills {kills}; API faults injected {faults}"
    );
    println!(
        "  converge after the chaos: p50 {:.2} s, p99 {:.2} s",
        pct(0.5).as_secs_f64(),
        pct(0.99).as_secs_f64()
    );
    println!("  failed runs: {} {failed:?}", failed.len());
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
