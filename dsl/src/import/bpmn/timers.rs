//! Timer events (ISO 8601 or Cloverleaf's `.flow` text) and boundary events, in `.flow` words.

use roxmltree::Node as X;

use super::read::{Builder, bpmn_tag, child, child_def, ours};
use super::translate::{self, quote};
use crate::codes;
use crate::schedule::Schedule;

/// When a timer event fires, in `.flow` words.
pub(super) enum Timer {
    /// A duration after entry (`5d`, `2 business days`).
    After(String),
    /// A date or a moment (`due_date + 7d`).
    At(String),
    /// Repeatedly (`every 1d`).
    Every(String),
    /// A cron pattern and its zone.
    Cron(String, Option<String>),
}

impl Builder<'_, '_, '_> {
    /// `for 5d`, `until due_date`, `until next "0 9 * * *" in "Europe/Paris"`.
    pub(super) fn wait_clause(&mut self, x: X<'_, '_>, d: X<'_, '_>) -> Option<String> {
        match self.timer(x, d)? {
            Timer::After(t) => Some(format!("for {t}")),
            Timer::At(t) => Some(format!("until {t}")),
            Timer::Cron(p, zone) => {
                let zone = zone.map(|z| format!(" in {}", quote(&z))).unwrap_or_default();
                Some(format!("until next {}{zone}", quote(&p)))
            }
            Timer::Every(_) => {
                self.r.error(
                    codes::UNSUPPORTED,
                    d,
                    "a repeating timer on a catch event",
                    "fires once",
                    "use a one-off timer",
                );
                None
            }
        }
    }

    /// The boundary events attached to element `e` (and those of a racing wait).
    pub(super) fn boundaries(&mut self, e: usize) -> Vec<(String, Option<usize>)> {
        let mut out = std::mem::take(&mut self.pending);
        let id = self.els[e].x.attribute("id");
        for b in 0..self.els.len() {
            let bx = self.els[b].x;
            if self.els[b].tag != "boundaryEvent" || bx.attribute("attachedToRef") != id {
                continue;
            }
            let Some(d) = child_def(bx) else { continue };
            let interrupting = bx.attribute("cancelActivity") != Some("false");
            let head = match bpmn_tag(d) {
                Some("errorEventDefinition") => match self.error_code(d) {
                    Some(code) => Some(format!("on error {}", quote(&code))),
                    None => Some("on error".to_string()),
                },
                Some("timerEventDefinition") => match self.timer(bx, d) {
                    Some(t) => self.boundary_timer(d, t, interrupting),
                    None => None,
                },
                _ => {
                    self.unsupported_event(d);
                    None
                }
            };
            let to = self.next(b);
            if let Some(h) = head {
                out.push((h, to));
            }
        }
        out
    }

    pub(super) fn boundary_timer(&mut self, at: X<'_, '_>, t: Timer, interrupting: bool) -> Option<String> {
        match t {
            Timer::After(t) | Timer::At(t) if interrupting => Some(format!("after {t}")),
            Timer::After(t) | Timer::At(t) => Some(format!("also after {t}")),
            Timer::Every(t) if !interrupting => Some(format!("every {t}")),
            Timer::Every(_) => {
                self.r.error(
                    codes::UNSUPPORTED,
                    at,
                    "an interrupting repeating timer",
                    "fires once at most",
                    "make it non-interrupting, or a one-off timer",
                );
                None
            }
            Timer::Cron(..) => {
                self.r.error(
                    codes::UNSUPPORTED,
                    at,
                    "a cron schedule on a boundary event",
                    "no `.flow` form",
                    "use a duration or a date",
                );
                None
            }
        }
    }

    /// The timer of event `x`: its Cloverleaf text when there, else the ISO 8601 or cron text.
    pub(super) fn timer(&mut self, x: X<'_, '_>, d: X<'_, '_>) -> Option<Timer> {
        let (kind, node) = ["timeDuration", "timeDate", "timeCycle"]
            .iter()
            .find_map(|k| child(d, k).map(|c| (*k, c)))
            .or_else(|| {
                self.r.error(
                    codes::INCOMPLETE,
                    d,
                    "a timer without a time",
                    "when?",
                    "give it a timeDuration, timeDate or timeCycle",
                );
                None
            })?;
        let text = node.text().unwrap_or_default().trim().to_string();
        if let Some(t) = ours(x, "timer") {
            return Some(match kind {
                "timeDuration" => Timer::After(t.to_string()),
                "timeDate" => Timer::At(t.to_string()),
                _ => Timer::Every(t.to_string()),
            });
        }
        let zone = ours(x, "zone").map(str::to_string);
        let expr = translate::unwrap_expression(&text).is_some();
        match kind {
            "timeDuration" if expr => self.expression(node, &text).map(Timer::After),
            "timeDuration" => {
                translate::iso_duration(&text).map(Timer::After).map_err(|u| self.r.untranslated(node, u)).ok()
            }
            "timeDate" if expr => self.expression(node, &text).map(Timer::At),
            "timeDate" if text.len() == 10 => Some(Timer::At(format!("date({})", quote(&text)))),
            "timeDate" => Some(Timer::At(format!("date and time({})", quote(&text)))),
            _ => match text.strip_prefix("R/") {
                Some(every) => {
                    translate::iso_duration(every).map(Timer::Every).map_err(|u| self.r.untranslated(node, u)).ok()
                }
                None if text.starts_with('R') => {
                    self.r.error(
                        codes::UNTRANSLATED,
                        node,
                        format!("`{text}` repeats a fixed number of times"),
                        "counted repetitions",
                        "repeat without a count (`R/PT1H`), or use a cron pattern",
                    );
                    None
                }
                None => match Schedule::parse(&text, zone.as_deref()) {
                    Ok(_) => Some(Timer::Cron(text.clone(), zone)),
                    Err(e) => {
                        self.r.error(
                            codes::UNTRANSLATED,
                            node,
                            format!("`{text}` is not a cron schedule Cloverleaf runs"),
                            e.to_string(),
                            "write a cron pattern such as `0 9 * * MON-FRI`",
                        );
                        None
                    }
                },
            },
        }
    }
}
