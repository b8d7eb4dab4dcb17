//! `imagegate bench`: validate latency as policy-server pays it (a fresh
//! instance per request: instantiate + `wapc_init` + validate) and as
//! `kwctl bench` measures it (one reused instance), plus instantiation
//! alone. A replayed session is rewound before every iteration so each one
//! sees the same host answers.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use serde::Serialize;

use crate::cli::args::EvalArgs;
use crate::runtime::admission::{self, AdmissionResponse};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub eval: EvalArgs,

    /// Measured iterations per scenario.
    #[arg(long, default_value_t = 1000)]
    pub iterations: usize,

    /// Measure each scenario for this long instead (seconds).
    #[arg(long, value_name = "SECONDS", conflicts_with = "iterations")]
    pub duration: Option<f64>,

    /// Unmeasured iterations before each scenario.
    #[arg(long, default_value_t = 50)]
    pub warmup: usize,

    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

/// Latency statistics in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    pub samples: usize,
    pub min_us: f64,
    pub p50_us: f64,
    pub p95_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
}

impl Stats {
    pub fn from_samples(samples: &mut [Duration]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        samples.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let pct = |p: f64| {
            let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            us(samples[rank.clamp(1, samples.len()) - 1])
        };
        let total: f64 = samples.iter().map(|d| us(*d)).sum();
        Some(Stats {
            samples: samples.len(),
            min_us: us(samples[0]),
            p50_us: pct(50.0),
            p95_us: pct(95.0),
            p99_us: pct(99.0),
            mean_us: total / samples.len() as f64,
        })
    }
}

#[derive(Debug, Serialize)]
struct Report {
    /// policy-server: fresh instance + wapc_init + validate, per request.
    fresh_instance_validate: Stats,
    /// kwctl bench: validate on one reused instance.
    reused_instance_validate: Stats,
    /// Store + instantiation + `_start`/`wapc_init` alone.
    instantiate: Stats,
    allowed: bool,
    cache_hits: Option<u64>,
    cache_misses: Option<u64>,
}

/// Runs `f` for warmup + measured iterations (or for `duration`); only `f`
/// is timed, `check` looks at each result afterwards.
fn measure<T>(
    args: &Args,
    mut f: impl FnMut() -> anyhow::Result<T>,
    mut check: impl FnMut(T) -> anyhow::Result<()>,
) -> anyhow::Result<Stats> {
    for _ in 0..args.warmup {
        check(f()?)?;
    }
    let mut samples = Vec::new();
    let until = args
        .duration
        .map(|s| Duration::try_from_secs_f64(s).context("invalid --duration"))
        .transpose()?
        .map(|d| Instant::now() + d);
    loop {
        match until {
            Some(t) if Instant::now() >= t => break,
            None if samples.len() >= args.iterations => break,
            _ => {}
        }
        let start = Instant::now();
        let result = f()?;
        samples.push(start.elapsed());
        check(result)?;
    }
    Stats::from_samples(&mut samples).context("no samples measured")
}

/// A 500 answer means the benchmark would measure a failure, not the policy.
fn check_response(r: &AdmissionResponse) -> anyhow::Result<()> {
    if let Some(status) = &r.status {
        if status.code == Some(500) {
            bail!(
                "the policy failed during the benchmark: {}",
                status.message.clone().unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Every iteration must answer exactly like the first evaluation (same host
/// answers, no state leaking between calls).
fn same_as(first: &AdmissionResponse, r: AdmissionResponse) -> anyhow::Result<()> {
    if &r != first {
        bail!(
            "an iteration answered differently from the first evaluation: {} instead of {}",
            serde_json::to_string(&r)?,
            serde_json::to_string(first)?
        );
    }
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let eval = args.eval.load()?;
    let sv = admission::validate_settings(&mut &eval.policy, &eval.settings);
    if !sv.valid {
        eprintln!(
            "Provided settings are not valid: {}",
            sv.message.unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    }
    // Host answers after validate_settings: every iteration replays from here.
    let mark = eval.capabilities.checkpoint();
    let first = admission::validate(&mut &eval.policy, &eval.request, &eval.settings);
    check_response(&first)?;

    let fresh = measure(
        args,
        || {
            eval.capabilities.rewind(mark);
            Ok(admission::validate(
                &mut &eval.policy,
                &eval.request,
                &eval.settings,
            ))
        },
        |r| same_as(&first, r),
    )?;
    let mut instance = eval
        .policy
        .instantiate()
        .map_err(|e| anyhow::anyhow!("cannot instantiate the policy: {e}"))?;
    let reused = measure(
        args,
        || {
            eval.capabilities.rewind(mark);
            Ok(admission::validate(
                &mut instance,
                &eval.request,
                &eval.settings,
            ))
        },
        |r| same_as(&first, r),
    )?;
    drop(instance);
    let instantiate = measure(
        args,
        || {
            eval.policy
                .instantiate()
                .map_err(|e| anyhow::anyhow!("cannot instantiate the policy: {e}"))
        },
        |instance| {
            drop(instance);
            Ok(())
        },
    )?;
    let stats = eval.capabilities.cache_stats();
    eval.capabilities.finish()?;
    let report = Report {
        fresh_instance_validate: fresh,
        reused_instance_validate: reused,
        instantiate,
        allowed: first.allowed,
        cache_hits: stats.as_ref().map(|s| s.hits()),
        cache_misses: stats.as_ref().map(|s| s.misses()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(r: &Report) {
    println!(
        "{:<44} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "scenario (µs)", "samples", "min", "p50", "p95", "p99", "mean"
    );
    for (name, s) in [
        (
            "fresh instance + validate (policy-server)",
            &r.fresh_instance_validate,
        ),
        (
            "reused instance validate (kwctl bench)",
            &r.reused_instance_validate,
        ),
        ("instantiate + wapc_init only", &r.instantiate),
    ] {
        println!(
            "{name:<44} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            s.samples, s.min_us, s.p50_us, s.p95_us, s.p99_us, s.mean_us
        );
    }
    println!("allowed: {}", r.allowed);
    match (r.cache_hits, r.cache_misses) {
        (Some(h), Some(m)) => println!("capability cache: {h} hits, {m} misses"),
        _ => println!("capability cache: not used (replayed session or disabled)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterations_must_match_the_first_answer() {
        let first = AdmissionResponse {
            uid: "u".into(),
            allowed: true,
            ..Default::default()
        };
        same_as(&first, first.clone()).unwrap();
        let other = AdmissionResponse {
            allowed: false,
            ..first.clone()
        };
        assert!(same_as(&first, other).is_err());
        let crashed = AdmissionResponse::internal_server_error("u", "boom");
        assert!(check_response(&crashed).is_err());
        assert!(check_response(&first).is_ok());
    }

    #[test]
    fn percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let s = Stats::from_samples(&mut samples).unwrap();
        assert_eq!(s.samples, 100);
        assert_eq!(s.min_us, 1.0);
        assert_eq!(s.p50_us, 50.0);
        assert_eq!(s.p95_us, 95.0);
        assert_eq!(s.p99_us, 99.0);
        assert!((s.mean_us - 50.5).abs() < 1e-9);
        assert!(Stats::from_samples(&mut []).is_none());
    }
}
