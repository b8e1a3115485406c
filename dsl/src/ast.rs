//! The syntax tree of a `.flow` file, with spans, as written (before names are resolved).

use crate::diag::{FileId, Span};
use crate::expr::{Expr, Type};

/// A name with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// One parsed file: role declarations and processes.
#[derive(Debug, Clone, Default)]
pub struct File {
    /// The file's id in the source map.
    pub file: FileId,
    /// `roles { ... }` entries.
    pub roles: Vec<RoleDecl>,
    /// `process ... { ... }` blocks.
    pub processes: Vec<Process>,
    /// `calendar ... { ... }` blocks.
    pub calendars: Vec<CalendarDecl>,
}

/// A `calendar name "Title" { ... }` block, as written (checked in stage 2).
#[derive(Debug, Clone)]
pub struct CalendarDecl {
    /// The file it is in.
    pub file: FileId,
    /// The name processes refer to it by.
    pub name: Ident,
    /// The human title.
    pub title: Option<String>,
    /// `zone "Asia/Shanghai"`, every one written (more than one is an error).
    pub zones: Vec<(String, Span)>,
    /// `week mon-fri, sat`: every one written (more than one is an error).
    pub weeks: Vec<WeekClause>,
    /// `hours 09:00-12:00, 13:00-18:00`: every one written (more than one is an error).
    pub hours: Vec<HoursClause>,
    /// `holiday ...` and `workday ...` lines, in order.
    pub days: Vec<DayDecl>,
    /// The whole block.
    pub span: Span,
}

/// `week mon-fri, sat`
#[derive(Debug, Clone)]
pub struct WeekClause {
    /// Each day (`sat`: `last` is `None`) or range of days (`mon-fri`).
    pub days: Vec<(Ident, Option<Ident>)>,
    /// The whole clause.
    pub span: Span,
}

/// `hours 09:00-12:00, 13:00-18:00`
#[derive(Debug, Clone)]
pub struct HoursClause {
    /// Each period as written: start, end, and where the period is.
    pub periods: Vec<ClockPeriod>,
    /// The whole clause.
    pub span: Span,
}

/// `09:00-12:00`, as written.
#[derive(Debug, Clone)]
pub struct ClockPeriod {
    /// The start, `09:00`.
    pub start: String,
    /// The end, `12:00`.
    pub end: String,
    /// Where the period is.
    pub span: Span,
}

/// `holiday 2026-02-15..2026-02-23 "Spring Festival"` or `workday 2026-02-14 "..."`.
#[derive(Debug, Clone)]
pub struct DayDecl {
    /// True for `workday` (a make-up working day), false for `holiday`.
    pub working: bool,
    /// The first date as written.
    pub from: (String, Span),
    /// The last date of a range, as written.
    pub to: Option<(String, Span)>,
    /// What the day is, for people.
    pub title: Option<String>,
    /// The whole line.
    pub span: Span,
}

/// `sales.manager "Sales manager"` inside a `roles` block.
#[derive(Debug, Clone)]
pub struct RoleDecl {
    /// The dotted role name.
    pub name: Ident,
    /// The human title.
    pub title: Option<String>,
    /// The title in Chinese (`zh "销售经理"`), if given.
    pub title_zh: Option<String>,
    /// `calendar cn`: the calendar its people's business days and hours count on.
    pub calendar: Option<Ident>,
}

/// A `process` block.
#[derive(Debug, Clone)]
pub struct Process {
    /// The file it is in.
    pub file: FileId,
    /// The process key.
    pub key: Ident,
    /// The human title.
    pub title: Option<String>,
    /// The title in Simplified Chinese (`zh "..."` after the title), if given.
    pub title_zh: Option<String>,
    /// The `input { ... }` declarations.
    pub inputs: Vec<VarDecl>,
    /// The `var` declarations.
    pub vars: Vec<VarDecl>,
    /// Nodes in the order written (starts included).
    pub nodes: Vec<Node>,
    /// The `access { ... }` block, if written.
    pub access: Option<AccessDecl>,
    /// `calendar name`: the calendar its business days and hours count on; every one written.
    pub calendars: Vec<Ident>,
    /// The whole block.
    pub span: Span,
}

/// `access { start by ...  requester x  on behalf by ...  read by ...  called only }`.
#[derive(Debug, Clone, Default)]
pub struct AccessDecl {
    /// `start by`: roles that may start the process.
    pub start_by: Vec<Ident>,
    /// `on behalf by`: roles that may name another requester than themselves.
    pub on_behalf_by: Vec<Ident>,
    /// `read by`: roles that may read every instance.
    pub read_by: Vec<Ident>,
    /// `requester x`: the input the server fills with the starting user.
    pub requester: Option<Ident>,
    /// `called only`, where written.
    pub called_only: Option<Span>,
    /// The whole block.
    pub span: Span,
}

/// A limit on a declared number: `> 0`, `<= 1_000_000`.
#[derive(Debug, Clone)]
pub struct BoundDecl {
    /// The comparison, as written: `>`, `>=`, `<` or `<=`.
    pub op: String,
    /// The literal, as written.
    pub value: String,
    /// Where it is.
    pub span: Span,
}

/// A declared variable, input or form field.
#[derive(Debug, Clone)]
pub struct VarDecl {
    /// Its name.
    pub name: Ident,
    /// Its type as written.
    pub ty: TypeRef,
    /// `= expr`, if given.
    pub default: Option<Expr>,
    /// Limits on the value (`> 0`), checked where values come in.
    pub bounds: Vec<BoundDecl>,
}

/// A type as written: resolved to a [`Type`] plus whether `?` was given.
#[derive(Debug, Clone)]
pub struct TypeRef {
    /// The resolved type (`Any` when the name was unknown; a diagnostic says so).
    pub ty: Type,
    /// Declared with `?`: the value may be absent.
    pub optional: bool,
    /// Where the type is written.
    pub span: Span,
}

/// Where the flow goes: a node by name, or a decide or set written in place.
#[derive(Debug, Clone)]
pub enum Target {
    /// `-> name`
    Node(Ident),
    /// `-> decide { ... }`
    Decide(Box<DecideBody>, Span),
    /// `-> set a = 1 -> next`
    Set(Vec<Assignment>, Box<Target>, Span),
}

impl Target {
    /// Where the target is written.
    pub fn span(&self) -> Span {
        match self {
            Target::Node(id) => id.span,
            Target::Decide(_, span) | Target::Set(_, _, span) => *span,
        }
    }
}

/// `name = expr`
#[derive(Debug, Clone)]
pub struct Assignment {
    /// The variable assigned.
    pub name: Ident,
    /// The value.
    pub value: Expr,
}

/// `name` or `name: expr` in an `in { }` or `out { }` block.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The name on the receiving side.
    pub name: Ident,
    /// The value; `None` means "the same name on the giving side".
    pub value: Option<Expr>,
}

/// The arms of a decide.
#[derive(Debug, Clone, Default)]
pub struct DecideBody {
    /// `when cond -> target`, in order.
    pub arms: Vec<(Expr, Target)>,
    /// `otherwise -> target`, with the span of `otherwise`.
    pub otherwise: Option<(Span, Target)>,
}

/// A node declaration.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name (`start` for an unnamed start).
    pub name: Ident,
    /// Its title, if given.
    pub title: Option<String>,
    /// Its title in Simplified Chinese (`zh "..."` after the title), if given.
    pub title_zh: Option<String>,
    /// What kind of node, with its clauses.
    pub kind: NodeKind,
    /// `-> target` after the block, for kinds that have one.
    pub next: Option<Target>,
    /// The span of the keyword through the name, where diagnostics about the node point.
    pub head: Span,
}

/// How a start event is triggered.
#[derive(Debug, Clone)]
pub enum StartTrigger {
    /// Started through the API or by a caller.
    None,
    /// `on message "name"`
    Message(String, Span),
    /// `every "cron" [in "Zone"]`
    Schedule { cron: String, cron_span: Span, zone: Option<(String, Span)> },
}

/// How an end event ends.
#[derive(Debug, Clone)]
pub enum EndKind {
    /// A normal end with an outcome (the end's name).
    Normal,
    /// `error "code"`: raises a business error to the caller.
    Error(String),
    /// `terminate`: ends every token of the instance.
    Terminate,
}

/// A boundary event attached to a waiting node.
#[derive(Debug, Clone)]
pub enum Boundary {
    /// `on error ["code"] -> target`
    Error { code: Option<String>, target: Target, span: Span },
    /// `after expr -> target` / `escalate after expr -> target` (interrupting)
    After { at: Expr, target: Target, span: Span },
    /// `also after a, b -> target` (non-interrupting, once per time)
    AlsoAfter { at: Vec<Expr>, target: Target, span: Span },
    /// `every duration -> target` (non-interrupting, repeating)
    Every { interval: Expr, target: Target, span: Span },
}

/// `remind after a, b` / `remind every d`: built-in reminders of an approval.
#[derive(Debug, Clone)]
pub enum Remind {
    /// Once at each time.
    After(Vec<Expr>),
    /// Repeatedly.
    Every(Expr),
}

/// How a wait node waits.
#[derive(Debug, Clone)]
pub enum WaitSpec {
    /// `for duration`
    For(Expr),
    /// `until date_or_datetime`
    Until(Expr),
    /// `until next "cron" [in "Zone"]`
    Cron { cron: String, cron_span: Span, zone: Option<(String, Span)> },
}

/// An arm of `wait first`.
#[derive(Debug, Clone)]
pub enum FirstArm {
    /// `message "name" key expr [out {..}] -> target`
    Message { name: String, key: Expr, outputs: Vec<Mapping>, target: Target, span: Span },
    /// `after expr -> target`
    After { at: Expr, target: Target, span: Span },
}

/// The node kinds with their clauses.
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// `start ...`
    Start(StartTrigger),
    /// `end ...`
    End(EndKind),
    /// `task name { job "type" ... }`
    Task {
        job: Option<(String, Span)>,
        inputs: Vec<Mapping>,
        outputs: Vec<Mapping>,
        retry: Option<Retry>,
        timeout: Option<(i64, Span)>,
        boundaries: Vec<Boundary>,
    },
    /// `approval name { role ...; form { ... } ... }`
    Approval {
        roles: Vec<Ident>,
        assignee: Option<Expr>,
        not_by: Vec<Expr>,
        form: Vec<VarDecl>,
        due: Option<Expr>,
        reminders: Vec<Remind>,
        outputs: Vec<Mapping>,
        boundaries: Vec<Boundary>,
        /// `show { a, b }`: the variables shown beside the task.
        show: Vec<Ident>,
    },
    /// `set name { a = expr ... }`
    Set(Vec<Assignment>),
    /// `decide name { when ... otherwise ... }`
    Decide(DecideBody),
    /// `parallel name { -> a -> b }`
    Parallel(Vec<Target>),
    /// `join name -> next`
    Join,
    /// `wait first name { ... }`
    First(Vec<FirstArm>),
    /// `receive name { message "m" key expr ... }`
    Receive { message: Option<(String, Span)>, key: Option<Expr>, outputs: Vec<Mapping>, boundaries: Vec<Boundary> },
    /// `wait name { for d | until t | until next "cron" }`
    Wait { spec: WaitSpec, boundaries: Vec<Boundary> },
    /// `call name { process key; in {..}; out {..} }`
    Call { process: Option<Ident>, inputs: Vec<Mapping>, outputs: Vec<Mapping>, boundaries: Vec<Boundary> },
}

/// `retry N [backoff D [fixed]]`
#[derive(Debug, Clone)]
pub struct Retry {
    /// How many times a failed job is tried again.
    pub attempts: u32,
    /// The first wait between attempts, in seconds.
    pub backoff_secs: i64,
    /// `fixed`: every wait is the same; otherwise each wait doubles.
    pub fixed: bool,
    /// Where the clause is written.
    pub span: Span,
}
