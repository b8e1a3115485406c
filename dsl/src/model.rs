//! The compiled form of a process: what the engine runs, what `graph` exports, what deployments
//! store. It is plain data, serde-serializable and deterministic: the same source always gives
//! byte-identical JSON. Node references are node names; expressions travel as their source text
//! and are parsed again when loaded, so the JSON stays readable.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::calendar::Calendar;
use crate::diag::FileId;
use crate::expr::{Expr, Type, parse_expr};
use crate::schedule::Schedule;

/// An expression with its source text. Serialized as the text alone.
#[derive(Debug, Clone, PartialEq)]
pub struct CExpr {
    source: String,
    ast: Expr,
}

impl CExpr {
    /// Parses `source` as one expression.
    pub fn parse(source: &str) -> Result<CExpr, String> {
        match parse_expr(source, FileId(0)) {
            Ok(ast) => Ok(CExpr { source: source.to_string(), ast }),
            Err(diag) => Err(format!("invalid expression `{source}`: {}", diag.message)),
        }
    }

    /// Wraps an expression already parsed out of a larger text: `source` is the text its span
    /// covers. Spans are moved to be relative to `source`, as [`CExpr::parse`] would give them.
    pub fn from_parsed(source: &str, ast: &Expr) -> CExpr {
        let mut ast = ast.clone();
        let offset = ast.span.start;
        rebase(&mut ast, offset);
        CExpr { source: source.to_string(), ast }
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The syntax tree (spans relative to [`CExpr::source`]).
    pub fn ast(&self) -> &Expr {
        &self.ast
    }
}

fn rebase(e: &mut Expr, offset: usize) {
    e.span.start -= offset.min(e.span.start);
    e.span.end -= offset.min(e.span.end);
    for child in e.children_mut() {
        rebase(child, offset);
    }
}

impl fmt::Display for CExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for CExpr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for CExpr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        CExpr::parse(&source).map_err(serde::de::Error::custom)
    }
}

/// A compiled process definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompiledProcess {
    /// The process key (`order_approval`).
    pub key: String,
    /// The human title.
    pub title: String,
    /// The title in Simplified Chinese, for pages read in Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_zh: Option<String>,
    /// Inputs a start must provide (unless optional or defaulted).
    pub inputs: Vec<VarDef>,
    /// Variables with their initial values.
    pub vars: Vec<VarDef>,
    /// Roles the process's approvals are offered to.
    pub roles: Vec<String>,
    /// Every node, in declaration order; anonymous decides and sets follow their owner.
    pub nodes: Vec<Node>,
    /// Who may start and read instances (`access { ... }`); none written is the safe default.
    #[serde(default, skip_serializing_if = "Access::is_default")]
    pub access: Access,
    /// The business calendar its business days and hours count on (`calendar cn`), carried
    /// whole so that the engine computes due times from the definition alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<Calendar>,
    /// The calendars its approvals' roles work on (`finance.ar_clerk "AR clerk" calendar cn`),
    /// by name: those an approval's business-time `due`, reminders and escalations count on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub role_calendars: BTreeMap<String, Calendar>,
    /// The titles of the roles in `roles` that the roles block titles (`sales.manager "Sales
    /// manager" zh "销售经理"`), by name: what pages and mail call them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub role_titles: BTreeMap<String, RoleTitle>,
}

/// A role's title as the roles block writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleTitle {
    /// The title.
    pub title: String,
    /// The title in Simplified Chinese, if written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_zh: Option<String>,
}

/// Who may do what with a process's instances, as declared in its `access { ... }` block.
///
/// With nothing declared, only administrators start the process over the API, and only the
/// people who take part in an instance (and administrators and auditors) read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// Roles that may start the process (`start by`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_by: Vec<String>,
    /// Roles that may start it naming another requester than themselves (`on behalf by`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_behalf_by: Vec<String>,
    /// Roles that may read every instance (`read by`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_by: Vec<String>,
    /// The `user` input the server fills with the starting user (`requester`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// Only another process may start it (`called only`): never a request or a message.
    #[serde(default, skip_serializing_if = "is_false")]
    pub called_only: bool,
}

impl Access {
    fn is_default(&self) -> bool {
        *self == Access::default()
    }
}

/// The comparison of a [`Bound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BoundOp {
    /// `>`
    #[serde(rename = ">")]
    Greater,
    /// `>=`
    #[serde(rename = ">=")]
    AtLeast,
    /// `<`
    #[serde(rename = "<")]
    Less,
    /// `<=`
    #[serde(rename = "<=")]
    AtMost,
}

/// A limit on a number that comes in from outside (`amount: money > 0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    /// The comparison.
    pub op: BoundOp,
    /// The limit.
    #[serde(with = "rust_decimal::serde::str")]
    pub value: rust_decimal::Decimal,
}

impl Bound {
    /// True when `n` is within the limit.
    pub fn admits(&self, n: rust_decimal::Decimal) -> bool {
        match self.op {
            BoundOp::Greater => n > self.value,
            BoundOp::AtLeast => n >= self.value,
            BoundOp::Less => n < self.value,
            BoundOp::AtMost => n <= self.value,
        }
    }

    /// The rule in words: `must be greater than 0`.
    pub fn rule(&self) -> String {
        let words = match self.op {
            BoundOp::Greater => "greater than",
            BoundOp::AtLeast => "at least",
            BoundOp::Less => "less than",
            BoundOp::AtMost => "at most",
        };
        format!("must be {words} {}", self.value)
    }
}

/// Decimals a money amount may carry (the cents of the currencies the ledger books).
pub const MONEY_DECIMALS: u32 = 2;

/// The largest money amount that comes in from outside: a quadrillion (10^15).
pub const MONEY_LIMIT: i64 = 1_000_000_000_000_000;

/// Checks a value that comes in from outside (a start's input, a form field, a message's
/// variable) against the limits of its declaration; the rule it breaks, in words.
///
/// Money also carries at most [`MONEY_DECIMALS`] decimals and stays within [`MONEY_LIMIT`], so
/// that `100.005`, `1e27` or `0.30000000000000004` never reach the ledger. Null passes: whether
/// a value may be absent is the declaration's `?`.
pub fn admit(value: &crate::expr::Value, ty: &Type, bounds: &[Bound]) -> Result<(), String> {
    let crate::expr::Value::Number(n) = value else { return Ok(()) };
    if *ty == Type::Money {
        if n.normalize().scale() > MONEY_DECIMALS {
            return Err(format!("must have at most {MONEY_DECIMALS} decimals (a whole number of cents)"));
        }
        if n.abs() >= rust_decimal::Decimal::from(MONEY_LIMIT) {
            return Err("must be less than 1000000000000000 in size".to_string());
        }
    }
    match bounds.iter().find(|b| !b.admits(*n)) {
        Some(broken) => Err(broken.rule()),
        None => Ok(()),
    }
}

impl CompiledProcess {
    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Index of nodes by name, for callers that look up often.
    pub fn index(&self) -> BTreeMap<&str, usize> {
        self.nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect()
    }

    /// Every flow between nodes, in a stable order.
    pub fn edges(&self) -> Vec<Edge<'_>> {
        let mut edges = Vec::new();
        for node in &self.nodes {
            node.kind.for_each_edge(|to, kind| edges.push(Edge { from: &node.name, to, kind }));
        }
        edges
    }

    /// The JSON form (pretty, stable key order).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A flow from one node to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge<'a> {
    /// The node it leaves.
    pub from: &'a str,
    /// The node it enters.
    pub to: &'a str,
    /// Why the flow is taken.
    pub kind: EdgeKind,
}

/// Why a flow is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeKind {
    /// The normal next step.
    Next,
    /// A decide arm, with its condition.
    When(String),
    /// A decide's `otherwise`.
    Otherwise,
    /// A parallel branch.
    Branch,
    /// A boundary or wait-first event; `interrupting` says whether it cancels the node.
    Event { label: String, interrupting: bool },
    /// A business error caught by `on error`.
    Error(Option<String>),
}

/// A flow out of a node, borrowed from the graph (see [`NodeKind::for_each_flow`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Flow<'a> {
    /// The normal next step.
    Next,
    /// A decide arm.
    When(&'a CExpr),
    /// A decide's `otherwise`.
    Otherwise,
    /// A parallel branch.
    Branch,
    /// A boundary event.
    Boundary(&'a Boundary),
    /// An event of a `wait first`.
    First(&'a FirstArm),
}

impl Flow<'_> {
    /// True for the flows of non-interrupting events: they start a side path.
    pub fn is_side_path(&self) -> bool {
        matches!(self, Flow::Boundary(Boundary { event: BoundaryEvent::Timer { interrupting: false, .. }, .. }))
    }
}

/// A declared variable or input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VarDef {
    /// The name.
    pub name: String,
    /// The type.
    #[serde(rename = "type")]
    pub ty: Type,
    /// May be absent (`?`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
    /// Initial value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<CExpr>,
    /// Limits on the values that come in from outside (`> 0`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<Bound>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique within the process; anonymous nodes are named after their owner (`route:set`).
    pub name: String,
    /// The title shown to people; may hold `{variable}` placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The title in Simplified Chinese, for pages read in Chinese; same placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_zh: Option<String>,
    /// What it does.
    #[serde(flatten)]
    pub kind: NodeKind,
}

/// A `name: expr` mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    /// The receiving name.
    pub name: String,
    /// The value, evaluated on the giving side.
    pub value: CExpr,
}

/// Retries of a failed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// How many times a failed job is tried again before an incident is raised.
    pub attempts: u32,
    /// Wait before the first retry, in seconds.
    pub backoff_secs: i64,
    /// Each wait doubles (true) or stays the same (false).
    pub exponential: bool,
}

impl Default for RetryPolicy {
    /// Three retries, 10 s apart, doubling: a flaky ERP gets 70 s to recover before an incident.
    fn default() -> Self {
        RetryPolicy { attempts: 3, backoff_secs: 10, exponential: true }
    }
}

impl RetryPolicy {
    /// The wait before retry number `n` (1-based), in seconds, capped at one day.
    pub fn delay_secs(&self, n: u32) -> i64 {
        if !self.exponential || n <= 1 {
            return self.backoff_secs;
        }
        let factor = 1i64.checked_shl(n.saturating_sub(1).min(40)).unwrap_or(i64::MAX);
        self.backoff_secs.saturating_mul(factor).min(86_400)
    }
}

/// What starts an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "on")]
pub enum Trigger {
    /// The API or a calling process.
    Request,
    /// A message with this name.
    Message {
        /// The message name.
        message: String,
    },
    /// A cron schedule.
    Schedule {
        /// When.
        schedule: Schedule,
    },
}

/// How an end event ends the token or the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "end")]
pub enum EndKind {
    /// Ends the token; the instance completes with this end's name as outcome.
    Normal,
    /// Raises a business error to a calling process.
    Error {
        /// The error code.
        code: String,
    },
    /// Ends every token of the instance at once.
    Terminate,
}

/// When a timer fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerSpec {
    /// A duration after the node is entered, or a date / datetime (evaluated on entry).
    At(CExpr),
    /// Repeatedly, every duration after entry.
    Every(CExpr),
    /// The next time of a cron schedule.
    Cron(Schedule),
}

/// An event attached to a waiting node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum BoundaryEvent {
    /// A business error raised by the job or the called process (`None`: any code).
    Error {
        /// The code caught.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// A timer; an interrupting one cancels the node.
    Timer {
        /// When.
        timer: TimerSpec,
        /// Cancels the node when it fires.
        interrupting: bool,
    },
}

/// A boundary event and where it leads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boundary {
    /// The event.
    #[serde(flatten)]
    pub event: BoundaryEvent,
    /// The node the event leads to.
    pub next: String,
}

/// A reminder sent to an approval's candidates; the approval goes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reminder {
    /// Once, a duration after the task opens or at a date.
    At(CExpr),
    /// Repeatedly.
    Every(CExpr),
}

/// A field of an approval's form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormField {
    /// The field name; the value becomes the process variable of this name.
    pub name: String,
    /// The type the submitted value must have.
    #[serde(rename = "type")]
    pub ty: Type,
    /// May be left out.
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
    /// Limits on the submitted value (`> 0`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<Bound>,
}

/// A decide arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    /// The condition; only `true` takes the arm (null and false do not).
    pub when: CExpr,
    /// Where it leads.
    pub next: String,
}

/// An event of a `wait first`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum FirstEvent {
    /// A correlated message.
    Message {
        /// The message name.
        message: String,
        /// The correlation key.
        key: CExpr,
        /// Variables set from the message's payload.
        outputs: Vec<Mapping>,
    },
    /// A timer.
    Timer {
        /// When.
        at: CExpr,
    },
}

/// An arm of a `wait first`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstArm {
    /// The event.
    #[serde(flatten)]
    pub event: FirstEvent,
    /// Where it leads.
    pub next: String,
}

/// What a wait node waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitUntil {
    /// A duration after entry, or a date / datetime.
    At(CExpr),
    /// The next time of a cron schedule.
    Cron(Schedule),
}

/// The node kinds with their compiled configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NodeKind {
    /// Where tokens are born.
    Start {
        /// What starts it.
        #[serde(flatten)]
        trigger: Trigger,
        /// The first node.
        next: String,
    },
    /// Where tokens die.
    End {
        /// How.
        #[serde(flatten)]
        end: EndKind,
        /// Reached only by the path of a non-interrupting event: ends that token and gives the
        /// instance no outcome.
        #[serde(default, skip_serializing_if = "is_false")]
        side_path: bool,
    },
    /// An automated step run by a worker.
    Task {
        /// The job type workers subscribe to.
        job: String,
        /// The job's input, evaluated over the instance's variables.
        inputs: Vec<Mapping>,
        /// Variables set from the job's result.
        outputs: Vec<Mapping>,
        /// Retries.
        retry: RetryPolicy,
        /// How long one attempt may run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<i64>,
        /// Boundary events.
        boundaries: Vec<Boundary>,
        /// The next node.
        next: String,
    },
    /// A human task with a form.
    Approval {
        /// Roles whose members may claim it.
        roles: Vec<String>,
        /// A user the task is assigned to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee: Option<CExpr>,
        /// Users who may not complete it (separation of duties).
        not_by: Vec<CExpr>,
        /// The form; each field becomes a process variable.
        form: Vec<FormField>,
        /// When it is due (the SLA).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due: Option<CExpr>,
        /// The calendar (in `role_calendars`) its business-time `due`, reminders and escalations
        /// count on, when its roles name one; the process's calendar otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        calendar: Option<String>,
        /// Reminders; the task stays open.
        reminders: Vec<Reminder>,
        /// Boundary events (escalation).
        boundaries: Vec<Boundary>,
        /// The variables shown beside the task in an inbox (`show { ... }`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        show: Vec<String>,
        /// The next node.
        next: String,
    },
    /// Assigns variables.
    Set {
        /// In order; later ones see earlier ones.
        assignments: Vec<Mapping>,
        /// The next node.
        next: String,
    },
    /// Takes the first arm whose condition is true.
    Decide {
        /// The arms in order.
        arms: Vec<Arm>,
        /// Taken when no arm is; `None` only when the arms are proven exhaustive.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        otherwise: Option<String>,
    },
    /// Starts every branch at once.
    Split {
        /// The first node of each branch.
        branches: Vec<String>,
        /// The join that synchronises them.
        join: String,
    },
    /// Waits for one token from every branch of its split.
    Join {
        /// The split whose branches it waits for.
        split: String,
        /// The next node.
        next: String,
    },
    /// Waits for whichever event comes first.
    First {
        /// The events.
        arms: Vec<FirstArm>,
    },
    /// Waits for a correlated message.
    Receive {
        /// The message name.
        message: String,
        /// The correlation key: a message matches when its key equals this value.
        key: CExpr,
        /// Variables set from the message's payload.
        outputs: Vec<Mapping>,
        /// Boundary events.
        boundaries: Vec<Boundary>,
        /// The next node.
        next: String,
    },
    /// Waits for a time.
    Wait {
        /// Until when.
        until: WaitUntil,
        /// Boundary events.
        boundaries: Vec<Boundary>,
        /// The next node.
        next: String,
    },
    /// Runs another process and waits for it.
    Call {
        /// The called process's key.
        process: String,
        /// The child's inputs, evaluated over this instance's variables.
        inputs: Vec<Mapping>,
        /// Variables set from the child's variables (and `outcome`).
        outputs: Vec<Mapping>,
        /// Boundary events (errors raised by the child, timers).
        boundaries: Vec<Boundary>,
        /// The next node.
        next: String,
    },
}

impl NodeKind {
    /// True for nodes where an instance waits for a person, a message or time.
    pub fn is_wait_state(&self) -> bool {
        matches!(
            self,
            NodeKind::Approval { .. } | NodeKind::First { .. } | NodeKind::Receive { .. } | NodeKind::Wait { .. }
        )
    }

    /// A short word for the kind, as used in messages and exports.
    pub fn word(&self) -> &'static str {
        match self {
            NodeKind::Start { .. } => "start",
            NodeKind::End { .. } => "end",
            NodeKind::Task { .. } => "task",
            NodeKind::Approval { .. } => "approval",
            NodeKind::Set { .. } => "set",
            NodeKind::Decide { .. } => "decide",
            NodeKind::Split { .. } => "parallel",
            NodeKind::Join { .. } => "join",
            NodeKind::First { .. } => "wait first",
            NodeKind::Receive { .. } => "receive",
            NodeKind::Wait { .. } => "wait",
            NodeKind::Call { .. } => "call",
        }
    }

    /// Calls `f` with every flow leaving a node, without building labels.
    pub fn for_each_flow<'a>(&'a self, mut f: impl FnMut(&'a str, Flow<'a>)) {
        match self {
            NodeKind::Start { next, .. } | NodeKind::Set { next, .. } | NodeKind::Join { next, .. } => {
                f(next, Flow::Next)
            }
            NodeKind::End { .. } => {}
            NodeKind::Task { boundaries, next, .. }
            | NodeKind::Approval { boundaries, next, .. }
            | NodeKind::Receive { boundaries, next, .. }
            | NodeKind::Wait { boundaries, next, .. }
            | NodeKind::Call { boundaries, next, .. } => {
                f(next, Flow::Next);
                for b in boundaries {
                    f(&b.next, Flow::Boundary(b));
                }
            }
            NodeKind::Decide { arms, otherwise } => {
                for arm in arms {
                    f(&arm.next, Flow::When(&arm.when));
                }
                if let Some(o) = otherwise {
                    f(o, Flow::Otherwise);
                }
            }
            NodeKind::Split { branches, .. } => {
                for b in branches {
                    f(b, Flow::Branch);
                }
            }
            NodeKind::First { arms } => {
                for arm in arms {
                    f(&arm.next, Flow::First(arm));
                }
            }
        }
    }

    fn for_each_edge<'a>(&'a self, mut f: impl FnMut(&'a str, EdgeKind)) {
        self.for_each_flow(|to, flow| {
            let kind = match flow {
                Flow::Next => EdgeKind::Next,
                Flow::When(cond) => EdgeKind::When(cond.source().to_string()),
                Flow::Otherwise => EdgeKind::Otherwise,
                Flow::Branch => EdgeKind::Branch,
                Flow::Boundary(b) => match &b.event {
                    BoundaryEvent::Error { code } => EdgeKind::Error(code.clone()),
                    BoundaryEvent::Timer { timer, interrupting } => {
                        let label = match timer {
                            TimerSpec::At(e) => format!("after {e}"),
                            TimerSpec::Every(e) => format!("every {e}"),
                            TimerSpec::Cron(s) => format!("at {s}"),
                        };
                        EdgeKind::Event { label, interrupting: *interrupting }
                    }
                },
                Flow::First(arm) => {
                    let label = match &arm.event {
                        FirstEvent::Message { message, .. } => format!("message {message}"),
                        FirstEvent::Timer { at } => format!("after {at}"),
                    };
                    EdgeKind::Event { label, interrupting: true }
                }
            };
            f(to, kind);
        });
    }
}
