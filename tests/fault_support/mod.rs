//! What the fault tests share: worker processes started from the test binary itself, killed
//! with SIGKILL by their PID, and what they printed, line by line; a small seeded random
//! generator; the restart of the PostgreSQL server (only where `DRIVE_FLOW_PG_RESTART=1`).
//!
//! A worker process is this test binary again, running only its ignored test
//! `worker_process` (`--exact --ignored`), which reads what to do from `DF_WORKER_*`
//! environment variables: the schema, its name, its lease and concurrency. It is a real
//! process with its own pool of connections: SIGKILL leaves nothing of it but what it
//! committed. Every line it prints to standard output (bodies print `BODY ...` and
//! `DONE ...` lines) is kept, with the worker's name, in [`Fleet::lines`].

#![allow(dead_code)]

pub mod graph;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The name of the ignored test that runs a worker in a worker process.
pub const WORKER_TEST: &str = "worker_process";

/// One line a worker process printed.
#[derive(Clone, Debug)]
pub struct Line {
    pub worker: String,
    pub text: String,
}

/// One worker process this test started.
struct Worker {
    name: String,
    child: Child,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// The worker processes of one test. Dropping it kills (SIGKILL) and reaps those still
/// running: only processes it started, by their PID.
pub struct Fleet {
    env: Vec<(String, String)>,
    workers: Vec<Worker>,
    lines: Arc<Mutex<Vec<Line>>>,
    started: usize,
}

impl Fleet {
    /// A fleet whose workers get these `DF_WORKER_*` variables (and `DF_WORKER_NAME`).
    pub fn new(env: &[(&str, String)]) -> Fleet {
        Fleet {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            workers: Vec::new(),
            lines: Arc::new(Mutex::new(Vec::new())),
            started: 0,
        }
    }

    /// Give the workers started from now on `value` for the variable `key`.
    pub fn set_env(&mut self, key: &str, value: String) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value));
    }

    /// Starts one worker process; returns its name (`w1`, `w2`, … in start order).
    pub fn spawn(&mut self) -> String {
        self.started += 1;
        let name = format!("w{}", self.started);
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args([
                WORKER_TEST,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("DF_WORKER_NAME", &name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a worker process");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = self.lines.clone();
        let worker = name.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(text) = line else { break };
                lines.lock().unwrap().push(Line {
                    worker: worker.clone(),
                    text,
                });
            }
        });
        self.workers.push(Worker {
            name: name.clone(),
            child,
            reader: Some(reader),
        });
        name
    }

    /// The PID of a running worker.
    pub fn pid(&self, name: &str) -> u32 {
        self.worker(name).child.id()
    }

    fn worker(&self, name: &str) -> &Worker {
        self.workers
            .iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no running worker {name}"))
    }

    /// The names of the workers still running (not killed by this fleet).
    pub fn running(&self) -> Vec<String> {
        self.workers.iter().map(|w| w.name.clone()).collect()
    }

    /// Kills a worker with SIGKILL (by its PID: `Child::kill` sends SIGKILL on Unix), waits
    /// for it to be gone and for its last lines to be read.
    pub fn kill(&mut self, name: &str) {
        let index = self
            .workers
            .iter()
            .position(|w| w.name == name)
            .unwrap_or_else(|| panic!("no running worker {name}"));
        let mut worker = self.workers.remove(index);
        worker.child.kill().expect("SIGKILL the worker");
        let status = worker.child.wait().expect("reap the worker");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{name} died of SIGKILL: {status}");
        if let Some(reader) = worker.reader.take() {
            reader.join().expect("the reader of the worker's output");
        }
    }

    /// Every line printed so far, in the order read (per worker, in the order printed).
    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap().clone()
    }

    /// The lines printed so far whose words begin with these words.
    pub fn lines_with(&self, prefix: &[&str]) -> Vec<Line> {
        self.lines()
            .into_iter()
            .filter(|l| {
                let words: Vec<&str> = l.text.split_whitespace().collect();
                words.len() >= prefix.len() && words[..prefix.len()] == *prefix
            })
            .collect()
    }

    /// Waits until `done` holds for the lines printed, at most `limit`; returns whether it held.
    pub fn wait_lines(&self, limit: Duration, done: impl Fn(&[Line]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.lines.lock().unwrap()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            let _ = worker.child.kill();
            let _ = worker.child.wait();
        }
        for worker in &mut self.workers {
            if let Some(reader) = worker.reader.take() {
                let _ = reader.join();
            }
        }
    }
}

/// A small seeded generator (xorshift64*): each test prints its seed, and
/// `DRIVE_FLOW_FAULT_SEED` replays one.
pub struct Rng(u64);

impl Rng {
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("DRIVE_FLOW_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    ^ u64::from(std::process::id())
            });
        eprintln!("{test}: DRIVE_FLOW_FAULT_SEED={seed}");
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `low..high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }
}

/// A number of rounds from this environment variable, else `default`.
pub fn rounds(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Restarts the PostgreSQL server (`pg_ctlcluster VERSION CLUSTER restart`) when
/// `DRIVE_FLOW_PG_RESTART=1` and `DRIVE_FLOW_PG_CLUSTER="VERSION NAME"` are set (CI sets
/// both, as root); `false` (and nothing done) otherwise.
pub fn pg_restart_enabled() -> bool {
    std::env::var("DRIVE_FLOW_PG_RESTART").is_ok_and(|v| v == "1")
}

pub fn pg_restart() {
    let cluster = std::env::var("DRIVE_FLOW_PG_CLUSTER")
        .expect("DRIVE_FLOW_PG_CLUSTER=\"VERSION NAME\" (e.g. \"15 main\")");
    let mut words = cluster.split_whitespace();
    let (Some(version), Some(name)) = (words.next(), words.next()) else {
        panic!("DRIVE_FLOW_PG_CLUSTER={cluster:?}: expected \"VERSION NAME\"");
    };
    let status = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            version,
            name,
            "restart",
            "-m",
            "fast",
        ])
        .status()
        .expect("run pg_ctlcluster");
    assert!(
        status.success(),
        "pg_ctlcluster {version} {name} restart: {status}"
    );
}
