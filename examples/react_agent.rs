//! A ReAct agent: the model plans, the agent acts with tools, observes their results, and
//! plans again, until the model answers.
//!
//! ```text
//! plan ──▶ action ──▶ add ────────┐
//!  ▲          │   └─▶ multiply ───┤ (join of action, add, multiply)
//!  │          └───────────────────┴─▶ observe
//!  └────────────── goto ─────────────────┘
//! ```
//!
//! - `plan` sends the conversation to the model. If the model calls tools, `plan` returns the
//!   calls; if it answers, `plan` stores the answer and ends with `Flow::abort()`, and the run
//!   is over. The model's text comes token by token (`stream: true`): `plan` sends each
//!   token out through its `Emitter<Token>` as it arrives, and `main`, watching the run's
//!   live stream, prints them as they come.
//! - `action` decodes the calls into typed actions; the tools `add` and `multiply` both listen
//!   to it and run at the same time, each doing the calls addressed to it.
//! - `observe` joins `action`, `add` and `multiply`, adds every result to the conversation and
//!   sends the run back to `plan` with `Flow::goto`.
//!
//! The conversation lives in the run's context. The model is any OpenAI-compatible
//! chat-completions endpoint when `OPENAI_API_KEY` is set (with `OPENAI_BASE_URL`, default
//! `https://api.openai.com/v1`, and `OPENAI_MODEL`, default `gpt-4o-mini`); otherwise a
//! built-in offline planner that parses the arithmetic in the question and works it out
//! through the tools, step by step, like a model would (and streams its answer word by word).
//! `OPENAI_STREAM=0` asks the endpoint for whole replies instead of a stream; an endpoint
//! that ignores `stream: true` and answers with one JSON reply works too.
//!
//! ```text
//! cargo run --example react_agent                          # "What is 3+3*2+20*4?"
//! cargo run --example react_agent -- "What is (1+2)*(3+4)?"
//! cargo run --example react_agent -- --mermaid             # the graph, as Mermaid
//! cargo run --example react_agent -- --dot                 # the graph, as Graphviz DOT
//! cargo run --example react_agent -- --run-mermaid         # what a run did, on the graph
//! cargo run --example react_agent -- --run-dot             # the same, as Graphviz DOT
//! cargo run --example react_agent -- --gantt               # the run's timeline
//! cargo run --example react_agent -- --otel                # the run's OpenTelemetry spans
//! ```
//!
//! With `--run-mermaid`, `--run-dot` or `--gantt` the agent runs (timed) and prints only
//! the picture (any question follows the flag). With `--otel` it prints only the run's
//! spans, exported through `tracing-opentelemetry` and OpenTelemetry's stdout exporter: the
//! run span (`invoke_workflow plan`) and a span per event run, with their attributes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use drive_flow::prelude::*;
use drive_flow::Emitter;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The question asked when none is given.
const QUESTION: &str = "What is 3+3*2+20*4?";
/// How many times `plan` may ask the model before the run fails.
const MAX_TURNS: usize = 10;
/// How long the offline planner thinks before it replies, as a model takes its time: so
/// that the run's timeline (`--gantt`) shows where the time goes.
const OFFLINE_THINKING: Duration = Duration::from_millis(20);
/// The pause between two words of the offline planner's streamed answer.
const OFFLINE_TOKEN_PAUSE: Duration = Duration::from_millis(5);

/// Set when the example prints only a picture: the transcript is not printed then.
static QUIET: AtomicBool = AtomicBool::new(false);

/// `println!`, unless the example prints only a picture.
macro_rules! say {
    ($($arg:tt)*) => {
        if !QUIET.load(Ordering::Relaxed) {
            println!($($arg)*);
        }
    };
}

// ----------------------------------------------------------------------------------------
// The workflow
// ----------------------------------------------------------------------------------------

/// A piece of the model's text, streamed out of `plan` as it arrives.
#[derive(Clone, Debug)]
struct Token {
    /// Which turn of `plan` it belongs to.
    turn: usize,
    text: String,
}

/// Asks the model what to do next: call tools, or answer. Its text is streamed out
/// through `tokens` as it comes.
#[event]
async fn plan(
    input: EventInput,
    agent: Context<Agent>,
    tokens: Emitter<Token>,
) -> anyhow::Result<Flow<Vec<ToolCall>>> {
    if input.behavior() == Behavior::Input {
        // The first turn: the question is the run's input.
        let question = input
            .user::<String>()
            .ok_or_else(|| anyhow!("start the agent with EventInput::from_input(question)"))?;
        agent.push(Message::system(
            "You are a careful calculator. Use the tools `add` and `multiply` for every \
             operation, one step at a time, then answer with the result.",
        ));
        agent.push(Message::user(question));
    }
    let turn = agent.turns.fetch_add(1, Ordering::SeqCst) + 1;
    if turn > MAX_TURNS {
        bail!("no answer after {MAX_TURNS} turns");
    }
    let stream = |text: &str| {
        tokens.emit(Token {
            turn,
            text: text.to_string(),
        })
    };
    let reply = agent.model.chat(&agent.messages(), stream).await?;
    agent.push(reply.clone());
    if reply.tool_calls.is_empty() {
        let answer = reply.content.unwrap_or_default();
        if !tokens.is_watched() {
            say!("[plan] turn {turn}: the model says: {answer}");
        }
        if let Ok(mut slot) = agent.answer.lock() {
            *slot = Some(answer);
        }
        return Ok(Flow::abort()); // nothing listens to an abort: the run ends
    }
    let calls: Vec<String> = reply.tool_calls.iter().map(ToolCall::describe).collect();
    say!("[plan] turn {turn}: the model calls {}", calls.join(", "));
    Ok(Flow::from(reply.tool_calls))
}

/// Decodes the model's tool calls into typed actions.
#[listen(plan)]
async fn action(input: EventInput) -> Vec<Action> {
    let calls = input.get(plan).map(Vec::as_slice).unwrap_or_default();
    calls.iter().map(Action::decode).collect()
}

/// The tool `add`: does the additions among the actions.
#[listen(action)]
async fn add(input: EventInput) -> Vec<Observation> {
    run_tool(&input, Tool::Add)
}

/// The tool `multiply`: does the multiplications among the actions.
#[listen(action)]
async fn multiply(input: EventInput) -> Vec<Observation> {
    run_tool(&input, Tool::Multiply)
}

/// Adds what the tools found to the conversation, in the order of the calls, and goes back
/// to `plan`.
#[listen(action, add, multiply, name = "tool results")]
async fn observe(input: EventInput, agent: Context<Agent>) -> Flow<()> {
    let actions = input.get(action).map(Vec::as_slice).unwrap_or_default();
    let found: Vec<&Observation> = [input.get(add), input.get(multiply)]
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    for step in actions {
        let content = match &step.request {
            Err(problem) => format!("error: {problem}"),
            Ok(_) => found
                .iter()
                .find(|observation| observation.call_id == step.call_id)
                .map_or_else(|| "error: no result".to_string(), |o| o.content.clone()),
        };
        agent.push(Message::tool(&step.call_id, content));
    }
    say!(
        "[observe] {} result(s) added to the conversation",
        actions.len()
    );
    Flow::goto([plan], ())
}

// ----------------------------------------------------------------------------------------
// Tools
// ----------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tool {
    Add,
    Multiply,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Add => "add",
            Tool::Multiply => "multiply",
        }
    }

    fn apply(self, Operands { a, b }: Operands) -> f64 {
        match self {
            Tool::Add => a + b,
            Tool::Multiply => a * b,
        }
    }

    /// The tools, as the chat-completions API describes them to the model.
    fn schema() -> serde_json::Value {
        let tool = |name: &str, description: &str| {
            json!({
                "type": "function",
                "function": {
                    "name": name,
                    "description": description,
                    "parameters": {
                        "type": "object",
                        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                        "required": ["a", "b"],
                    },
                },
            })
        };
        json!([tool("add", "a + b"), tool("multiply", "a * b")])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Operands {
    a: f64,
    b: f64,
}

/// One tool call, decoded; or why it cannot be done.
#[derive(Debug)]
struct Action {
    call_id: String,
    request: Result<(Tool, Operands), String>,
}

impl Action {
    fn decode(call: &ToolCall) -> Action {
        let tool = match call.function.name.as_str() {
            "add" => Ok(Tool::Add),
            "multiply" => Ok(Tool::Multiply),
            other => Err(format!("there is no tool `{other}`")),
        };
        let operands = serde_json::from_str::<Operands>(&call.function.arguments)
            .map_err(|error| format!("bad arguments for `{}`: {error}", call.function.name));
        Action {
            call_id: call.id.clone(),
            request: tool.and_then(|tool| Ok((tool, operands?))),
        }
    }
}

/// What a tool found for one call.
#[derive(Debug)]
struct Observation {
    call_id: String,
    content: String,
}

fn run_tool(input: &EventInput, tool: Tool) -> Vec<Observation> {
    let actions = input.get(action).map(Vec::as_slice).unwrap_or_default();
    let mut found = Vec::new();
    for step in actions {
        if let Ok((wanted, operands)) = &step.request {
            if *wanted == tool {
                let value = tool.apply(*operands);
                say!(
                    "[{}] {}({}, {}) = {value}",
                    tool.name(),
                    tool.name(),
                    operands.a,
                    operands.b
                );
                found.push(Observation {
                    call_id: step.call_id.clone(),
                    content: value.to_string(),
                });
            }
        }
    }
    found
}

// ----------------------------------------------------------------------------------------
// The conversation, in the chat-completions format
// ----------------------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
}

impl Message {
    fn new(role: &str, content: impl Into<String>) -> Message {
        Message {
            role: role.to_string(),
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    fn system(content: &str) -> Message {
        Message::new("system", content)
    }

    fn user(content: &str) -> Message {
        Message::new("user", content)
    }

    fn assistant(content: impl Into<String>) -> Message {
        Message::new("assistant", content)
    }

    fn tool(call_id: &str, content: String) -> Message {
        Message {
            tool_call_id: Some(call_id.to_string()),
            ..Message::new("tool", content)
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ToolCall {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    function: FunctionCall,
}

impl ToolCall {
    fn describe(&self) -> String {
        match serde_json::from_str::<Operands>(&self.function.arguments) {
            Ok(Operands { a, b }) => format!("{}({a}, {b})", self.function.name),
            Err(_) => format!("{}({})", self.function.name, self.function.arguments),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct FunctionCall {
    name: String,
    /// The arguments, as a JSON text.
    arguments: String,
}

// ----------------------------------------------------------------------------------------
// The agent: the run's context
// ----------------------------------------------------------------------------------------

struct Agent {
    model: Model,
    messages: Mutex<Vec<Message>>,
    answer: Mutex<Option<String>>,
    turns: AtomicUsize,
}

impl Agent {
    fn new(model: Model) -> Agent {
        Agent {
            model,
            messages: Mutex::new(Vec::new()),
            answer: Mutex::new(None),
            turns: AtomicUsize::new(0),
        }
    }

    fn push(&self, message: Message) {
        if let Ok(mut messages) = self.messages.lock() {
            messages.push(message);
        }
    }

    fn messages(&self) -> Vec<Message> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

enum Model {
    /// A chat-completions endpoint.
    Remote {
        client: reqwest::Client,
        url: String,
        key: String,
        model: String,
        /// Ask for the reply as a stream of tokens (`stream: true`).
        stream: bool,
    },
    /// The built-in planner.
    Offline,
}

impl Model {
    fn from_env() -> anyhow::Result<Model> {
        let Some(key) = std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.is_empty())
        else {
            return Ok(Model::Offline);
        };
        let base = std::env::var("OPENAI_BASE_URL")
            .unwrap_or_else(|_| "https://api.openai.com/v1".to_string());
        Ok(Model::Remote {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()?,
            url: format!("{}/chat/completions", base.trim_end_matches('/')),
            key,
            model: std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".to_string()),
            stream: !matches!(
                std::env::var("OPENAI_STREAM").as_deref(),
                Ok("0" | "false" | "no" | "off")
            ),
        })
    }

    fn describe(&self) -> String {
        match self {
            Model::Remote { url, model, .. } => format!("{model} at {url}"),
            Model::Offline => "the offline planner (set OPENAI_API_KEY to use a real model)".into(),
        }
    }

    /// The model's next message. Its text is handed to `token` piece by piece as it
    /// arrives (when the endpoint streams; the offline planner streams its answer too).
    async fn chat(&self, messages: &[Message], token: impl Fn(&str)) -> anyhow::Result<Message> {
        let Model::Remote {
            client,
            url,
            key,
            model,
            stream,
        } = self
        else {
            tokio::time::sleep(OFFLINE_THINKING).await;
            let reply = offline::reply(messages)?;
            if let Some(text) = &reply.content {
                for word in text.split_inclusive(' ') {
                    token(word);
                    tokio::time::sleep(OFFLINE_TOKEN_PAUSE).await;
                }
            }
            return Ok(reply);
        };
        #[derive(Deserialize)]
        struct Completion {
            choices: Vec<Choice>,
        }
        #[derive(Deserialize)]
        struct Choice {
            message: Message,
        }
        let body = json!({
            "model": model,
            "messages": messages,
            "tools": Tool::schema(),
            "stream": stream,
        });
        let mut response = client
            .post(url)
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!(
                "{url} answered {status}: {}",
                text.chars().take(500).collect::<String>()
            );
        }
        let streamed = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        if streamed {
            // Server-sent events: `data: {chunk}` lines, until `data: [DONE]`.
            let mut reply = sse::Reply::default();
            let mut pending: Vec<u8> = Vec::new();
            while let Some(bytes) = response
                .chunk()
                .await
                .with_context(|| format!("{url} broke off its stream"))?
            {
                pending.extend_from_slice(&bytes);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line);
                    reply
                        .line(line.trim_end(), &token)
                        .with_context(|| format!("{url} sent a bad stream chunk"))?;
                }
            }
            return Ok(reply.into_message());
        }
        let completion: Completion = response
            .json()
            .await
            .with_context(|| format!("{url} sent something that is not a chat completion"))?;
        let message = completion
            .choices
            .into_iter()
            .next()
            .map(|choice| choice.message)
            .ok_or_else(|| anyhow!("{url} sent a completion with no choice"))?;
        if let Some(text) = &message.content {
            token(text); // not streamed: the whole text at once
        }
        Ok(message)
    }
}

/// The chat-completions stream (`stream: true`): each chunk carries a piece of the text or
/// of a tool call (its id and name first, then its arguments in pieces), by index.
mod sse {
    use serde::Deserialize;

    use super::{FunctionCall, Message, ToolCall};

    #[derive(Deserialize)]
    struct Chunk {
        #[serde(default)]
        choices: Vec<ChunkChoice>,
    }

    #[derive(Deserialize)]
    struct ChunkChoice {
        #[serde(default)]
        delta: Delta,
    }

    #[derive(Default, Deserialize)]
    struct Delta {
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        tool_calls: Vec<CallDelta>,
    }

    #[derive(Deserialize)]
    struct CallDelta {
        index: usize,
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        function: Option<FunctionDelta>,
    }

    #[derive(Deserialize)]
    struct FunctionDelta {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        arguments: Option<String>,
    }

    /// The reply, as its chunks arrive.
    #[derive(Default)]
    pub(super) struct Reply {
        content: Option<String>,
        calls: Vec<ToolCall>,
    }

    impl Reply {
        /// One line of the stream; text pieces go to `token` as they come.
        pub(super) fn line(&mut self, line: &str, token: impl Fn(&str)) -> anyhow::Result<()> {
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                return Ok(()); // blank lines, comments, `event:` lines
            };
            if data == "[DONE]" {
                return Ok(());
            }
            let chunk: Chunk = serde_json::from_str(data)?;
            for choice in chunk.choices {
                if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                    token(&text);
                    self.content.get_or_insert_with(String::new).push_str(&text);
                }
                for piece in choice.delta.tool_calls {
                    while self.calls.len() <= piece.index {
                        self.calls.push(ToolCall {
                            id: String::new(),
                            kind: "function".to_string(),
                            function: FunctionCall {
                                name: String::new(),
                                arguments: String::new(),
                            },
                        });
                    }
                    let call = &mut self.calls[piece.index];
                    if let Some(id) = piece.id {
                        call.id = id;
                    }
                    if let Some(function) = piece.function {
                        call.function
                            .name
                            .push_str(&function.name.unwrap_or_default());
                        call.function
                            .arguments
                            .push_str(&function.arguments.unwrap_or_default());
                    }
                }
            }
            Ok(())
        }

        pub(super) fn into_message(self) -> Message {
            Message {
                role: "assistant".to_string(),
                content: self.content,
                tool_calls: self.calls,
                tool_call_id: None,
            }
        }
    }
}

/// The offline planner: what a model would do with this question and these tools, worked
/// out from the conversation alone, as a model does. It finds the arithmetic in the
/// question, replays the tool calls and results so far, and either calls the tools for
/// every operation whose operands are known (all at once: they do not depend on each
/// other) or, when one number is left, answers.
mod offline {
    use super::{Message, Operands, Tool, ToolCall};

    enum Expr {
        Number(f64),
        Operation(Tool, Box<Expr>, Box<Expr>),
    }

    pub(super) fn reply(messages: &[Message]) -> anyhow::Result<Message> {
        let Some(question) = messages
            .iter()
            .find(|m| m.role == "user")
            .and_then(|m| m.content.as_deref())
        else {
            anyhow::bail!("the conversation has no question");
        };
        let Some((text, mut expr)) = find_arithmetic(question) else {
            return Ok(Message::assistant(
                "I can only work out sums and products, such as 3+3*2+20*4.",
            ));
        };
        let mut turn = 0;
        for (index, message) in messages.iter().enumerate() {
            if message.role != "assistant" || message.tool_calls.is_empty() {
                continue;
            }
            turn += 1;
            let mut results = Vec::new();
            for call in &message.tool_calls {
                let result = messages[index..]
                    .iter()
                    .find(|m| m.tool_call_id.as_deref() == Some(call.id.as_str()))
                    .and_then(|m| m.content.as_deref())
                    .ok_or_else(|| anyhow::anyhow!("no result for the call {}", call.id))?;
                match result.trim().parse::<f64>() {
                    Ok(value) => results.push(value),
                    Err(_) => {
                        return Ok(Message::assistant(format!(
                            "The tool {} failed: {result}",
                            call.describe()
                        )))
                    }
                }
            }
            let mut results = results.into_iter();
            expr = substitute(expr, &mut results);
        }
        if let Expr::Number(value) = expr {
            return Ok(Message::assistant(format!("{text} = {value}")));
        }
        let mut ready = Vec::new();
        collect_ready(&expr, &mut ready);
        let tool_calls = ready
            .into_iter()
            .enumerate()
            .map(|(k, (tool, operands))| ToolCall {
                id: format!("call_{}_{}", turn + 1, k + 1),
                kind: "function".to_string(),
                function: super::FunctionCall {
                    name: tool.name().to_string(),
                    arguments: serde_json::to_string(&operands).unwrap_or_default(),
                },
            })
            .collect();
        Ok(Message {
            role: "assistant".to_string(),
            content: None,
            tool_calls,
            tool_call_id: None,
        })
    }

    /// The operations whose operands are both numbers, left to right.
    fn collect_ready(expr: &Expr, ready: &mut Vec<(Tool, Operands)>) {
        if let Expr::Operation(tool, left, right) = expr {
            match (&**left, &**right) {
                (Expr::Number(a), Expr::Number(b)) => {
                    ready.push((*tool, Operands { a: *a, b: *b }));
                }
                _ => {
                    collect_ready(left, ready);
                    collect_ready(right, ready);
                }
            }
        }
    }

    /// Replaces the operations `collect_ready` finds, in the same order, with their results.
    fn substitute(expr: Expr, results: &mut impl Iterator<Item = f64>) -> Expr {
        match expr {
            Expr::Operation(tool, left, right) => match (*left, *right) {
                (Expr::Number(a), Expr::Number(b)) => match results.next() {
                    Some(value) => Expr::Number(value),
                    None => {
                        Expr::Operation(tool, Box::new(Expr::Number(a)), Box::new(Expr::Number(b)))
                    }
                },
                (left, right) => Expr::Operation(
                    tool,
                    Box::new(substitute(left, results)),
                    Box::new(substitute(right, results)),
                ),
            },
            number => number,
        }
    }

    /// The longest run of digits, operators, parentheses and spaces in the question that
    /// parses as a sum of products; with its text.
    fn find_arithmetic(question: &str) -> Option<(String, Expr)> {
        let allowed = |c: char| c.is_ascii_digit() || " .+*()".contains(c);
        question
            .split(|c: char| !allowed(c))
            .map(|part| part.trim().trim_end_matches('.').trim())
            .filter(|part| part.contains(|c: char| c.is_ascii_digit()))
            .filter_map(|part| Some((part.to_string(), Parser::parse(part)?)))
            .max_by_key(|(text, _)| text.len())
    }

    /// sum := product ('+' product)* ; product := atom ('*' atom)* ; atom := number | '(' sum ')'
    struct Parser<'a> {
        rest: &'a str,
    }

    impl Parser<'_> {
        fn parse(text: &str) -> Option<Expr> {
            let mut parser = Parser { rest: text };
            let expr = parser.sum()?;
            parser.rest.trim().is_empty().then_some(expr)
        }

        fn eat(&mut self, token: char) -> bool {
            self.rest = self.rest.trim_start();
            match self.rest.strip_prefix(token) {
                Some(rest) => {
                    self.rest = rest;
                    true
                }
                None => false,
            }
        }

        fn sum(&mut self) -> Option<Expr> {
            let mut expr = self.product()?;
            while self.eat('+') {
                expr = Expr::Operation(Tool::Add, Box::new(expr), Box::new(self.product()?));
            }
            Some(expr)
        }

        fn product(&mut self) -> Option<Expr> {
            let mut expr = self.atom()?;
            while self.eat('*') {
                expr = Expr::Operation(Tool::Multiply, Box::new(expr), Box::new(self.atom()?));
            }
            Some(expr)
        }

        fn atom(&mut self) -> Option<Expr> {
            if self.eat('(') {
                let expr = self.sum()?;
                return self.eat(')').then_some(expr);
            }
            self.rest = self.rest.trim_start();
            let end = self
                .rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(self.rest.len());
            let (number, rest) = self.rest.split_at(end);
            self.rest = rest;
            number.parse().ok().map(Expr::Number)
        }
    }
}

// ----------------------------------------------------------------------------------------

/// What the example prints.
#[derive(Clone, Copy, PartialEq)]
enum Show {
    /// The transcript of a run.
    Run,
    /// What a run did, on the graph, as Mermaid (`--run-mermaid`) or DOT (`--run-dot`).
    RunMermaid,
    RunDot,
    /// The timeline of a run (`--gantt`).
    Gantt,
    /// The run's spans, through OpenTelemetry, to stdout (`--otel`).
    Otel,
}

/// Export every `tracing` span through OpenTelemetry to stdout: a `tracing` subscriber
/// with the `tracing-opentelemetry` layer over an SDK tracer whose exporter prints each
/// span as it ends. Nothing else is needed from the workflow: drive-flow's spans follow
/// the OpenTelemetry conventions (`otel.name`, `gen_ai.operation.name`, `otel.status_code`).
fn export_spans_to_stdout() -> anyhow::Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;

    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("react_agent")
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_resource(resource)
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    let tracer = provider.tracer("react_agent");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(provider)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let drive = Drive::new()?;
    let mut args = std::env::args().skip(1).peekable();
    let show = match args.peek().map(String::as_str) {
        Some("--mermaid") => {
            print!("{}", drive.to_mermaid());
            return Ok(());
        }
        Some("--dot") => {
            print!("{}", drive.to_dot());
            return Ok(());
        }
        Some("--run-mermaid") => Show::RunMermaid,
        Some("--run-dot") => Show::RunDot,
        Some("--gantt") => Show::Gantt,
        Some("--otel") => Show::Otel,
        _ => Show::Run,
    };
    let spans = match show {
        Show::Otel => Some(export_spans_to_stdout()?),
        _ => None,
    };
    if show != Show::Run {
        args.next();
        QUIET.store(true, Ordering::Relaxed);
    }
    let question = args.next().unwrap_or_else(|| QUESTION.to_string());
    let agent = std::sync::Arc::new(Agent::new(Model::from_env()?));
    say!("model: {}", agent.model.describe());
    say!("question: {question}");

    // Watch the run: the model's text is printed token by token, as `plan` streams it.
    let (run, mut events) = drive
        .invoke(plan)
        .input(EventInput::from_input(question))
        .context_arc(agent.clone())
        .start_with_events();
    let mut streamed = 0;
    let mut open_line: Option<u64> = None; // the task whose text is being printed
    while let Some(event) = events.next().await {
        let quiet = QUIET.load(Ordering::Relaxed);
        if let Some(token) = event.emitted::<Token>() {
            if !quiet {
                if open_line.is_none() {
                    print!("[plan] turn {}: the model says: ", token.turn);
                }
                print!("{}", token.text);
                let _ = std::io::Write::flush(&mut std::io::stdout());
            }
            open_line = Some(event.task_id);
            streamed += 1;
        } else if open_line == Some(event.task_id) && event.kind.is_end() {
            say!();
            open_line = None;
        }
    }
    let results = run.await?;

    match show {
        Show::RunMermaid => print!("{}", results.to_mermaid()),
        Show::RunDot => print!("{}", results.to_dot()),
        Show::Gantt => print!("{}", results.to_gantt()),
        Show::Otel => {
            if let Some(provider) = spans {
                provider.shutdown()?; // every span is exported by now
            }
        }
        Show::Run => {
            let answer = agent.answer.lock().ok().and_then(|a| a.clone());
            println!("Answer: {}", answer.as_deref().unwrap_or("(none)"));
            let plural = if streamed == 1 { "" } else { "s" };
            println!("streamed: {streamed} token{plural}");
            println!(
                "runs: plan {}, action {}, add {}, multiply {}, observe {}",
                results.count(plan),
                results.count(action),
                results.count(add),
                results.count(multiply),
                results.count(observe)
            );
        }
    }
    Ok(())
}
