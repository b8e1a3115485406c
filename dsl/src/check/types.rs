//! Expressions typed in the process scope, and the types each clause demands: timers,
//! intervals, correlation keys and schedules.

use super::ProcessChecker;
use crate::codes;
use crate::diag::Span;
use crate::expr::{Expr, Scope, Type, check_condition, check_expr, check_timer};
use crate::model::CExpr;
use crate::schedule::{Schedule, ScheduleError};

impl ProcessChecker<'_> {
    /// Type-checks `e` in the process scope and keeps its source text.
    pub(super) fn expr(&mut self, e: &Expr) -> (CExpr, Type) {
        // Borrow the scope without cloning it: processes have hundreds of names.
        let scope = std::mem::take(&mut self.scope);
        let result = self.expr_in(e, &scope);
        self.scope = scope;
        result
    }

    pub(super) fn expr_in(&mut self, e: &Expr, scope: &Scope) -> (CExpr, Type) {
        let (ty, mut found) = check_expr(e, scope, self.file);
        self.diags.append(&mut found);
        self.business_needs_calendar(e);
        (self.cexpr(e), ty)
    }

    /// Business days and hours count on the calendar of the approval's roles, or else on the
    /// process's calendar: without either they are refused.
    fn business_needs_calendar(&mut self, e: &Expr) {
        let spans = e.business_spans();
        if self.task_calendar.is_some() {
            self.task_calendar_used |= !spans.is_empty();
            return;
        }
        if self.names_calendar {
            return;
        }
        for span in spans {
            let mut help = "name the calendar it counts on in the process, such as `calendar cn`".to_string();
            if let Some(name) = self.calendars.keys().next().filter(|_| self.calendars.len() == 1) {
                help = format!("name the calendar it counts on in the process: `calendar {name}`");
            } else if !self.calendars.is_empty() {
                let names: Vec<String> = self.calendars.keys().map(|c| format!("`{c}`")).collect();
                help.push_str(&format!(" (the project declares {})", names.join(", ")));
            }
            self.err(
                codes::NO_CALENDAR,
                span,
                format!("business time in process `{}`, which names no calendar", self.p.key.name),
                "counted on which calendar?",
                help,
            );
        }
    }

    fn cexpr(&self, e: &Expr) -> CExpr {
        CExpr::from_parsed(self.text.get(e.span.start..e.span.end).unwrap_or_default(), e)
    }

    pub(super) fn condition(&mut self, e: &Expr) -> CExpr {
        let mut found = check_condition(e, &self.scope, self.file);
        self.diags.append(&mut found);
        self.business_needs_calendar(e);
        self.cexpr(e)
    }

    pub(super) fn expect_fits(&mut self, want: &Type, got: &Type, span: Span, what: &str) {
        if !want.accepts(got) {
            self.err(
                codes::TYPE_MISMATCH,
                span,
                format!("{what} must be `{want}`, found `{got}`"),
                format!("this is `{got}`"),
                format!("write a value of type `{want}` here"),
            );
        }
    }

    pub(super) fn timer(&mut self, e: &Expr, what: &str) -> CExpr {
        let scope = std::mem::take(&mut self.scope);
        let (ty, mut found) = check_timer(e, &scope, self.file);
        self.scope = scope;
        self.diags.append(&mut found);
        self.business_needs_calendar(e);
        let c = self.cexpr(e);
        if !matches!(ty, Type::Duration | Type::Date | Type::DateTime | Type::Any | Type::Null) {
            self.err(
                codes::TYPE_MISMATCH,
                e.span,
                format!("{what} needs a duration, a date or a datetime, found `{ty}`"),
                format!("this is `{ty}`"),
                "write a duration such as `24h`, or a date such as `due_date + 7d`",
            );
        }
        c
    }

    pub(super) fn interval(&mut self, e: &Expr, what: &str) -> CExpr {
        if e.business().is_some() {
            self.err(
                codes::INVALID_LITERAL,
                e.span,
                format!("{what} repeats a fixed duration, and business time is not one"),
                "business time here",
                "write a duration such as `1d`, or a non-repeating timer: `also after 2 business days, 4 business days`",
            );
            return self.cexpr(e);
        }
        let (c, ty) = self.expr(e);
        if !matches!(ty, Type::Duration | Type::Any) {
            self.err(
                codes::TYPE_MISMATCH,
                e.span,
                format!("{what} needs a duration, found `{ty}`"),
                format!("this is `{ty}`"),
                "write a duration such as `8h` or `1d`",
            );
        }
        c
    }

    pub(super) fn schedule(&mut self, cron: &str, cron_span: Span, zone: Option<&(String, Span)>) -> Option<Schedule> {
        match Schedule::parse(cron, zone.map(|(z, _)| z.as_str())) {
            Ok(s) => Some(s),
            Err(e) => {
                let help = e.help();
                let (code, span) = match &e {
                    ScheduleError::UnknownZone { .. } => (codes::UNKNOWN_ZONE, zone.map_or(cron_span, |(_, s)| *s)),
                    _ => (codes::INVALID_SCHEDULE, cron_span),
                };
                let label = if code == codes::UNKNOWN_ZONE { "not an IANA time zone" } else { "invalid schedule" };
                self.err(code, span, e.to_string(), label, help);
                None
            }
        }
    }

    /// A correlation key: text or int, compared with the key of each message.
    pub(super) fn key(&mut self, e: &Expr) -> CExpr {
        let (c, ty) = self.expr(e);
        if !matches!(ty, Type::Text | Type::User | Type::Int | Type::Any) {
            self.err(
                codes::TYPE_MISMATCH,
                e.span,
                format!("a correlation key must be text or int, found `{ty}`"),
                format!("this is `{ty}`"),
                "correlate on an id, such as `key invoice_id`",
            );
        }
        c
    }
}
