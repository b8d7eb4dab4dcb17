//! `imagegate bench`: validate latency as policy-server pays it (a fresh
//! instance per request: instantiate + `wapc_init` + validate) and as
//! `kwctl bench` measures it (one reused instance), plus instantiation
//! alone. A replayed session is rewound before every iteration so each one
//! sees the same host answers.
//!
//! With `--floor`, a no-op waPC module (the host's floor: `make bench` builds
//! one from `noop-policy/`) runs the same scenarios, iteration for iteration
//! beside the policy so that load on the machine hits both alike, and the
//! policy's own cost above the floor is reported. `--instructions` adds the
//! wasm instructions each scenario executes (wasmtime fuel): deterministic,
//! so comparable across runs on a shared machine where time is not.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::capabilities::Capabilities;
use crate::cli::args::EvalArgs;
use crate::runtime::admission::{self, AdmissionRequest, AdmissionResponse};
use crate::runtime::{Invoke, Policy, RuntimeConfig};

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

    /// A no-op waPC module (the host's floor): measured beside the policy,
    /// and the policy's own cost above it reported.
    #[arg(long, value_name = "FILE")]
    pub floor: Option<PathBuf>,

    /// Also count the wasm instructions each scenario executes (wasmtime
    /// fuel; the module is compiled a second time with fuel metering).
    #[arg(long)]
    pub instructions: bool,

    /// Print one Markdown table row named LABEL (the `make bench` table):
    /// p50 of floor, policy and own cost, fresh then reused, then own
    /// instructions. Needs `--floor`.
    #[arg(long, value_name = "LABEL", requires = "floor")]
    pub row: Option<String>,

    /// Print machine-readable JSON.
    #[arg(long, conflicts_with = "row")]
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

/// The three scenarios of one module.
#[derive(Debug, Serialize)]
struct Timings {
    /// policy-server: fresh instance + wapc_init + validate, per request.
    fresh_instance_validate: Stats,
    /// kwctl bench: validate on one reused instance.
    reused_instance_validate: Stats,
    /// Store + instantiation + `_start`/`wapc_init` alone.
    instantiate: Stats,
}

/// Wasm instructions executed (wasmtime fuel).
#[derive(Debug, Serialize)]
struct Instructions {
    /// Instantiation, `wapc_init` and one validate.
    fresh_instance_validate: u64,
    /// One validate on an instance that has already answered it.
    reused_instance_validate: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    policy: Timings,
    instructions: Option<Instructions>,
    /// The same scenarios on the `--floor` module.
    floor: Option<Timings>,
    floor_instructions: Option<Instructions>,
    allowed: bool,
    cache_hits: Option<u64>,
    cache_misses: Option<u64>,
}

/// One thing measured: runs once, returns how long its measured part took
/// (it checks its answer outside that part).
type Scenario<'a> = Box<dyn FnMut() -> anyhow::Result<Duration> + 'a>;

/// Runs every scenario for warmup + measured iterations (or for
/// `duration`), one iteration of each in turn, so that a busy machine slows
/// them alike.
fn measure(args: &Args, scenarios: &mut [Scenario<'_>]) -> anyhow::Result<Vec<Stats>> {
    for _ in 0..args.warmup {
        for s in scenarios.iter_mut() {
            s()?;
        }
    }
    let mut samples = vec![Vec::new(); scenarios.len()];
    let until = args
        .duration
        .map(|s| Duration::try_from_secs_f64(s).context("invalid --duration"))
        .transpose()?
        .map(|d| Instant::now() + d);
    loop {
        match until {
            Some(t) if Instant::now() >= t => break,
            None if samples[0].len() >= args.iterations => break,
            _ => {}
        }
        for (s, out) in scenarios.iter_mut().zip(&mut samples) {
            out.push(s()?);
        }
    }
    samples
        .iter_mut()
        .map(|s| Stats::from_samples(s).context("no samples measured"))
        .collect()
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

/// What every scenario of one module shares.
struct Bench<'a> {
    policy: &'a Policy,
    capabilities: &'a Capabilities,
    /// Host answers after validate_settings: every iteration replays from here.
    mark: usize,
    request: &'a AdmissionRequest,
    settings: &'a Map<String, Value>,
}

impl Bench<'_> {
    fn validate(&self, invoker: &mut impl Invoke) -> AdmissionResponse {
        self.capabilities.rewind(self.mark);
        admission::validate(invoker, self.request, self.settings)
    }

    /// The first answer, which every iteration must repeat.
    fn first(&self) -> anyhow::Result<AdmissionResponse> {
        let first = self.validate(&mut { self.policy });
        check_response(&first)?;
        Ok(first)
    }

    /// Fresh, reused, instantiate.
    fn scenarios<'s>(&'s self, first: &'s AdmissionResponse) -> anyhow::Result<[Scenario<'s>; 3]> {
        let mut instance = self
            .policy
            .instantiate()
            .map_err(|e| anyhow::anyhow!("cannot instantiate the policy: {e}"))?;
        Ok([
            Box::new(move || {
                let start = Instant::now();
                let r = self.validate(&mut { self.policy });
                let elapsed = start.elapsed();
                same_as(first, r).map(|()| elapsed)
            }),
            Box::new(move || {
                let start = Instant::now();
                let r = self.validate(&mut instance);
                let elapsed = start.elapsed();
                same_as(first, r).map(|()| elapsed)
            }),
            Box::new(move || {
                let start = Instant::now();
                let instance = self
                    .policy
                    .instantiate()
                    .map_err(|e| anyhow::anyhow!("cannot instantiate the policy: {e}"))?;
                let elapsed = start.elapsed();
                drop(instance);
                Ok(elapsed)
            }),
        ])
    }

    /// Instructions of a fresh instance's first validate, and of a reused
    /// one's after it has answered a few times (whatever it caches is built).
    fn instructions(&self, counting: &Policy) -> anyhow::Result<Instructions> {
        let counted = |instance: &crate::runtime::ReusedInstance<'_>| {
            instance
                .instructions()
                .context("the module was not compiled to count instructions")
        };
        let mut instance = counting
            .instantiate()
            .map_err(|e| anyhow::anyhow!("cannot instantiate the policy: {e}"))?;
        check_response(&self.validate(&mut instance))?;
        let fresh = counted(&instance)?;
        for _ in 0..3 {
            self.validate(&mut instance);
        }
        let before = counted(&instance)?;
        self.validate(&mut instance);
        Ok(Instructions {
            fresh_instance_validate: fresh,
            reused_instance_validate: counted(&instance)? - before,
        })
    }
}

/// The module at `path` compiled to count instructions.
fn counting_policy(
    path: &std::path::Path,
    args: &Args,
    config: &RuntimeConfig,
    capabilities: &Arc<Capabilities>,
) -> anyhow::Result<Policy> {
    let wasm = args.eval.live.registry.read_module(path)?;
    let config = RuntimeConfig {
        count_instructions: true,
        ..config.clone()
    };
    Policy::new(&wasm, config, capabilities.clone())
        .with_context(|| format!("cannot load policy module {}", path.display()))
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
    let config = eval.policy.config().clone();
    let floor_policy = match &args.floor {
        None => None,
        Some(path) => Some(
            Policy::from_file(path, config.clone(), eval.capabilities.clone())
                .context("cannot load the --floor module")?,
        ),
    };
    let bench = Bench {
        policy: &eval.policy,
        capabilities: &eval.capabilities,
        mark: eval.capabilities.checkpoint(),
        request: &eval.request,
        settings: &eval.settings,
    };
    let floor = floor_policy
        .as_ref()
        .map(|policy| Bench { policy, ..bench });
    let first = bench.first()?;
    let floor_first = floor.as_ref().map(Bench::first).transpose()?;

    let mut scenarios: Vec<Scenario<'_>> = bench.scenarios(&first)?.into();
    if let (Some(floor), Some(first)) = (&floor, &floor_first) {
        scenarios.extend(floor.scenarios(first)?);
    }
    let mut stats = measure(args, &mut scenarios)?.into_iter();
    drop(scenarios);
    let mut timings = || -> Option<Timings> {
        Some(Timings {
            fresh_instance_validate: stats.next()?,
            reused_instance_validate: stats.next()?,
            instantiate: stats.next()?,
        })
    };
    let policy = timings().context("no timings measured")?;
    let floor_timings = timings();

    let (instructions, floor_instructions) = if args.instructions {
        let counting =
            counting_policy(args.eval.policy_file()?, args, &config, &eval.capabilities)?;
        let own = bench.instructions(&counting)?;
        let floor_count = match (&floor, &args.floor) {
            (Some(floor), Some(path)) => Some(floor.instructions(&counting_policy(
                path,
                args,
                &config,
                &eval.capabilities,
            )?)?),
            _ => None,
        };
        (Some(own), floor_count)
    } else {
        (None, None)
    };

    let cache = eval.capabilities.cache_stats();
    eval.capabilities.finish()?;
    let report = Report {
        policy,
        instructions,
        floor: floor_timings,
        floor_instructions,
        allowed: first.allowed,
        cache_hits: cache.as_ref().map(|s| s.hits()),
        cache_misses: cache.as_ref().map(|s| s.misses()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if let Some(label) = &args.row {
        println!("{}", row(label, &report));
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// `| label | floor | policy | own | floor | policy | own | own instr. | own instr. |`
/// (fresh, then reused; p50 in µs).
fn row(label: &str, r: &Report) -> String {
    let mut cells = vec![label.to_string()];
    let own = |floor: &Stats, policy: &Stats| {
        [
            format!("{:.1}", floor.p50_us),
            format!("{:.1}", policy.p50_us),
            format!("**{:.1}**", policy.p50_us - floor.p50_us),
        ]
    };
    if let Some(floor) = &r.floor {
        cells.extend(own(
            &floor.fresh_instance_validate,
            &r.policy.fresh_instance_validate,
        ));
        cells.extend(own(
            &floor.reused_instance_validate,
            &r.policy.reused_instance_validate,
        ));
    }
    let instructions =
        |pick: fn(&Instructions) -> u64| match (&r.instructions, &r.floor_instructions) {
            (Some(p), Some(f)) => (pick(p) as i64 - pick(f) as i64).to_string(),
            _ => "-".to_string(),
        };
    cells.push(instructions(|i| i.fresh_instance_validate));
    cells.push(instructions(|i| i.reused_instance_validate));
    format!("| {} |", cells.join(" | "))
}

fn print_table(r: &Report) {
    println!(
        "{:<44} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "scenario (µs)", "samples", "min", "p50", "p95", "p99", "mean"
    );
    let names = [
        "fresh instance + validate (policy-server)",
        "reused instance validate (kwctl bench)",
        "instantiate + wapc_init only",
    ];
    let modules = [("", Some(&r.policy)), ("floor: ", r.floor.as_ref())];
    for (prefix, timings) in modules {
        let Some(t) = timings else { continue };
        let stats = [
            &t.fresh_instance_validate,
            &t.reused_instance_validate,
            &t.instantiate,
        ];
        for (name, s) in names.iter().zip(stats) {
            println!(
                "{:<44} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                format!("{prefix}{name}"),
                s.samples,
                s.min_us,
                s.p50_us,
                s.p95_us,
                s.p99_us,
                s.mean_us
            );
        }
    }
    if let Some(floor) = &r.floor {
        let own = |f: &Stats, p: &Stats| p.p50_us - f.p50_us;
        println!(
            "own cost above the floor (p50): fresh {:.1} µs, reused {:.1} µs, instantiate {:.1} µs",
            own(
                &floor.fresh_instance_validate,
                &r.policy.fresh_instance_validate
            ),
            own(
                &floor.reused_instance_validate,
                &r.policy.reused_instance_validate
            ),
            own(&floor.instantiate, &r.policy.instantiate),
        );
    }
    if let Some(i) = &r.instructions {
        let with_floor = |pick: fn(&Instructions) -> u64| match &r.floor_instructions {
            Some(f) => format!(
                "{} (floor {}, own {})",
                pick(i),
                pick(f),
                pick(i) as i64 - pick(f) as i64
            ),
            None => pick(i).to_string(),
        };
        println!(
            "wasm instructions: fresh {}, reused {}",
            with_floor(|i| i.fresh_instance_validate),
            with_floor(|i| i.reused_instance_validate),
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
