//! Alert rules: the `.rules` files beside the processes, written by finance people, checked like
//! processes (every problem a located diagnostic, all of them at once).
//!
//! ```text
//! # A customer who owes too much past due.
//! alert overdue_customer "A customer owes more than 20,000.00 past due" {
//!   when overdue_receivables by customer > 20000.00
//!   severity critical            # or warning (the default)
//!   notify finance.controller    # roles; the indicator's owner when absent
//! }
//! ```
//!
//! A condition names an indicator of the catalogue the caller passes in (the language does not
//! know the figures, only their names, units and splits), optionally split `by customer`, a
//! comparison (`>`, `>=`, `<`, `<=`) and a threshold in the indicator's unit: money as a decimal
//! with at most two places (`20000.00`), days as `60 days`, a ratio as a percentage (`20%`).

use rust_decimal::Decimal;

use crate::codes;
use crate::diag::{Diagnostic, FileId, Span};
use crate::suggest::did_you_mean;

/// What an indicator is measured in, as far as a threshold is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleUnit {
    /// An amount of money.
    Money,
    /// A number of days.
    Days,
    /// A fraction, written as a percentage.
    Ratio,
    /// How many (tasks, incidents): a whole number.
    Count,
}

/// An indicator a rule may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indicator<'a> {
    /// Its key.
    pub key: &'a str,
    /// Its unit.
    pub unit: RuleUnit,
    /// Whether it can be split by customer.
    pub by_customer: bool,
}

/// How a value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `>`
    Above,
    /// `>=`
    AtLeast,
    /// `<`
    Below,
    /// `<=`
    AtMost,
}

impl Comparison {
    /// True when `value` meets the condition against `threshold`.
    pub fn holds(self, value: Decimal, threshold: Decimal) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::AtLeast => value >= threshold,
            Comparison::Below => value < threshold,
            Comparison::AtMost => value <= threshold,
        }
    }

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Above => ">",
            Comparison::AtLeast => ">=",
            Comparison::Below => "<",
            Comparison::AtMost => "<=",
        }
    }
}

/// How loud an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSeverity {
    /// Worth a look.
    Warning,
    /// Act now.
    Critical,
}

impl RuleSeverity {
    /// The word as written.
    pub fn name(self) -> &'static str {
        match self {
            RuleSeverity::Warning => "warning",
            RuleSeverity::Critical => "critical",
        }
    }
}

/// One checked rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its name, unique in the project.
    pub name: String,
    /// What a person reads when it opens.
    pub title: String,
    /// The same in Simplified Chinese (`"Title" zh "标题"`), for people who read Chinese.
    pub title_zh: Option<String>,
    /// The indicator's key.
    pub indicator: String,
    /// Judged per customer rather than on the whole.
    pub by_customer: bool,
    /// The comparison.
    pub comparison: Comparison,
    /// The threshold, in the indicator's unit (a ratio as a fraction: `20%` is `0.2`).
    pub threshold: Decimal,
    /// How loud.
    pub severity: RuleSeverity,
    /// The roles told; empty means the indicator's owner.
    pub notify: Vec<String>,
}

/// Parses and checks one `.rules` file against `indicators` and, when given, the roles the
/// project declares (`notify` may name only those): its rules, or every problem found.
pub fn parse_rules(
    file: FileId,
    text: &str,
    indicators: &[Indicator<'_>],
    roles: Option<&[String]>,
) -> Result<Vec<Rule>, Vec<Diagnostic>> {
    let mut parser = RulesParser { file, text, pos: 0, diagnostics: Vec::new(), closed: false, roles };
    let mut rules: Vec<(Rule, Span)> = Vec::new();
    loop {
        parser.skip_blank();
        if parser.pos >= text.len() {
            break;
        }
        match parser.rule(indicators) {
            Some((rule, span)) => {
                if let Some((_, first)) = rules.iter().find(|(r, _)| r.name == rule.name) {
                    let first = *first;
                    parser.diagnostics.push(
                        Diagnostic::error(
                            codes::DUPLICATE,
                            file,
                            span,
                            format!("alert `{}` is declared twice", rule.name),
                        )
                        .with_label("second declaration")
                        .with_note(first, "first declared here")
                        .with_help("give each alert its own name"),
                    );
                } else {
                    rules.push((rule, span));
                }
            }
            // A rule read to its `}` needs no recovery; one cut short skips to its end.
            None if parser.closed => {}
            None => parser.recover(),
        }
    }
    if parser.diagnostics.is_empty() {
        Ok(rules.into_iter().map(|(r, _)| r).collect())
    } else {
        Err(parser.diagnostics)
    }
}

struct RulesParser<'t> {
    file: FileId,
    text: &'t str,
    pos: usize,
    diagnostics: Vec<Diagnostic>,
    /// Whether the rule being read reached its closing `}`.
    closed: bool,
    /// The roles the project declares, when known.
    roles: Option<&'t [String]>,
}

impl<'t> RulesParser<'t> {
    /// A `notify` role the project does not declare is an error naming the closest one.
    fn check_role(&mut self, role: &str, span: Span) {
        let Some(known) = self.roles else { return };
        if known.iter().any(|r| r == role) {
            return;
        }
        let diagnostic =
            Diagnostic::error(codes::UNKNOWN_NOTIFY_ROLE, self.file, span, format!("unknown role `{role}`"))
                .with_label("not declared in a `roles` block");
        let help = match did_you_mean(role, known.iter().map(String::as_str)) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("declare it in the project's `roles` block, or notify one of {}", known.join(", ")),
        };
        self.diagnostics.push(diagnostic.with_help(help));
    }

    fn rest(&self) -> &'t str {
        &self.text[self.pos..]
    }

    /// Skips spaces, line breaks and `#` comments.
    fn skip_blank(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with('#') {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else {
                return;
            }
        }
    }

    /// Skips spaces and comments on the current line only.
    fn skip_inline(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t']);
        self.pos += rest.len() - trimmed.len();
        if trimmed.starts_with('#') {
            self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
        }
    }

    /// A word of letters, digits, `_`, `.` and `-`, with its span.
    fn word(&mut self) -> Option<(&'t str, Span)> {
        let rest = self.rest();
        let len =
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))).unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        let span = Span::new(self.pos, self.pos + len);
        self.pos += len;
        Some((&rest[..len], span))
    }

    fn here(&self) -> Span {
        let next = self.rest().chars().next().map_or(0, char::len_utf8);
        Span::new(self.pos, self.pos + next)
    }

    fn expected(&mut self, what: &str, help: &str) {
        let span = self.here();
        let found = self.rest().chars().next().map_or_else(|| "the end of the file".to_string(), |c| format!("`{c}`"));
        self.diagnostics.push(
            Diagnostic::error(codes::SYNTAX, self.file, span, format!("expected {what}, found {found}"))
                .with_label(format!("{what} expected here"))
                .with_help(help.to_string()),
        );
    }

    /// After an error: skip to the line after the next `}` (or the end).
    fn recover(&mut self) {
        match self.rest().find('}') {
            Some(at) => self.pos += at + 1,
            None => self.pos = self.text.len(),
        }
    }

    fn rule(&mut self, indicators: &[Indicator<'_>]) -> Option<(Rule, Span)> {
        const SHAPE: &str = "write `alert name \"Title\" { when indicator > threshold }`";
        let start = self.pos;
        self.closed = false;
        match self.word() {
            Some(("alert", _)) => {}
            _ => {
                self.pos = start;
                self.expected("`alert`", SHAPE);
                return None;
            }
        }
        self.skip_inline();
        let Some((name, name_span)) = self.word() else {
            self.expected("the alert's name", SHAPE);
            return None;
        };
        if !name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) || name.contains(['.', '-']) {
            self.diagnostics.push(
                Diagnostic::error(codes::SYNTAX, self.file, name_span, format!("`{name}` is not an alert name"))
                    .with_label("a name is lowercase letters, digits and `_`, starting with a letter")
                    .with_help("write it like `overdue_customer`"),
            );
        }
        self.skip_inline();
        let title =
            self.title("the alert's title in double quotes", "write `alert name \"What a person reads\" { ... }`")?;
        self.skip_inline();
        let before_zh = self.pos;
        let title_zh = match self.word() {
            Some(("zh", _)) => {
                self.skip_inline();
                Some(self.title(
                    "the alert's title in Chinese, in double quotes",
                    "write `alert name \"Title\" zh \"标题\" { ... }`, or leave `zh` out",
                )?)
            }
            _ => {
                self.pos = before_zh;
                None
            }
        };
        self.skip_blank();
        if !self.rest().starts_with('{') {
            self.expected("`{`", SHAPE);
            return None;
        }
        self.pos += 1;
        let mut when: Option<(String, bool, Comparison, Decimal)> = None;
        let mut severity = RuleSeverity::Warning;
        let mut notify = Vec::new();
        loop {
            self.skip_blank();
            if self.rest().starts_with('}') {
                self.pos += 1;
                self.closed = true;
                break;
            }
            let Some((clause, clause_span)) = self.word() else {
                self.expected("`when`, `severity`, `notify` or `}`", SHAPE);
                return None;
            };
            self.skip_inline();
            match clause {
                "when" => when = self.condition(indicators),
                "severity" => match self.word() {
                    Some(("warning", _)) => severity = RuleSeverity::Warning,
                    Some(("critical", _)) => severity = RuleSeverity::Critical,
                    Some((other, span)) => self.diagnostics.push(
                        Diagnostic::error(codes::SYNTAX, self.file, span, format!("`{other}` is not a severity"))
                            .with_label("unknown severity")
                            .with_help("write `warning` or `critical`"),
                    ),
                    None => self.expected("`warning` or `critical`", "write `severity critical`"),
                },
                "notify" => loop {
                    match self.word() {
                        Some((role, span)) => {
                            self.check_role(role, span);
                            notify.push(role.to_string());
                        }
                        None => {
                            self.expected("a role", "write `notify finance.controller, finance.cfo`");
                            break;
                        }
                    }
                    self.skip_inline();
                    if self.rest().starts_with(',') {
                        self.pos += 1;
                        self.skip_inline();
                    } else {
                        break;
                    }
                },
                other => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::SYNTAX,
                            self.file,
                            clause_span,
                            format!("`{other}` is not a clause of an alert"),
                        )
                        .with_label("unknown clause")
                        .with_help("an alert has `when`, and optionally `severity` and `notify`"),
                    );
                    return None;
                }
            }
        }
        let span = Span::new(start, self.pos);
        let Some((indicator, by_customer, comparison, threshold)) = when else {
            if !self.diagnostics.iter().any(|d| d.span.start >= start) {
                self.diagnostics.push(
                    Diagnostic::error(codes::MISSING, self.file, name_span, format!("alert `{name}` has no `when`"))
                        .with_label("no condition")
                        .with_help("add a line such as `when days_sales_outstanding > 60 days`"),
                );
            }
            return None;
        };
        let rule = Rule {
            name: name.to_string(),
            title,
            title_zh,
            indicator,
            by_customer,
            comparison,
            threshold,
            severity,
            notify,
        };
        Some((rule, span))
    }

    fn title(&mut self, what: &str, how: &str) -> Option<String> {
        if !self.rest().starts_with('"') {
            self.expected(what, how);
            return None;
        }
        let open = self.pos;
        let body = &self.rest()[1..];
        match body.find(['"', '\n']) {
            Some(end) if body[end..].starts_with('"') => {
                self.pos += end + 2;
                Some(body[..end].to_string())
            }
            _ => {
                self.diagnostics.push(
                    Diagnostic::error(codes::SYNTAX, self.file, Span::new(open, open + 1), "unterminated title")
                        .with_label("this quote is never closed on its line")
                        .with_help("close the title with `\"` on the same line"),
                );
                None
            }
        }
    }

    fn condition(&mut self, indicators: &[Indicator<'_>]) -> Option<(String, bool, Comparison, Decimal)> {
        let Some((key, key_span)) = self.word() else {
            self.expected("an indicator", "write `when days_sales_outstanding > 60 days`");
            return None;
        };
        let indicator = indicators.iter().find(|i| i.key == key);
        if indicator.is_none() {
            let mut diagnostic =
                Diagnostic::error(codes::UNKNOWN_INDICATOR, self.file, key_span, format!("unknown indicator `{key}`"))
                    .with_label("not in the indicator catalogue");
            let keys: Vec<&str> = indicators.iter().map(|i| i.key).collect();
            diagnostic = match did_you_mean(key, keys.iter().copied()) {
                Some(close) => diagnostic.with_help(format!("did you mean `{close}`?")),
                None => diagnostic.with_help(format!("the indicators are {}", keys.join(", "))),
            };
            self.diagnostics.push(diagnostic);
        }
        self.skip_inline();
        let mut by_customer = false;
        let before_by = self.pos;
        if let Some(("by", _)) = self.word() {
            self.skip_inline();
            match self.word() {
                Some(("customer", split_span)) => {
                    by_customer = true;
                    if let Some(i) = indicator.filter(|i| !i.by_customer) {
                        self.diagnostics.push(
                            Diagnostic::error(
                                codes::NO_SUCH_SPLIT,
                                self.file,
                                split_span,
                                format!("`{}` cannot be split by customer", i.key),
                            )
                            .with_label("no split by customer")
                            .with_help("judge it on the whole: remove `by customer`"),
                        );
                    }
                }
                Some((other, span)) => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::NO_SUCH_SPLIT,
                            self.file,
                            span,
                            format!("an alert is judged per `{other}`: not a split"),
                        )
                        .with_label("unknown split")
                        .with_help("write `by customer`, or nothing to judge the whole"),
                    );
                }
                None => self.expected("`customer`", "write `by customer`"),
            }
            self.skip_inline();
        } else {
            self.pos = before_by;
        }
        let comparison = [
            (">=", Comparison::AtLeast),
            ("<=", Comparison::AtMost),
            (">", Comparison::Above),
            ("<", Comparison::Below),
        ]
        .into_iter()
        .find(|(symbol, _)| self.rest().starts_with(symbol));
        let Some((symbol, comparison)) = comparison else {
            self.expected("a comparison (`>`, `>=`, `<` or `<=`)", "write `when gross_margin < 20%`");
            return None;
        };
        self.pos += symbol.len();
        self.skip_inline();
        let threshold_start = self.pos;
        let rest = self.rest();
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..number_len];
        self.pos += number_len;
        let percent = self.rest().starts_with('%');
        if percent {
            self.pos += 1;
        }
        self.skip_inline();
        let unit_word = if !percent {
            let before = self.pos;
            match self.word() {
                Some((word @ ("days" | "day"), _)) => Some(word),
                _ => {
                    self.pos = before;
                    None
                }
            }
        } else {
            None
        };
        let first_len = self.text[threshold_start..].chars().next().map_or(0, char::len_utf8);
        let threshold_span = Span::new(threshold_start, self.pos.max(threshold_start + first_len));
        let Ok(value) = number.parse::<Decimal>() else {
            self.diagnostics.push(
                Diagnostic::error(codes::INVALID_LITERAL, self.file, threshold_span, "the threshold is not a number")
                    .with_label("a threshold is expected here")
                    .with_help("write `20000.00`, `60 days` or `20%`, in the indicator's unit"),
            );
            return None;
        };
        let indicator = indicator?;
        let mismatch = |this: &mut Self, written: &str, help: String| {
            this.diagnostics.push(
                Diagnostic::error(
                    codes::UNIT_MISMATCH,
                    this.file,
                    threshold_span,
                    format!("`{}` is {}, but the threshold is {written}", indicator.key, unit_phrase(indicator.unit)),
                )
                .with_label("threshold in the wrong unit")
                .with_help(help),
            );
        };
        let threshold = match (indicator.unit, percent, unit_word) {
            (RuleUnit::Ratio, true, None) => value / Decimal::from(100),
            (RuleUnit::Days, false, Some(_)) => value,
            (RuleUnit::Money, false, None) if value.scale() <= 2 => value,
            (RuleUnit::Count, false, None) if value.fract().is_zero() => value.trunc(),
            (RuleUnit::Count, _, _) => {
                mismatch(self, "not a whole number", "write how many, such as `3`".into());
                return None;
            }
            (RuleUnit::Money, false, None) => {
                mismatch(
                    self,
                    "more precise than a cent",
                    "write money with at most two decimals, such as `20000.00`".into(),
                );
                return None;
            }
            (RuleUnit::Ratio, _, _) => {
                mismatch(self, "not a percentage", format!("write it as a percentage, such as `{number}%`"));
                return None;
            }
            (RuleUnit::Days, _, _) => {
                mismatch(self, "not in days", format!("write it in days, such as `{number} days`"));
                return None;
            }
            (RuleUnit::Money, _, _) => {
                mismatch(self, "not an amount", format!("write an amount, such as `{number}`"));
                return None;
            }
        };
        Some((indicator.key.to_string(), by_customer, comparison, threshold))
    }
}

fn unit_phrase(unit: RuleUnit) -> &'static str {
    match unit {
        RuleUnit::Money => "an amount of money",
        RuleUnit::Days => "a number of days",
        RuleUnit::Ratio => "a ratio",
        RuleUnit::Count => "a count",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::SourceMap;

    const INDICATORS: [Indicator<'static>; 4] = [
        Indicator { key: "overdue_receivables", unit: RuleUnit::Money, by_customer: true },
        Indicator { key: "days_sales_outstanding", unit: RuleUnit::Days, by_customer: true },
        Indicator { key: "auto_match_rate", unit: RuleUnit::Ratio, by_customer: false },
        Indicator { key: "approvals_past_due", unit: RuleUnit::Count, by_customer: false },
    ];

    #[test]
    fn a_count_threshold_is_a_whole_number() {
        let rules = check("alert late \"Approvals late\" { when approvals_past_due > 3 }\n").unwrap();
        assert_eq!(rules[0].threshold, Decimal::from(3));
        let rendered = check("alert late \"Approvals late\" { when approvals_past_due > 2.5 }\n").unwrap_err();
        assert!(
            rendered.contains("error[E0602]: `approvals_past_due` is a count, but the threshold is not a whole number"),
            "{rendered}"
        );
        assert!(rendered.contains("write how many, such as `3`"), "{rendered}");
        let rendered = check("alert late \"Approvals late\" { when approvals_past_due > 3 days }\n").unwrap_err();
        assert!(rendered.contains("E0602"), "{rendered}");
    }

    fn check(text: &str) -> Result<Vec<Rule>, String> {
        let mut map = SourceMap::new();
        let file = map.add("alerts.rules", text);
        parse_rules(file, text, &INDICATORS, None).map_err(|d| map.render_all(&d))
    }

    #[test]
    fn a_notify_role_the_project_does_not_declare_is_refused_with_the_closest_one() {
        let roles = vec!["finance.cfo".to_string(), "finance.controller".to_string()];
        let text = "alert slow \"DSO high\" {\n  when days_sales_outstanding > 60 days\n  notify finance.controler, finance.cfo\n}\n";
        let mut map = SourceMap::new();
        let file = map.add("alerts.rules", text);
        let rendered = parse_rules(file, text, &INDICATORS, Some(&roles)).map_err(|d| map.render_all(&d)).unwrap_err();
        assert!(rendered.contains("error[E0604]: unknown role `finance.controler`"), "{rendered}");
        assert!(rendered.contains("alerts.rules:3:10"), "{rendered}");
        assert!(rendered.contains("did you mean `finance.controller`?"), "{rendered}");
        assert!(!rendered.contains("finance.cfo`"), "a declared role passes: {rendered}");
        // Unchecked when the roles are not known.
        assert_eq!(parse_rules(file, text, &INDICATORS, None).unwrap()[0].notify.len(), 2);
    }

    #[test]
    fn rules_parse_with_their_units() {
        let rules = check(
            "# finance alerts\nalert overdue_customer \"A customer owes too much\" {\n  when overdue_receivables by customer > 20000.00\n  severity critical\n  notify finance.controller, finance.cfo  # both\n}\n\nalert slow_cash \"DSO high\" { when days_sales_outstanding >= 60 days }\nalert manual \"Too much matched by hand\" {\n  when auto_match_rate < 80%\n}\n",
        )
        .unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].indicator, "overdue_receivables");
        assert!(rules[0].by_customer);
        assert_eq!((rules[0].comparison, rules[0].threshold.to_string()), (Comparison::Above, "20000.00".into()));
        assert_eq!(rules[0].severity, RuleSeverity::Critical);
        assert_eq!(rules[0].notify, ["finance.controller", "finance.cfo"]);
        assert_eq!((rules[1].comparison, rules[1].threshold.to_string()), (Comparison::AtLeast, "60".into()));
        assert_eq!(rules[1].severity, RuleSeverity::Warning);
        assert_eq!(rules[2].threshold, Decimal::new(8, 1));
        assert!(Comparison::Below.holds(Decimal::new(5, 1), rules[2].threshold));
    }

    #[test]
    fn a_title_may_carry_its_chinese_wording() {
        let rules = check(
            "alert slow \"DSO high\" zh \"应收账款周转天数过高\" { when days_sales_outstanding > 60 days }\nalert manual \"By hand\" { when auto_match_rate < 80% }\n",
        )
        .unwrap();
        assert_eq!((rules[0].title.as_str(), rules[0].title_zh.as_deref()), ("DSO high", Some("应收账款周转天数过高")));
        assert_eq!(rules[1].title_zh, None);
        let errors = check("alert slow \"DSO high\" zh { when days_sales_outstanding > 60 days }").unwrap_err();
        assert!(errors.contains("alerts.rules:1:26") && errors.contains("title in Chinese"), "{errors}");
    }

    #[test]
    fn a_wrong_unit_is_located_with_the_fix() {
        let errors = check("alert a \"A\" {\n  when days_sales_outstanding > 60\n}\n").unwrap_err();
        assert!(errors.contains("error[E0602]") && errors.contains("alerts.rules:2:33"), "{errors}");
        assert!(errors.contains("write it in days, such as `60 days`"), "{errors}");
        let errors = check("alert a \"A\" { when auto_match_rate < 0.8 }").unwrap_err();
        assert!(errors.contains("`80%`") || errors.contains("`0.8%`"), "{errors}");
        let errors = check("alert a \"A\" { when overdue_receivables > 100.005 }").unwrap_err();
        assert!(errors.contains("at most two decimals"), "{errors}");
    }

    #[test]
    fn unknown_names_and_splits_are_reported_together() {
        let errors = check(
            "alert a \"A\" { when overdue_receivable > 1.00 }\nalert b \"B\" { when auto_match_rate by customer < 80% }\nalert a \"C\" { when overdue_receivables by region > 1.00 }\n",
        )
        .unwrap_err();
        assert!(errors.contains("error[E0601]: unknown indicator `overdue_receivable`"), "{errors}");
        assert!(errors.contains("did you mean `overdue_receivables`?"), "{errors}");
        assert!(errors.contains("`auto_match_rate` cannot be split by customer"), "{errors}");
        assert!(errors.contains("`region`: not a split"), "{errors}");
        assert!(errors.contains("^"), "a caret under each: {errors}");
    }

    #[test]
    fn broken_text_gives_diagnostics_not_a_panic() {
        for text in [
            "alert",
            "alert x",
            "alert x \"unterminated\n{ when overdue_receivables > 1 }",
            "alert x \"X\" { when }",
            "alert x \"X\" { when overdue_receivables > }",
            "alert x \"X\" { colour red }",
            "alert x \"X\" {",
            "alert x \"X\" { severity loud when overdue_receivables > 1 }",
            "warn x",
            "alert Bad-Name \"X\" { when overdue_receivables > 1 }",
            "alert x \"X\" { }",
            "alert x \"X\" { when overdue_receivables ≥ 1 }",
            "alert x \"X\" { when overdue_receivables > é }",
            "alert x \"X\" { when overdue_receivables > 1 天 }",
            "alert 账 \"X\" { when overdue_receivables > 1 }",
            "alert x \"X\" { when overdue_receivables by 客户 > 1 }",
            "alert x \"X\" { when 逾期 > 1 }",
            "alert x \"逾期\" { when overdue_receivables > 1.0.0 }",
        ] {
            let errors = check(text).expect_err(text);
            assert!(errors.contains("error[E0"), "{text:?}: {errors}");
        }
        assert_eq!(check("# nothing but a comment\n").unwrap(), []);
    }

    #[test]
    fn a_name_declared_twice_points_at_both() {
        let errors = check(
            "alert a \"A\" { when overdue_receivables > 1.00 }\nalert a \"B\" { when overdue_receivables > 2.00 }",
        )
        .unwrap_err();
        assert!(errors.contains("alert `a` is declared twice") && errors.contains("first declared here"), "{errors}");
    }
}
