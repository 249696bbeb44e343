//! Durable runs on PostgreSQL: drive-flow's durable worker against a hand-written baseline
//! that does the minimum for the same guarantee, on the same server, in the same run.
//!
//! ```text
//! DATABASE_URL=postgres://127.0.0.1/test \
//!     cargo run --release --features postgres --example durable_bench
//! DATABASE_URL=... cargo run --features postgres --example durable_bench -- --smoke
//! ```
//!
//! Workloads: a *chain* (each event triggers the next: every hop is one event finishing and
//! the next one starting) and a *fan-out* (one event triggers n − 1 events; the run ends
//! when all have run), each of 100 and 10 000 events, executed by 1, 2 and 4 worker processes (this
//! binary, started again with `--worker SYSTEM`, each with `--concurrency` tasks).
//!
//! The baseline is one plain queue table. A worker claims one row with
//! `SELECT … ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`, runs the body, and in the same
//! transaction deletes the row, inserts what it triggers and updates the run's row (the
//! join counter and the result), then commits: one claim and one commit per event. The row
//! lock is its lease: a worker that dies drops its connection, its transaction rolls back
//! and the row is claimable again, so every completion is applied exactly once and every
//! body runs at least once, the guarantee drive-flow's durable runs give.
//!
//! drive-flow runs the same graphs, built with `DriveBuilder` (events `chain<n>_<i>` and
//! `fan<n>_<i>`, the same in every process), with `drive.worker(&store)` in each worker
//! process and `drive.durable(&store)` submitting; its run ends are read by polling the
//! run's status every millisecond, as the baseline polls its run row.
//!
//! Figures: events per second from the submission of a run to its end as the submitting
//! process sees it, and per hop (chain only) the time from one body returning to the next
//! body starting, p50 and p99, read from the bodies' own clocks (`CLOCK_REALTIME`, one
//! machine). `--smoke` (20 and 200 events, 1 and 2 workers) only shows every cell runs and
//! checks the results; its figures mean nothing. `--only baseline` or `--only drive-flow`
//! keeps one system. The schema `df_bench_<pid>` is created in the database of
//! `DATABASE_URL` and dropped at the end.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, Row};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One event's body as its worker saw it: its run, its place in the run, and when the body
/// started and returned (ns since the Unix epoch).
#[derive(Clone, Copy, Debug)]
struct Timing {
    run: i64,
    step: i64,
    start: u128,
    end: u128,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    Chain,
    FanOut,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Chain => "chain",
            Workload::FanOut => "fan-out",
        }
    }
    fn code(self) -> i16 {
        match self {
            Workload::Chain => 0,
            Workload::FanOut => 1,
        }
    }
    /// What the run's result must be: the chain adds 1 per event to its input 0; the
    /// fan-out's join adds up the steps 1..n of its n − 1 branches.
    fn expected(self, n: i64) -> i64 {
        match self {
            Workload::Chain => n,
            Workload::FanOut => (n - 1) * n / 2,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum System {
    Baseline,
    DriveFlow,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Baseline => "baseline",
            System::DriveFlow => "drive-flow",
        }
    }
    fn parse(name: &str) -> Option<System> {
        match name {
            "baseline" => Some(System::Baseline),
            "drive-flow" => Some(System::DriveFlow),
            _ => None,
        }
    }
}

const SYSTEMS: [System; 2] = [System::Baseline, System::DriveFlow];

struct Config {
    url: String,
    sizes: Vec<i64>,
    workers: Vec<usize>,
    concurrency: usize,
    /// Runs of each cell: small runs are repeated so that a cell lasts long enough to read.
    repeat: fn(i64) -> usize,
    systems: Vec<System>,
    started: Instant,
    /// How long one run may take before it is cancelled and the cell marked over budget.
    budget: Duration,
}

fn arg_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Ok(url) = std::env::var("DATABASE_URL") else {
        return Err(
            "set DATABASE_URL to a PostgreSQL database the benchmark may create a schema in, \
                    e.g. DATABASE_URL=postgres://127.0.0.1/test"
                .into(),
        );
    };
    let rt = tokio::runtime::Runtime::new()?;
    if let Some(system) = arg_value(&args, "--worker") {
        let schema = arg_value(&args, "--schema").ok_or("--worker needs --schema")?;
        let concurrency: usize = arg_value(&args, "--concurrency").unwrap_or("4").parse()?;
        let sizes: Vec<i64> = arg_value(&args, "--sizes")
            .unwrap_or("")
            .split(',')
            .filter_map(|n| n.parse().ok())
            .collect();
        return match System::parse(system) {
            Some(System::Baseline) => rt.block_on(baseline::worker(&url, schema, concurrency)),
            Some(System::DriveFlow) => {
                rt.block_on(durable::worker(&url, schema, concurrency, &sizes))
            }
            None => Err(format!("unknown system `{system}`").into()),
        };
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let systems = match arg_value(&args, "--only") {
        Some(name) => vec![System::parse(name).ok_or_else(|| format!("unknown system `{name}`"))?],
        None => SYSTEMS.to_vec(),
    };
    let config = if smoke {
        Config {
            url,
            sizes: vec![20, 200],
            workers: vec![1, 2],
            concurrency: 2,
            repeat: |_| 2,
            systems,
            started: Instant::now(),
            budget: Duration::from_secs(120),
        }
    } else {
        Config {
            url,
            sizes: vec![100, 10_000],
            workers: vec![1, 2, 4],
            concurrency: 4,
            repeat: |n| if n <= 100 { 20 } else { 1 },
            systems,
            started: Instant::now(),
            budget: Duration::from_secs(120),
        }
    };
    let list = |name: &str| -> Option<Vec<i64>> {
        arg_value(&args, name).map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect())
    };
    let mut config = config;
    if let Some(sizes) = list("--sizes") {
        config.sizes = sizes;
    }
    if let Some(seconds) = list("--budget").and_then(|b| b.first().copied()) {
        config.budget = Duration::from_secs(seconds.max(1) as u64);
    }
    if let Some(workers) = list("--workers") {
        config.workers = workers.into_iter().map(|n| n as usize).collect();
    }
    rt.block_on(bench(config, smoke))
}

struct Cell {
    system: System,
    workload: Workload,
    n: i64,
    workers: usize,
    events_per_s: f64,
    hop_p50_us: Option<f64>,
    hop_p99_us: Option<f64>,
    /// The run went over its budget and was cancelled: `events_per_s` counts the events it
    /// completed within the budget.
    over_budget: bool,
}

async fn bench(config: Config, smoke: bool) -> Result<(), BoxError> {
    let started = Instant::now();
    let schema = format!("df_bench_{}", std::process::id());
    let mut admin = PgConnection::connect(&config.url).await?;
    let server: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut admin)
        .await?;
    println!(
        "durable benchmark{} — PostgreSQL {server}, {} cores; {} tasks per worker process",
        if smoke {
            " (smoke: figures mean nothing)"
        } else {
            ""
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        config.concurrency,
    );
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful figures");
    }
    admin
        .execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}").as_str())
        .await?;
    let result = cells(&config, &schema).await;
    admin
        .execute(
            format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; DROP SCHEMA IF EXISTS {schema}_df CASCADE"
            )
            .as_str(),
        )
        .await?;
    let cells = result?;
    print_table(&cells, &config);
    println!("\ntotal time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn cells(config: &Config, schema: &str) -> Result<Vec<Cell>, BoxError> {
    let mut cells = Vec::new();
    for &system in &config.systems {
        let mut flow = None;
        match system {
            System::Baseline => baseline::create(&config.url, schema).await?,
            System::DriveFlow => flow = Some(durable::Submitter::new(config, schema).await?),
        }
        let pool = pool(&config.url, schema, 2).await?;
        for &workers in &config.workers {
            for &n in &config.sizes {
                // Worker processes that know the graphs of this size only (in a drive of
                // its own, as an application would have), started before the clock.
                let mut fleet = Fleet::start(system, workers, config, schema, n)?;
                for workload in [Workload::Chain, Workload::FanOut] {
                    let runs = (config.repeat)(n);
                    let begin = Instant::now();
                    let mut ids = Vec::new();
                    let mut over_budget = None;
                    for _ in 0..runs {
                        let (run, result) = match &mut flow {
                            None => {
                                let run = baseline::submit(&pool, workload, n).await?;
                                (run, baseline::wait(&pool, run).await?)
                            }
                            Some(flow) => match flow.run(workload, n, config.budget).await? {
                                durable::Outcome::Done(run, result) => (run, result),
                                durable::Outcome::OverBudget(completed) => {
                                    over_budget = Some(completed);
                                    break;
                                }
                            },
                        };
                        if result != workload.expected(n) {
                            return Err(format!(
                                "{} {} of {n} events: result {result}, expected {}",
                                system.name(),
                                workload.name(),
                                workload.expected(n)
                            )
                            .into());
                        }
                        ids.push(run);
                    }
                    let elapsed = begin.elapsed().as_secs_f64();
                    let events = match over_budget {
                        Some(completed) => ids.len() as f64 * n as f64 + completed as f64,
                        None => n as f64 * runs as f64,
                    };
                    cells.push(Cell {
                        system,
                        workload,
                        n,
                        workers,
                        events_per_s: events / elapsed,
                        hop_p50_us: None,
                        hop_p99_us: None,
                        over_budget: over_budget.is_some(),
                    });
                    eprintln!("{}", row(&cells[cells.len() - 1]));
                    if over_budget.is_some() {
                        ids.clear(); // no hops of a cancelled chain
                    }
                    fleet.mark(cells.len() - 1, ids);
                }
                let timings = fleet.stop()?;
                for (index, ids) in std::mem::take(&mut fleet.cells) {
                    let cell = &mut cells[index];
                    if cell.workload != Workload::Chain {
                        continue;
                    }
                    if ids.is_empty() {
                        continue;
                    }
                    let mut hops = hops(&timings, &ids, cell.n)?;
                    hops.sort_by(f64::total_cmp);
                    cell.hop_p50_us = percentile(&hops, 0.50);
                    cell.hop_p99_us = percentile(&hops, 0.99);
                }
                eprintln!(
                    "{} with {workers} worker(s), {n} events: done at {:.0} s",
                    system.name(),
                    config.started.elapsed().as_secs_f64()
                );
            }
        }
    }
    Ok(cells)
}

/// The hops of these chain runs, in µs: the next body's start minus the last body's end.
/// Every step of every run must have run at least once; a step run twice (it never is
/// without faults) counts with its last run.
fn hops(timings: &[Timing], runs: &[i64], n: i64) -> Result<Vec<f64>, BoxError> {
    let mut hops = Vec::new();
    for &run in runs {
        let mut steps: Vec<Option<Timing>> = vec![None; n as usize];
        for t in timings.iter().filter(|t| t.run == run) {
            if let Some(slot) = steps.get_mut(t.step as usize) {
                *slot = Some(*t);
            }
        }
        for pair in steps.windows(2) {
            match pair {
                [Some(a), Some(b)] => hops.push((b.start as f64 - a.end as f64) / 1_000.0),
                _ => return Err(format!("run {run}: a step of the chain has no timing").into()),
            }
        }
    }
    Ok(hops)
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[index])
}

/// One line of the table.
fn row(c: &Cell) -> String {
    let us = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
    format!(
        "{:<10} {:<8} {:>6} {:>7} {:>10} {:>11} {:>11}",
        c.system.name(),
        c.workload.name(),
        c.n,
        c.workers,
        format!(
            "{:.0}{}",
            c.events_per_s,
            if c.over_budget { "!" } else { "" }
        ),
        us(c.hop_p50_us),
        us(c.hop_p99_us),
    )
}

fn print_table(cells: &[Cell], config: &Config) {
    println!(
        "\n{:<10} {:<8} {:>6} {:>7} {:>10} {:>11} {:>11}",
        "system", "workload", "events", "workers", "events/s", "hop p50 µs", "hop p99 µs"
    );
    for c in cells {
        println!("{}", row(c));
    }
    if cells.iter().any(|c| c.over_budget) {
        println!(
            "!: over budget: the run took more than {} s and was cancelled; events/s counts \
             the events it completed",
            config.budget.as_secs()
        );
    }
    // Flatness: events/s of the largest runs over the smallest, per system, workload and
    // worker count (1.0: a completion costs the same however large the run).
    if let (Some(&small), Some(&large)) = (config.sizes.first(), config.sizes.last()) {
        println!("\nflatness: events/s at {large} events / events/s at {small} events");
        for c in cells.iter().filter(|c| c.n == large) {
            if let Some(s) = cells.iter().find(|s| {
                s.n == small
                    && s.system == c.system
                    && s.workload == c.workload
                    && s.workers == c.workers
            }) {
                println!(
                    "{:<10} {:<8} {:>7} workers {:>6.2}",
                    c.system.name(),
                    c.workload.name(),
                    c.workers,
                    c.events_per_s / s.events_per_s
                );
            }
        }
    }
}

/// A connection pool whose connections work in the benchmark's schema.
async fn pool(url: &str, schema: &str, size: u32) -> Result<PgPool, BoxError> {
    let options: PgConnectOptions = url.parse()?;
    let options = options.options([("search_path", schema)]);
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .connect_with(options)
        .await?)
}

/// The worker processes of one cell: this binary again, with `--worker SYSTEM`. Each prints
/// `ready` once it works, then, when its standard input closes, one `T run step start end`
/// line per body it ran and exits.
struct Fleet {
    children: Vec<(Child, Option<ChildStdin>)>,
    lines: mpsc::Receiver<String>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// The cells this fleet ran and their run ids.
    cells: Vec<(usize, Vec<i64>)>,
}

impl Fleet {
    fn start(
        system: System,
        workers: usize,
        config: &Config,
        schema: &str,
        size: i64,
    ) -> Result<Fleet, BoxError> {
        let exe = std::env::current_exe()?;
        let (tx, lines) = mpsc::channel();
        let mut fleet = Fleet {
            children: Vec::new(),
            lines,
            readers: Vec::new(),
            cells: Vec::new(),
        };
        for _ in 0..workers {
            let mut child = Command::new(&exe)
                .args(["--worker", system.name(), "--schema", schema])
                .args(["--sizes", &size.to_string()])
                .args(["--concurrency", &config.concurrency.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let tx = tx.clone();
            fleet.readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }));
            fleet.children.push((child, stdin));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut ready = 0;
        while ready < workers {
            let left = deadline.saturating_duration_since(Instant::now());
            match fleet.lines.recv_timeout(left) {
                Ok(line) if line == "ready" => ready += 1,
                Ok(line) => return Err(format!("a worker said `{line}` before `ready`").into()),
                Err(_) => return Err("the worker processes did not start within 60 s".into()),
            }
        }
        Ok(fleet)
    }

    fn mark(&mut self, cell: usize, runs: Vec<i64>) {
        self.cells.push((cell, runs));
    }

    /// Closes the workers' standard input, waits for them and returns every body's timing.
    fn stop(&mut self) -> Result<Vec<Timing>, BoxError> {
        for (_, stdin) in &mut self.children {
            stdin.take();
        }
        for (child, _) in &mut self.children {
            let status = child.wait()?;
            if !status.success() {
                return Err(format!("a worker process exited with {status}").into());
            }
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let mut timings = Vec::new();
        while let Ok(line) = self.lines.try_recv() {
            let fields: Vec<&str> = line.split(' ').collect();
            if let ["T", run, step, start, end] = fields[..] {
                timings.push(Timing {
                    run: run.parse()?,
                    step: step.parse()?,
                    start: start.parse()?,
                    end: end.parse()?,
                });
            }
        }
        Ok(timings)
    }
}

/// In a worker process: a flag set when standard input closes (the parent's stop signal).
fn stop_on_stdin_close() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut sink = String::new();
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read_line(&mut sink), Ok(n) if n > 0) {
            sink.clear();
        }
        flag.store(true, Ordering::SeqCst);
    });
    stop
}

/// In a worker process: prints every timing, one line each, for the parent.
fn report(timings: &Mutex<Vec<Timing>>) -> Result<(), BoxError> {
    let timings = timings.lock().map_err(|_| "poisoned")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for t in timings.iter() {
        writeln!(out, "T {} {} {} {}", t.run, t.step, t.start, t.end)?;
    }
    out.flush()?;
    Ok(())
}

/// The hand-written baseline: one queue table, one claim and one commit per event.
mod baseline {
    use super::*;

    pub async fn create(url: &str, schema: &str) -> Result<(), BoxError> {
        let pool = pool(url, schema, 1).await?;
        pool.execute(
            "CREATE TABLE runs (
                 id bigserial PRIMARY KEY,
                 remaining bigint NOT NULL DEFAULT 0,
                 result bigint NOT NULL DEFAULT 0,
                 done_at timestamptz);
             CREATE TABLE queue (
                 id bigserial PRIMARY KEY,
                 run_id bigint NOT NULL,
                 workload smallint NOT NULL,
                 size bigint NOT NULL,
                 step bigint NOT NULL,
                 payload jsonb NOT NULL)",
        )
        .await?;
        pool.close().await;
        Ok(())
    }

    pub async fn submit(pool: &PgPool, workload: Workload, n: i64) -> Result<i64, BoxError> {
        let mut tx = pool.begin().await?;
        let run: i64 = sqlx::query_scalar("INSERT INTO runs DEFAULT VALUES RETURNING id")
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO queue (run_id, workload, size, step, payload) VALUES ($1, $2, $3, 0, '0')",
        )
        .bind(run)
        .bind(workload.code())
        .bind(n)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(run)
    }

    /// Polls the run's row every millisecond until it is done; returns its result.
    pub async fn wait(pool: &PgPool, run: i64) -> Result<i64, BoxError> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let row =
                sqlx::query("SELECT done_at IS NOT NULL AS done, result FROM runs WHERE id = $1")
                    .bind(run)
                    .fetch_one(pool)
                    .await?;
            if row.try_get::<bool, _>("done")? {
                return Ok(row.try_get("result")?);
            }
            if Instant::now() > deadline {
                return Err(format!("baseline run {run} did not finish in 600 s").into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub async fn worker(url: &str, schema: &str, concurrency: usize) -> Result<(), BoxError> {
        let pool = pool(url, schema, concurrency as u32).await?;
        let stop = stop_on_stdin_close();
        let timings = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (pool, stop, timings) = (pool.clone(), stop.clone(), timings.clone());
            tasks.push(tokio::spawn(async move {
                let mut idle = Duration::from_micros(200);
                while !stop.load(Ordering::SeqCst) {
                    match one(&pool).await {
                        Ok(Some(t)) => {
                            idle = Duration::from_micros(200);
                            if let Ok(mut all) = timings.lock() {
                                all.push(t);
                            }
                        }
                        Ok(None) => {
                            tokio::time::sleep(idle).await;
                            idle = (idle * 2).min(Duration::from_millis(2));
                        }
                        Err(error) => {
                            eprintln!("baseline worker: {error}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }));
        }
        println!("ready");
        for task in tasks {
            task.await?;
        }
        report(&timings)
    }

    /// Claims one event, runs its body, applies its outcome and commits. `None`: nothing
    /// was ready.
    async fn one(pool: &PgPool) -> Result<Option<Timing>, BoxError> {
        let mut tx = pool.begin().await?;
        let Some(row) = sqlx::query(
            "SELECT id, run_id, workload, size, step, payload FROM queue
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        let start = now_ns();
        let id: i64 = row.try_get("id")?;
        let run: i64 = row.try_get("run_id")?;
        let workload: i16 = row.try_get("workload")?;
        let size: i64 = row.try_get("size")?;
        let step: i64 = row.try_get("step")?;
        let payload: sqlx::types::JsonValue = row.try_get("payload")?;
        // The body: the chain adds one to its input; a fan-out branch outputs its step.
        let input = payload.as_i64().ok_or("payload is not a number")?;
        let output = if workload == Workload::Chain.code() {
            input + 1
        } else {
            step
        };
        let end = now_ns();
        sqlx::query("DELETE FROM queue WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if workload == Workload::Chain.code() {
            if step + 1 < size {
                next(&mut tx, run, workload, size, step + 1, output).await?;
            } else {
                sqlx::query(
                    "UPDATE runs SET result = $2, done_at = clock_timestamp() WHERE id = $1",
                )
                .bind(run)
                .bind(output)
                .execute(&mut *tx)
                .await?;
            }
        } else if step == 0 && size > 1 {
            sqlx::query(
                "INSERT INTO queue (run_id, workload, size, step, payload)
                 SELECT $1, $2, $3, g, to_jsonb($4::bigint) FROM generate_series(1, $3 - 1) g",
            )
            .bind(run)
            .bind(workload)
            .bind(size)
            .bind(output)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE runs SET remaining = $2 WHERE id = $1")
                .bind(run)
                .bind(size - 1)
                .execute(&mut *tx)
                .await?;
        } else {
            // The join: the last branch ends the run.
            sqlx::query(
                "UPDATE runs SET remaining = remaining - 1, result = result + $2,
                     done_at = CASE WHEN remaining <= 1 THEN clock_timestamp() END
                 WHERE id = $1",
            )
            .bind(run)
            .bind(output)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(Timing {
            run,
            step,
            start,
            end,
        }))
    }

    async fn next(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        run: i64,
        workload: i16,
        size: i64,
        step: i64,
        payload: i64,
    ) -> Result<(), BoxError> {
        sqlx::query(
            "INSERT INTO queue (run_id, workload, size, step, payload)
             VALUES ($1, $2, $3, $4, to_jsonb($5::bigint))",
        )
        .bind(run)
        .bind(workload)
        .bind(size)
        .bind(step)
        .bind(payload)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// drive-flow's durable runs of the same workloads: a drive built with `DriveBuilder`, the
/// same in the submitting process and in every worker process (events are named
/// `chain<n>_<i>`, `fan<n>_<i>`), in the schema `<schema>_df`.
mod durable {
    use super::*;
    use drive_flow::durable::{DurableDrive, PgOptions, PgStore};
    use drive_flow::prelude::*;
    use drive_flow::{DriveBuilder, Group, Handle};

    /// Every value is `(tag, value)`: the tag (the run's input) tells a body its run.
    type Tagged = (i64, i64);

    /// The bodies' timings in a worker process, printed when it stops.
    static TIMINGS: Mutex<Vec<Timing>> = Mutex::new(Vec::new());

    fn record(tag: i64, step: i64, start: u128) {
        let end = now_ns();
        if let Ok(mut all) = TIMINGS.lock() {
            all.push(Timing {
                run: tag,
                step,
                start,
                end,
            });
        }
    }

    struct Graphs {
        drive: Drive,
        /// Per size: the chain's events in order.
        chains: Vec<(i64, Vec<Handle<Tagged>>)>,
        /// Per size: the fan-out's start and its n − 1 leaves.
        fans: Vec<(i64, Handle<Tagged>, Vec<Handle<Tagged>>)>,
    }

    fn graphs(sizes: &[i64]) -> Result<Graphs, BoxError> {
        let mut builder = DriveBuilder::new();
        let mut chains = Vec::new();
        let mut fans = Vec::new();
        for &n in sizes {
            // The chain: step 0 reads the run's tag; step i adds one to step i − 1.
            let first = builder.event(format!("chain{n}_0"), |input: EventInput| async move {
                let start = now_ns();
                let tag = input.user::<i64>().copied().unwrap_or(0);
                record(tag, 0, start);
                Flow::from((tag, 1))
            });
            builder.serde(first);
            let mut chain = vec![first];
            for i in 1..n {
                let prev = chain[chain.len() - 1];
                let next = builder.event(
                    format!("chain{n}_{i}"),
                    move |input: EventInput| async move {
                        let start = now_ns();
                        let (tag, v) = input.get(prev).copied().unwrap_or((0, 0));
                        record(tag, i, start);
                        Flow::from((tag, v + 1))
                    },
                );
                builder.serde(next);
                builder.listen(next, Group::new([prev]));
                chain.push(next);
            }
            chains.push((n, chain));
            // The fan-out: a start, n − 1 leaves listening to it; leaf i outputs i.
            let root = builder.event(format!("fan{n}_0"), |input: EventInput| async move {
                let start = now_ns();
                let tag = input.user::<i64>().copied().unwrap_or(0);
                record(tag, 0, start);
                Flow::from((tag, 0))
            });
            builder.serde(root);
            let mut leaves = Vec::new();
            for i in 1..n {
                let leaf =
                    builder.event(format!("fan{n}_{i}"), move |input: EventInput| async move {
                        let start = now_ns();
                        let (tag, _) = input.get(root).copied().unwrap_or((0, 0));
                        record(tag, i, start);
                        Flow::from((tag, i))
                    });
                builder.serde(leaf);
                builder.listen(leaf, Group::new([root]));
                leaves.push(leaf);
            }
            fans.push((n, root, leaves));
        }
        Ok(Graphs {
            drive: builder.build()?,
            chains,
            fans,
        })
    }

    async fn store(url: &str, schema: &str, connections: u32) -> Result<PgStore, BoxError> {
        let options = PgOptions::default()
            .schema(format!("{schema}_df"))
            .max_connections(connections);
        Ok(PgStore::connect_with(url, options).await?)
    }

    pub async fn worker(
        url: &str,
        schema: &str,
        concurrency: usize,
        sizes: &[i64],
    ) -> Result<(), BoxError> {
        let graphs = graphs(sizes)?;
        let store = store(url, schema, concurrency as u32 + 2).await?;
        let stop = stop_on_stdin_close();
        let worker = graphs
            .drive
            .worker(&store)
            .concurrency(concurrency)
            .value_type::<i64>()
            .name(format!("bench-{}", std::process::id()));
        println!("ready");
        worker
            .run_until(async move {
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await?;
        report(&TIMINGS)
    }

    /// The submitting side: submits one run, polls its status every millisecond (as the
    /// baseline polls its run row) until it ends, then reads its results.
    pub struct Submitter {
        graphs: Graphs,
        client: DurableDrive,
        next_tag: i64,
    }

    impl Submitter {
        pub async fn new(config: &Config, schema: &str) -> Result<Submitter, BoxError> {
            let graphs = graphs(&config.sizes)?;
            let store = store(&config.url, schema, 4).await?;
            store.migrate().await?;
            let client = graphs.drive.durable(&store)?;
            Ok(Submitter {
                graphs,
                client,
                next_tag: 1,
            })
        }

        /// One run of `workload` at size `n`: its tag and its result (the chain's last
        /// value, or the sum of the fan-out's leaves); or, past `budget`, the run cancelled
        /// and how many of its events had completed.
        pub async fn run(
            &mut self,
            workload: Workload,
            n: i64,
            budget: Duration,
        ) -> Result<Outcome, BoxError> {
            let tag = self.next_tag;
            self.next_tag += 1;
            let chain = self
                .graphs
                .chains
                .iter()
                .find(|c| c.0 == n)
                .ok_or("no such size")?;
            let fan = self
                .graphs
                .fans
                .iter()
                .find(|f| f.0 == n)
                .ok_or("no such size")?;
            let run = match workload {
                Workload::Chain => self.client.invoke(chain.1[0]).input(tag).submit().await?,
                Workload::FanOut => self.client.invoke(fan.1).input(tag).submit().await?,
            };
            let deadline = Instant::now() + budget;
            while !self.client.status(run).await?.state.is_finished() {
                if Instant::now() > deadline {
                    self.client.cancel(run).await?;
                    let history = self.client.history(run).await?;
                    let completed = history.iter().filter(|h| h.outcome == "value").count();
                    return Ok(Outcome::OverBudget(completed));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let results = self.client.wait(run).await?;
            let value = |e: Handle<Tagged>| -> Result<i64, BoxError> {
                match results.get(e) {
                    Some(&(t, v)) if t == tag => Ok(v),
                    other => Err(format!("run {run}: {other:?} for tag {tag}").into()),
                }
            };
            let result = match workload {
                Workload::Chain => value(chain.1[chain.1.len() - 1])?,
                Workload::FanOut => {
                    let mut sum = 0;
                    for &leaf in &fan.2 {
                        sum += value(leaf)?;
                    }
                    sum
                }
            };
            Ok(Outcome::Done(tag, result))
        }
    }

    /// How one run went.
    pub enum Outcome {
        /// Its tag and its result.
        Done(i64, i64),
        /// Over budget, cancelled after this many events completed.
        OverBudget(usize),
    }
}
