//! A durable support agent on PostgreSQL: it reads a refund request, looks the order and the
//! refund policy up at the same time, drafts a reply, waits for a human to approve it (for
//! as long as it takes: the wait survives restarts of every process), then sends the reply.
//! Every step's outcome is committed to PostgreSQL; any number of worker processes, on any
//! number of machines, run the steps.
//!
//! ```text
//! export DATABASE_URL=postgres://127.0.0.1/test
//! cargo run --features postgres --example durable_agent                  # all in one process
//! cargo run --features postgres --example durable_agent -- --worker      # a worker only (more terminals)
//! cargo run --features postgres --example durable_agent -- --submit "Order 1042: ... $89.90"
//! cargo run --features postgres --example durable_agent -- --approve RUN # or: --approve RUN no
//! cargo run --features postgres --example durable_agent -- --wait RUN    # the reply and the history
//! cargo run --features postgres --example durable_agent -- --crash       # crash and resume
//! ```
//!
//! Without arguments it submits a run, runs a worker in this process, answers the approval
//! as the human would, and prints the reply and the run's history. `--crash` starts a worker
//! *process*, kills it with SIGKILL in the middle of a step, starts another one, and shows
//! that the run finishes where it was: the steps that had completed do not run again.
//!
//! `Context<Tools>` is each worker's own value (its order database client, its name):
//! what the run itself must remember travels in the steps' outputs, which are stored as
//! JSON. The runs live in the schema `durable_agent` of `DATABASE_URL`'s database.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use drive_flow::durable::{DurableDrive, PgOptions, PgStore, RunId};
use drive_flow::prelude::*;
use drive_flow::InboxError;
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The schema the demo's runs live in.
const SCHEMA: &str = "durable_agent";
/// A short lease, so that a crashed worker's step runs again within seconds (the default
/// is 30 s: a dead worker's step waits that long before another worker takes it).
const LEASE: Duration = Duration::from_secs(2);
/// The request of the one-command demo and of `--crash`.
const TICKET: &str = "Order 1042: the blender arrived broken, I'd like a refund of $89.90";

/// What a worker brings: its clients (here, a small order database), its name, and how slow
/// its order lookups are (`--slow`, for the crash demo). Each worker process has its own.
struct Tools {
    worker: String,
    orders: BTreeMap<u64, Order>,
    slow: Duration,
}

impl Tools {
    fn new(worker: String, slow: Duration) -> Tools {
        let orders = [(1042, "Ana Silva", 8_990, 3), (1043, "Bo Chen", 24_900, 45)]
            .into_iter()
            .map(|(id, customer, total_cents, days)| {
                let order = Order {
                    id,
                    customer: customer.to_string(),
                    total_cents,
                    days_since_delivery: days,
                };
                (id, order)
            })
            .collect();
        Tools {
            worker,
            orders,
            slow,
        }
    }

    fn say(&self, step: &str, what: impl std::fmt::Display) {
        println!("[{}] {step}: {what}", self.worker);
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ticket {
    order: u64,
    refund_cents: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    total_cents: u64,
    days_since_delivery: u32,
}

/// What the lookup found, with the ticket it answers (a step sees only the outputs of the
/// members of its group: what later steps need travels on).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Lookup {
    ticket: Ticket,
    order: Order,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Decision {
    approved: bool,
    draft: Draft,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Policy {
    max_days: u32,
    max_cents: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Draft {
    customer: String,
    order: u64,
    refund_cents: u64,
    /// Whether the policy allows the refund without a human's approval.
    within_policy: bool,
}

/// Why a ticket cannot be handled.
#[derive(Debug, thiserror::Error)]
enum AgentError {
    #[error("the ticket names no order (`Order NNNN`)")]
    NoOrder,
    #[error("the ticket names no amount (`$X.YY`)")]
    NoAmount,
    #[error("order {0} does not exist")]
    UnknownOrder(u64),
}

fn money(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

/// Reads the order number and the amount out of the request.
fn parse_ticket(text: &str) -> Result<Ticket, AgentError> {
    let after = |marker: &str| text.split(marker).nth(1);
    let order = after("Order ")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .ok_or(AgentError::NoOrder)?;
    let amount = after("$")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit() && c != '.').next())
        .and_then(|number| number.parse::<f64>().ok())
        .ok_or(AgentError::NoAmount)?;
    Ok(Ticket {
        order,
        refund_cents: (amount * 100.0).round() as u64,
    })
}

/// The run's input is the customer's text.
#[event]
async fn triage(input: EventInput, tools: Context<Tools>) -> Result<Ticket, AgentError> {
    let text = input.user::<String>().cloned().unwrap_or_default();
    let ticket = parse_ticket(&text)?;
    tools.say(
        "triage",
        format!(
            "order {}, refund of {}",
            ticket.order,
            money(ticket.refund_cents)
        ),
    );
    Ok(ticket)
}

/// Looks the order up with the worker's own client (at the same time as the policy).
#[listen(triage)]
async fn lookup_order(input: EventInput, tools: Context<Tools>) -> Result<Lookup, AgentError> {
    let ticket = input.get(triage).cloned().ok_or(AgentError::NoOrder)?;
    tools.say("lookup_order", format!("looking order {} up", ticket.order));
    tokio::time::sleep(tools.slow).await;
    let order = tools
        .orders
        .get(&ticket.order)
        .cloned()
        .ok_or(AgentError::UnknownOrder(ticket.order))?;
    tools.say(
        "lookup_order",
        format!(
            "{}, {}, delivered {} days ago",
            order.customer,
            money(order.total_cents),
            order.days_since_delivery
        ),
    );
    Ok(Lookup { ticket, order })
}

#[listen(triage)]
async fn check_policy(tools: Context<Tools>) -> Policy {
    let policy = Policy {
        max_days: 30,
        max_cents: 20_000,
    };
    tools.say(
        "check_policy",
        format!(
            "refunds within {} days, up to {}",
            policy.max_days,
            money(policy.max_cents)
        ),
    );
    policy
}

/// Joins the order and the policy.
#[listen(lookup_order, check_policy)]
async fn draft_reply(input: EventInput, tools: Context<Tools>) -> Result<Draft, AgentError> {
    let Lookup { ticket, order } = input
        .get(lookup_order)
        .cloned()
        .ok_or(AgentError::NoOrder)?;
    let policy = input
        .get(check_policy)
        .cloned()
        .ok_or(AgentError::NoOrder)?;
    let refund_cents = ticket.refund_cents.min(order.total_cents);
    let draft = Draft {
        within_policy: order.days_since_delivery <= policy.max_days
            && refund_cents <= policy.max_cents,
        customer: order.customer,
        order: order.id,
        refund_cents,
    };
    tools.say(
        "draft_reply",
        format!(
            "refund {} ({})",
            money(draft.refund_cents),
            if draft.within_policy {
                "within policy"
            } else {
                "outside policy"
            }
        ),
    );
    Ok(draft)
}

/// The human in the loop: the step waits for `approval` without holding a worker. When the
/// value comes (from `--approve`, a web handler, anything with the store), it runs again
/// from its start: the code before `recv` runs twice.
#[listen(draft_reply)]
async fn approve(
    input: EventInput,
    inbox: Inbox,
    tools: Context<Tools>,
) -> Result<Option<Decision>, InboxError> {
    let Some(draft) = input.get(draft_reply).cloned() else {
        return Ok(None);
    };
    tools.say(
        "approve",
        format!(
            "asks a human to approve a refund of {}",
            money(draft.refund_cents)
        ),
    );
    let approved: bool = inbox.recv("approval").await?;
    tools.say("approve", if approved { "approved" } else { "rejected" });
    Ok(Some(Decision { approved, draft }))
}

#[listen(approve)]
async fn send_reply(input: EventInput, tools: Context<Tools>) -> String {
    let reply = match input.get(approve).cloned().flatten() {
        Some(Decision {
            approved: true,
            draft,
        }) => format!(
            "Dear {}, we refunded {} for order {}.",
            draft.customer,
            money(draft.refund_cents),
            draft.order
        ),
        Some(Decision { draft, .. }) => format!(
            "Dear {}, we cannot refund order {}; a colleague will call you.",
            draft.customer, draft.order
        ),
        None => String::from("(no draft)"),
    };
    // The body runs at least once: a mail service given this key sends the mail once.
    let key = input.idempotency_key();
    tools.say("send_reply", format!("sent (idempotency key {key})"));
    reply
}

// ---------------------------------------------------------------------------------------
// The commands.
// ---------------------------------------------------------------------------------------

fn arg_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = std::env::var("DATABASE_URL").map_err(|_| {
        "set DATABASE_URL to a PostgreSQL database, e.g. DATABASE_URL=postgres://127.0.0.1/test"
    })?;
    let store = PgStore::connect_with(&url, PgOptions::default().schema(SCHEMA)).await?;
    store.migrate().await?;
    let drive = Drive::new()?;
    let client = drive.durable(&store)?;
    if args.iter().any(|a| a == "--worker") {
        let name = arg_value(&args, "--name")
            .map_or_else(|| format!("worker-{}", std::process::id()), String::from);
        let slow = if args.iter().any(|a| a == "--slow") {
            Duration::from_secs(3)
        } else {
            Duration::ZERO
        };
        println!("worker {name} started; Ctrl-C stops it gracefully");
        worker(&drive, &store, &name, slow).run().await?;
        println!("worker {name} stopped");
        return Ok(());
    }
    if let Some(text) = arg_value(&args, "--submit") {
        let run = client
            .invoke(triage)
            .input(text.to_string())
            .submit()
            .await?;
        println!("submitted run {run}");
        return Ok(());
    }
    if let Some(run) = arg_value(&args, "--approve") {
        let run: RunId = run.parse()?;
        let yes = args.last().map(String::as_str) != Some("no");
        client.send(run, "approval", &yes).await?;
        println!("sent approval = {yes} to run {run}");
        return Ok(());
    }
    if let Some(run) = arg_value(&args, "--wait") {
        return finish(&client, run.parse()?).await;
    }
    if args.iter().any(|a| a == "--crash") {
        return crash(&client).await;
    }
    one_command(&drive, &store, &client).await
}

/// A worker of this agent: its own tools, a short lease, the types of the run's input and
/// of the approval (a worker may run in a process that never submitted or sent them).
fn worker(
    drive: &Drive,
    store: &PgStore,
    name: &str,
    slow: Duration,
) -> drive_flow::durable::Worker {
    drive
        .worker(store)
        .concurrency(8)
        .context(Tools::new(name.to_string(), slow))
        .lease(LEASE)
        .value_type::<String>()
        .value_type::<bool>()
        .name(name)
}

/// Submits a run, runs a worker in this process, approves as the human, prints the result.
async fn one_command(
    drive: &Drive,
    store: &PgStore,
    client: &DurableDrive,
) -> Result<(), BoxError> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(
        worker(drive, store, "demo", Duration::ZERO).run_until(async {
            let _ = stopped.await;
        }),
    );
    let run = client
        .invoke(triage)
        .input(TICKET.to_string())
        .submit()
        .await?;
    println!("submitted run {run}: {TICKET:?}");
    waiting_for_approval(client, run).await?;
    println!("run {run} waits for a human's `approval` (from anywhere: --approve {run})");
    println!("the human says yes");
    client.send(run, "approval", &true).await?;
    let result = finish(client, run).await;
    let _ = stop.send(());
    running.await??;
    result
}

/// Waits until the run's `approve` step waits for its approval.
async fn waiting_for_approval(client: &DurableDrive, run: RunId) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let history = client.history(run).await?;
        if history
            .iter()
            .any(|h| h.outcome == "waiting" && short(&h.event) == "approve")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("run {run} did not wait for its approval within 60 s").into())
}

fn short(event: &str) -> &str {
    event.rsplit("::").next().unwrap_or(event)
}

/// Waits for the run, prints its reply and its history.
async fn finish(client: &DurableDrive, run: RunId) -> Result<(), BoxError> {
    let results = client.wait(run).await?;
    println!(
        "reply: {}",
        results.get(send_reply).map_or("(none)", String::as_str)
    );
    println!("history of run {run}:");
    for entry in client.history(run).await? {
        println!(
            "  {:<13} {:<8} attempt {}  {}",
            short(&entry.event),
            entry.outcome,
            entry.attempt,
            entry.worker.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// A worker process: this example again, with `--worker --name NAME`; its output is echoed
/// and its lines sent to `lines`.
/// A worker process of this example, its output echoed line by line (and sent to `lines`)
/// by a thread that ends when the process's output does.
fn spawn_worker(
    name: &str,
    slow: bool,
    lines: mpsc::Sender<String>,
) -> Result<(Child, std::thread::JoinHandle<()>), BoxError> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["--worker", "--name", name]);
    if slow {
        command.arg("--slow");
    }
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let echo = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            // The crash demo stops listening at some point; the echo goes on.
            let _ = lines.send(line);
        }
    });
    Ok((child, echo))
}

/// Crash and resume: a worker process is killed with SIGKILL while it looks the order up
/// (after `triage` and `check_policy` completed); a new worker process finishes the run.
async fn crash(client: &DurableDrive) -> Result<(), BoxError> {
    let (tx, lines) = mpsc::channel();
    let (mut first, _) = spawn_worker("crash-1", true, tx.clone())?;
    let run = client
        .invoke(triage)
        .input(TICKET.to_string())
        .submit()
        .await?;
    println!("submitted run {run}");
    // Wait until crash-1 is in the middle of the (slow) lookup, and check_policy committed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut looking = false;
    while !looking {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left)?;
        looking = line.contains("lookup_order: looking order");
    }
    loop {
        let history = client.history(run).await?;
        if history
            .iter()
            .any(|h| h.outcome == "value" && short(&h.event) == "check_policy")
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("check_policy did not complete within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill()?; // SIGKILL
    first.wait()?;
    println!("killed worker crash-1 with SIGKILL in the middle of lookup_order");
    let (mut second, echo) = spawn_worker("crash-2", false, tx)?;
    waiting_for_approval(client, run).await?;
    println!("the human says yes");
    client.send(run, "approval", &true).await?;
    let result = finish(client, run).await;
    // A graceful stop: SIGTERM.
    let _ = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    second.wait()?;
    // Its last lines ("worker crash-2 stopped") echoed before this process ends.
    let _ = echo.join();
    result
}
