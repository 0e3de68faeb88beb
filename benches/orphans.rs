//! Orphan recreation: `cargo bench --bench orphans`.
//!
//! First, under chaos, many seeds (`CHAOS_RUNS=N` runs, default 200; `CHAOS_SEED=S` the
//! first seed, default 1000; `CHAOS_RUNS=0` skips it).
//! Each run is the scenario of `tests/orphan_chaos` (two replicas killed and restarted,
//! watches closed, 410 Gone and server errors, five nodes failing in a random order);
//! the summary counts duplicate replacements, missed recreations and replacements of
//! pods without evidence (each must be 0), and the time to converge after the chaos.
//!
//! Then, on a cluster at speed 1: the time from fencing evidence to replacement for 40
//! pods lost on four nodes at once (eviction, shutdown, disk failure, node deleted) with
//! the default `--create-qps 5`; and leader failover with controller-runtime's lease
//! timings (`FAILOVERS=N`, default 3).

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
    if runs > 0 {
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
            percentile(&mut converge, 0.5).as_secs_f64(),
            percentile(&mut converge, 0.99).as_secs_f64()
        );
        println!("  failed runs: {} {failed:?}", failed.len());
    }

    let mut figures = runtime.block_on(orphan_chaos::latency::recreate_latency());
    println!(
        "evidence -> replacement at speed 1 ({} losses on 4 nodes at once, --create-qps 5): p50 {:.2} s, p99 {:.2} s, max {:.2} s; not replaced: {}",
        figures.recreate.len(),
        percentile(&mut figures.recreate, 0.5).as_secs_f64(),
        percentile(&mut figures.recreate, 0.99).as_secs_f64(),
        percentile(&mut figures.recreate, 1.0).as_secs_f64(),
        figures.missing
    );
    let failovers: usize = std::env::var("FAILOVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    if failovers > 0 {
        let mut took = runtime.block_on(orphan_chaos::latency::failover(failovers));
        println!(
            "failover (leader killed, lease 15 s / renew 10 s / retry 2 s): {} runs, min {:.1} s, max {:.1} s",
            took.len(),
            percentile(&mut took, 0.0).as_secs_f64(),
            percentile(&mut took, 1.0).as_secs_f64()
        );
    }
    if !failed.is_empty() || figures.missing > 0 {
        std::process::exit(1);
    }
}

fn percentile(values: &mut [std::time::Duration], p: f64) -> std::time::Duration {
    if values.is_empty() {
        return std::time::Duration::ZERO;
    }
    values.sort();
    values[((values.len() - 1) as f64 * p).round() as usize]
}
