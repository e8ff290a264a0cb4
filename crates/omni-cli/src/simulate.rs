//! `omni simulate`: a simulated contact center against a running engine (NATS_URL) or one
//! started in this process, with a report at the end; and the intake latency benchmark.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use omni_bus::{Bus, Metrics};
use omni_engine::{Engine, EngineConfig};
use omni_simulate::bench::{self, IntakeConfig, IntakeResult};
use omni_simulate::{Latency, Phase, Progress, SimulateConfig};
use serde::Serialize;

use crate::output::print_json;

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Agents to provision and sign in.
    #[arg(long, default_value_t = 50)]
    agents: usize,
    /// New customers per second of wall time, on average (Poisson arrivals). With
    /// --bench-intake: new conversations per second, at a fixed rate.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// How long customers keep arriving (30s, 2m, …).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    duration: Duration,
    /// The same seed provisions the same center and the same arrivals, and seeds every
    /// actor's decisions. Random when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Start the engine in this process (its log under --data, its own nats-server child)
    /// and stop it at the end; without it, NATS_URL names a running engine's server.
    #[arg(long)]
    start_engine: bool,
    /// The engine's data directory (with --start-engine or --bench-intake).
    #[arg(long, default_value = "./data")]
    data: PathBuf,
    /// The engine's clock runs this many times faster than the wall, and the simulated
    /// people with it (a demo wants 10–60). Against a running engine, use the engine's.
    #[arg(long, default_value_t = 1)]
    time_scale: u32,
    /// With --start-engine: where to serve its HTTP gateway (port 0: a free one; the URL is
    /// printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    http: SocketAddr,
    /// With --start-engine: the gateway's API token; without one, a token is generated and
    /// printed.
    #[arg(
        long = "token",
        env = "OMNI_API_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    tokens: Vec<String>,
    /// A running engine's NATS server (without --start-engine).
    #[arg(long, env = "NATS_URL")]
    nats_url: Option<String>,
    /// How long agents may take to finish their work once customers stop arriving.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    drain: Duration,
    /// Queues on each of the six channels.
    #[arg(long, default_value_t = 2)]
    queues_per_channel: usize,
    /// Benchmark instead: intake → offer latency at --rate for --duration, on an engine
    /// started in this process (a fresh one under DATA/bench-RATE, removed afterwards).
    #[arg(long)]
    bench_intake: bool,
    /// With --bench-intake: then raise the rate step by step, until offers stop keeping up,
    /// to find the highest sustained.
    #[arg(long, requires = "bench_intake")]
    ramp: bool,
    /// With --ramp: how long each step runs.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    step_duration: Duration,
    /// With --bench-intake: agents the conversations are offered to.
    #[arg(long, default_value_t = 100)]
    bench_agents: usize,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let runtime = tokio::runtime::Runtime::new()?;
    if args.bench_intake {
        return runtime.block_on(run_bench(&args));
    }
    runtime.block_on(run_simulation(&args))
}

/// Engine and service logs go to stderr, warnings only unless RUST_LOG says otherwise: the
/// report is the output.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// An engine of its own; `http` serves its gateway with these tokens (none: one generated).
fn engine_config(
    data: &Path,
    time_scale: u32,
    http: Option<(SocketAddr, Vec<String>)>,
) -> EngineConfig {
    let (http_addr, api_tokens) = http.map_or((None, Vec::new()), |(a, t)| (Some(a), t));
    EngineConfig {
        // Its own server, even when NATS_URL is set: two engines on one bus would share the
        // intake.
        nats_url: None,
        metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        time_scale,
        http_addr,
        api_tokens,
        ..EngineConfig::new(data)
    }
}

async fn run_simulation(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    anyhow::ensure!(args.agents > 0, "--agents must be at least 1");
    let config = SimulateConfig {
        agents: args.agents,
        rate: args.rate,
        duration: args.duration,
        seed: args.seed.unwrap_or_else(rand_seed),
        time_scale: args.time_scale.max(1),
        drain: args.drain,
        queues_per_channel: args.queues_per_channel.max(1),
    };
    let mut engine = None;
    let url = if args.start_engine {
        let tokens = crate::up::chosen_tokens(&args.tokens);
        let token_generated = tokens.is_empty();
        let http = Some((args.http, tokens));
        let started = Engine::start(engine_config(&args.data, config.time_scale, http))
            .await
            .context("starting the engine")?;
        eprintln!(
            "engine started: log {}, NATS {}, metrics {}",
            args.data.join("log").display(),
            started.nats_url,
            started
                .metrics_addr
                .map_or_else(|| "off".to_owned(), |a| format!("http://{a}/metrics"))
        );
        print_gateway(&started, token_generated);
        let url = started.nats_url.clone();
        engine = Some(started);
        url
    } else {
        args.nats_url.clone().context(
            "no engine to simulate against: set NATS_URL (or --nats-url) to a running engine's \
             NATS server, or pass --start-engine",
        )?
    };
    let client = omni_engine::connect(&url, "simulate").await?;
    let bus = Bus::new(client);
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut on_progress = |p: &Progress| bar.set_message(progress_line(p));
    let result = match engine.as_mut() {
        Some(engine) => tokio::select! {
            report = omni_simulate::run(bus, config, &mut on_progress) => report.map_err(anyhow::Error::from),
            failure = engine.failed() => Err(anyhow::Error::from(failure).context("the engine failed")),
        },
        None => omni_simulate::run(bus, config, &mut on_progress)
            .await
            .map_err(anyhow::Error::from),
    };
    bar.finish_and_clear();
    if let Some(engine) = engine {
        engine.shutdown().await.context("stopping the engine")?;
    }
    let report = result?;
    if args.json {
        print_json(&report)?;
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The gateway's URL and the dashboard's, with the token (shown only when generated here:
/// a token the user chose is theirs already).
fn print_gateway(engine: &Engine, token_generated: bool) {
    let (Some(addr), Some(token)) = (engine.http_addr, engine.api_tokens.first()) else {
        return;
    };
    let shown = if token_generated {
        token.as_str()
    } else {
        "$OMNI_API_TOKEN"
    };
    eprintln!("gateway: http://{addr} (API: http://{addr}/openapi.json; token {shown})");
    eprintln!("dashboard: http://{addr}/dashboard?access_token={shown}");
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn progress_line(p: &Progress) -> String {
    let phase = match p.phase {
        Phase::Provisioning => "provisioning",
        Phase::Running => "running",
        Phase::Draining => "draining",
        Phase::Reporting => "reporting",
    };
    let clock = if p.limit.is_zero() {
        String::new()
    } else {
        format!(
            " {:>3.0}s/{:.0}s",
            p.elapsed.as_secs_f64(),
            p.limit.as_secs_f64()
        )
    };
    format!(
        "{phase}{clock} | conversations {} started, {} handled, {} abandoned, {} open | offers {} | commands {} ({} refused)",
        p.started, p.handled, p.abandoned, p.open, p.offers, p.commands, p.rejected
    )
}

/// One step of the benchmark with what the engine's metrics say about it.
#[derive(Debug, Serialize)]
struct Step {
    #[serde(flatten)]
    result: IntakeResult,
    /// Group appends to the log (one fsync each) and what one carried.
    appends: u64,
    commands_per_append: f64,
    events_per_append: f64,
    append: Option<bench::Histogram>,
    /// From a command's arrival at the conversation service to its answer.
    command: Option<bench::Histogram>,
    route_requests: u64,
    /// CPU time over the measured run, in cores (CPU seconds per second): this process
    /// (engine, router and the benchmark's own client) and the nats-server child.
    cpu_omni_cores: Option<f64>,
    cpu_nats_cores: Option<f64>,
}

#[derive(Debug, Serialize)]
struct BenchReport {
    machine: String,
    round_trip_ms: Latency,
    /// fdatasync of a record written over preallocated space, and of one growing the file.
    fsync_ms: Latency,
    fsync_growing_ms: Latency,
    steps: Vec<Step>,
    max_sustained_rate: Option<f64>,
}

async fn run_bench(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let mut rates = vec![args.rate];
    if args.ramp {
        rates.extend(
            [
                1_000.0, 2_000.0, 3_000.0, 4_000.0, 4_500.0, 5_000.0, 5_500.0, 6_000.0, 7_000.0,
                8_000.0, 10_000.0, 12_000.0, 15_000.0, 20_000.0,
            ]
            .into_iter()
            .filter(|r| *r > args.rate),
        );
    }
    std::fs::create_dir_all(&args.data)?;
    let fsync_ms = bench::probe_fsync(&args.data, 300, false).context("probing fsync")?;
    let fsync_growing_ms = bench::probe_fsync(&args.data, 300, true).context("probing fsync")?;
    let mut round_trip_ms = Latency::default();
    let mut steps = Vec::new();
    let mut failures = 0;
    for (i, &rate) in rates.iter().enumerate() {
        let duration = if i == 0 {
            args.duration
        } else {
            args.step_duration
        };
        let dir = args.data.join(format!("bench-{rate:.0}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let mut engine = Engine::start(engine_config(&dir, 1, None))
            .await
            .context("starting the engine")?;
        let (url, metrics) = (engine.nats_url.clone(), Arc::clone(&engine.metrics));
        let step = tokio::select! {
            step = bench_step(&url, &metrics, args.bench_agents, rate, duration, i == 0) => step?,
            failure = engine.failed() => return Err(anyhow::Error::from(failure).context("the engine failed")),
        };
        engine.shutdown().await.context("stopping the engine")?;
        std::fs::remove_dir_all(&dir)?;
        if let Some(rtt) = step.1 {
            round_trip_ms = rtt;
        }
        let step = step.0;
        if !args.json {
            eprintln!("{}", step_line(&step));
        }
        // The ramp ends once offers have stopped keeping up twice in a row.
        failures = if step.result.keeps_up {
            0
        } else {
            failures + 1
        };
        steps.push(step);
        if args.ramp && failures >= 2 {
            break;
        }
    }
    let report = BenchReport {
        machine: machine(),
        round_trip_ms,
        fsync_ms,
        fsync_growing_ms,
        max_sustained_rate: steps
            .iter()
            .filter(|s| s.result.sustained)
            .map(|s| s.result.target_rate)
            .reduce(f64::max),
        steps,
    };
    if args.json {
        print_json(&report)?;
    } else {
        print_bench(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Provisions, warms up, runs one rate; the round-trip probe on the first step.
async fn bench_step(
    url: &str,
    metrics: &Arc<Metrics>,
    agents: usize,
    rate: f64,
    duration: Duration,
    probe: bool,
) -> anyhow::Result<(Step, Option<Latency>)> {
    let client = omni_engine::connect(url, "bench").await?;
    let bus = Bus::new(client);
    bench::provision(&bus, agents).await?;
    let rtt = if probe {
        Some(bench::probe_round_trip(&bus, 2_000).await?)
    } else {
        None
    };
    // Warm up connections, caches and the router's world.
    bench::intake(
        &bus,
        &IntakeConfig {
            rate: rate.min(1_000.0),
            duration: Duration::from_secs(1),
            grace: Duration::from_secs(2),
        },
    )
    .await?;
    let before = metrics.render();
    // CPU seconds so far of this process and of the NATS server.
    let cpu_now = || {
        (
            cpu_seconds("self"),
            nats_pid().and_then(|p| cpu_seconds(&p)),
        )
    };
    let cpu_before = cpu_now();
    let measured = std::time::Instant::now();
    let result = bench::intake(
        &bus,
        &IntakeConfig {
            rate,
            duration,
            grace: Duration::from_secs(2),
        },
    )
    .await?;
    let after = metrics.render();
    let cpu_after = cpu_now();
    let elapsed = measured.elapsed().as_secs_f64();
    let cores = |before: Option<f64>, after: Option<f64>| Some((after? - before?) / elapsed);
    // Let a backlog drain before the engine stops, so no request is cut off midway.
    let mut last = bench::counter(&after, "omni_commands_accepted_total");
    let since = std::time::Instant::now();
    while since.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = bench::counter(&metrics.render(), "omni_commands_accepted_total");
        if now == last {
            break;
        }
        last = now;
    }
    let delta = |name: &str| {
        bench::counter(&after, name).unwrap_or(0) - bench::counter(&before, name).unwrap_or(0)
    };
    let appends = bench::histogram(&after, "omni_append_latency_seconds").map_or(0, |h| h.count)
        - bench::histogram(&before, "omni_append_latency_seconds").map_or(0, |h| h.count);
    let per_append = |n: u64| {
        if appends > 0 {
            n as f64 / appends as f64
        } else {
            0.0
        }
    };
    let step = Step {
        appends,
        commands_per_append: per_append(
            delta("omni_commands_accepted_total") + delta("omni_commands_rejected_total"),
        ),
        events_per_append: per_append(delta("omni_events_appended_total")),
        // The engine's histograms cover the whole step, warm-up and setup included.
        append: bench::histogram(&after, "omni_append_latency_seconds"),
        command: bench::histogram(&after, "omni_command_latency_seconds"),
        route_requests: delta("omni_route_requests_total"),
        cpu_omni_cores: cores(cpu_before.0, cpu_after.0),
        cpu_nats_cores: cores(cpu_before.1, cpu_after.1),
        result,
    };
    Ok((step, rtt))
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

fn quarters(values: &[Option<f64>]) -> String {
    values.iter().map(|v| ms(*v)).collect::<Vec<_>>().join("/")
}

fn step_line(s: &Step) -> String {
    let r = &s.result;
    format!(
        "{:>7.0}/s for {:.0}s: sent {:.0}/s, offered {}/{} ({:.0}/s), intake→offer p50 {} p90 {} p99 {} p99.9 {} max {} ms (by quarter: p50 {}, p99 {}), answer p50 {} p99 {} ms, {} appends ({:.1} commands, {:.1} events each), CPU omni {} nats {} cores: {}",
        r.target_rate,
        r.duration_secs,
        r.send_rate,
        r.offered,
        r.sent,
        r.offer_rate,
        ms(r.intake_to_offer_ms.p50),
        ms(r.intake_to_offer_p90_ms),
        ms(r.intake_to_offer_ms.p99),
        ms(r.intake_to_offer_p999_ms),
        ms(r.intake_to_offer_ms.max),
        quarters(&r.p50_by_quarter_ms),
        quarters(&r.p99_by_quarter_ms),
        ms(r.start_answer_ms.p50),
        ms(r.start_answer_ms.p99),
        s.appends,
        s.commands_per_append,
        s.events_per_append,
        ms(s.cpu_omni_cores),
        ms(s.cpu_nats_cores),
        match (r.sustained, r.keeps_up) {
            (true, _) => "sustained",
            (false, true) => "kept up, p99 too high",
            (false, false) => "NOT kept up",
        }
    )
}

fn print_bench(report: &BenchReport) {
    println!("machine: {}", report.machine);
    println!(
        "probes: NATS request-reply round trip p50 {} p99 {} ms; fdatasync in place p50 {} p99 {} ms, growing the file p50 {} p99 {} ms",
        ms(report.round_trip_ms.p50),
        ms(report.round_trip_ms.p99),
        ms(report.fsync_ms.p50),
        ms(report.fsync_ms.p99),
        ms(report.fsync_growing_ms.p50),
        ms(report.fsync_growing_ms.p99)
    );
    println!(
        "{:>8} {:>8} {:>9} {:>8} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9}",
        "rate/s",
        "sent/s",
        "offered",
        "offers/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9",
        "max ms",
        "ans p50",
        "ans p99",
        "cmds/app",
        "appends",
        "cpu omni",
        "cpu nats",
        "sustained"
    );
    for s in &report.steps {
        let r = &s.result;
        println!(
            "{:>8.0} {:>8.0} {:>9} {:>8.0} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>9} {:>9.1} {:>8} {:>9} {:>9} {:>9}",
            r.target_rate,
            r.send_rate,
            r.offered,
            r.offer_rate,
            ms(r.intake_to_offer_ms.p50),
            ms(r.intake_to_offer_p90_ms),
            ms(r.intake_to_offer_ms.p99),
            ms(r.intake_to_offer_p999_ms),
            ms(r.intake_to_offer_ms.max),
            ms(r.start_answer_ms.p50),
            ms(r.start_answer_ms.p99),
            s.commands_per_append,
            s.appends,
            ms(s.cpu_omni_cores),
            ms(s.cpu_nats_cores),
            match (r.sustained, r.keeps_up) {
                (true, _) => "yes",
                (false, true) => "no (p99)",
                (false, false) => "no",
            }
        );
    }
    for s in &report.steps {
        println!(
            "intake → offer at {:.0}/s by quarter of the run: p50 {} ms, p99 {} ms",
            s.result.target_rate,
            quarters(&s.result.p50_by_quarter_ms),
            quarters(&s.result.p99_by_quarter_ms)
        );
    }
    for s in &report.steps {
        let h = |h: &Option<bench::Histogram>| {
            h.as_ref().map_or_else(
                || "-".to_owned(),
                |h| {
                    format!(
                        "mean {:.2} ms, p50 ≤ {} ms, p99 ≤ {} ms",
                        h.mean_ms,
                        ms(h.p50_at_most_ms),
                        ms(h.p99_at_most_ms)
                    )
                },
            )
        };
        println!(
            "engine at {:.0}/s: group append (fsync included) {}; command in the service {}; {} routing requests",
            s.result.target_rate,
            h(&s.append),
            h(&s.command),
            s.route_requests
        );
    }
    match report.max_sustained_rate {
        Some(rate) => println!("highest sustained rate: {rate:.0} new conversations/s"),
        None => println!("no rate was sustained"),
    }
}

/// User plus system CPU seconds of a process (`self` or a pid), from `/proc` (Linux; clock
/// ticks of 1/100 s).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The nats-server this process started.
fn nats_pid() -> Option<String> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "nats-server")
        })
}

/// CPU model and core count, as the OS names them.
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}
