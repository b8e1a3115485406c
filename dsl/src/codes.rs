//! The catalogue of diagnostic codes. Codes are stable: tools and docs may refer to them.
//!
//! `E00xx` syntax, `E01xx` names, `E02xx` types, `E03xx` literals, schedules and calendars, `E04xx` flow
//! and soundness; `W05xx` warnings; `E06xx` alert rules; `E07xx` BPMN import.

/// The text does not follow the grammar.
pub const SYNTAX: &str = "E0001";
/// The text is nested too deeply (or chains too many operators) for the compiler to build it.
pub const TOO_DEEP: &str = "E0002";
/// A `->` names a node that does not exist.
pub const UNKNOWN_NODE: &str = "E0101";
/// Two things in one scope have the same name.
pub const DUPLICATE: &str = "E0102";
/// An expression or mapping names a variable that is not declared.
pub const UNKNOWN_VARIABLE: &str = "E0103";
/// A role is not declared in any `roles` block.
pub const UNKNOWN_ROLE: &str = "E0104";
/// A `call` names a process that is not in the project.
pub const UNKNOWN_PROCESS: &str = "E0105";
/// An unknown built-in function.
pub const UNKNOWN_FUNCTION: &str = "E0106";
/// An unknown field of a record type.
pub const UNKNOWN_FIELD: &str = "E0107";
/// A type name that does not exist.
pub const UNKNOWN_TYPE: &str = "E0108";
/// A process or a role names a calendar that is not declared in any `calendar` block.
pub const UNKNOWN_CALENDAR: &str = "E0109";
/// A value's type does not fit where it is used.
pub const TYPE_MISMATCH: &str = "E0201";
/// A condition is not a bool.
pub const NOT_BOOL: &str = "E0202";
/// A function is called with the wrong number of arguments.
pub const ARITY: &str = "E0203";
/// A literal value is malformed (a date, a duration, a count).
pub const INVALID_LITERAL: &str = "E0303";
/// A cron schedule is invalid.
pub const INVALID_SCHEDULE: &str = "E0301";
/// A time zone name is unknown.
pub const UNKNOWN_ZONE: &str = "E0302";
/// A `calendar` block is invalid (a weekday, a time, a date, a period or a day that conflicts).
pub const INVALID_CALENDAR: &str = "E0304";
/// An approval counts business time, and its roles work on different calendars.
pub const CALENDAR_CONFLICT: &str = "E0305";
/// A required clause is missing (a task without `job`, a node without `->`, a process without start).
pub const MISSING: &str = "E0401";
/// A node can never be reached from a start.
pub const UNREACHABLE: &str = "E0402";
/// From a node, no path leads to an end.
pub const NO_END: &str = "E0403";
/// A decide without `otherwise` whose conditions may all be false.
pub const NOT_EXHAUSTIVE: &str = "E0404";
/// A join that waits for tokens that never come.
pub const JOIN_DEADLOCK: &str = "E0405";
/// A parallel split whose branches are never joined.
pub const UNSYNCHRONISED: &str = "E0406";
/// Paths from different parallel branches merge outside a join.
pub const BRANCH_ESCAPE: &str = "E0407";
/// A loop that never waits for a person, a message or a timer.
pub const LOOP_WITHOUT_WAIT: &str = "E0408";
/// A clause that is not allowed where it is written.
pub const MISPLACED: &str = "E0409";
/// Business days or hours in a process that names no calendar.
pub const NO_CALENDAR: &str = "E0410";
/// Amount bands in a decide overlap.
pub const BAND_OVERLAP: &str = "W0501";
/// Amount bands in a decide leave a gap.
pub const BAND_GAP: &str = "W0502";
/// An approval has no due date and no escalation.
pub const NO_SLA: &str = "W0503";
/// A loop that only runs automated steps.
pub const BUSY_LOOP: &str = "W0504";
/// A declared role is never used, or a variable is never read.
pub const UNUSED: &str = "W0505";
/// A later stage of checks did not run because of errors that leave it nothing sound to check.
pub const CHECKS_SKIPPED: &str = "W0506";
/// More diagnostics than a compilation lists (`MAX_DIAGNOSTICS`): the rest are counted.
pub const TOO_MANY: &str = "W0507";
/// An alert rule names an indicator that is not in the catalogue.
pub const UNKNOWN_INDICATOR: &str = "E0601";
/// An alert rule's threshold is not in its indicator's unit.
pub const UNIT_MISMATCH: &str = "E0602";
/// An alert rule splits an indicator in a way it does not offer.
pub const NO_SUCH_SPLIT: &str = "E0603";
/// An alert rule notifies a role the project does not declare.
pub const UNKNOWN_NOTIFY_ROLE: &str = "E0604";
/// A BPMN import's input is not well-formed XML, or not a BPMN 2.0 document.
pub const BAD_XML: &str = "E0701";
/// A BPMN element or event definition the import does not translate.
pub const UNSUPPORTED: &str = "E0702";
/// A BPMN expression, timer or value that has no `.flow` translation.
pub const UNTRANSLATED: &str = "E0703";
/// A BPMN element lacks what its `.flow` node needs (a job type, a correlation key, a flow).
pub const INCOMPLETE: &str = "E0704";
/// A BPMN import declared a variable whose type it guessed from its use.
pub const GUESSED: &str = "W0508";

/// Every code of the catalogue, in its order: what a reader's words for the codes must cover.
pub const ALL: [&str; 45] = [
    SYNTAX,
    TOO_DEEP,
    UNKNOWN_NODE,
    DUPLICATE,
    UNKNOWN_VARIABLE,
    UNKNOWN_ROLE,
    UNKNOWN_PROCESS,
    UNKNOWN_FUNCTION,
    UNKNOWN_FIELD,
    UNKNOWN_TYPE,
    UNKNOWN_CALENDAR,
    TYPE_MISMATCH,
    NOT_BOOL,
    ARITY,
    INVALID_LITERAL,
    INVALID_SCHEDULE,
    UNKNOWN_ZONE,
    INVALID_CALENDAR,
    CALENDAR_CONFLICT,
    MISSING,
    UNREACHABLE,
    NO_END,
    NOT_EXHAUSTIVE,
    JOIN_DEADLOCK,
    UNSYNCHRONISED,
    BRANCH_ESCAPE,
    LOOP_WITHOUT_WAIT,
    MISPLACED,
    NO_CALENDAR,
    BAND_OVERLAP,
    BAND_GAP,
    NO_SLA,
    BUSY_LOOP,
    UNUSED,
    CHECKS_SKIPPED,
    TOO_MANY,
    UNKNOWN_INDICATOR,
    UNIT_MISMATCH,
    NO_SUCH_SPLIT,
    UNKNOWN_NOTIFY_ROLE,
    BAD_XML,
    UNSUPPORTED,
    UNTRANSLATED,
    INCOMPLETE,
    GUESSED,
];

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn every_code_is_listed_once() {
        let source = include_str!("codes.rs");
        let declared: Vec<&str> = source
            .lines()
            .filter(|line| line.starts_with("pub const ") && line.contains(": &str = \""))
            .filter_map(|line| line.split('"').nth(1))
            .collect();
        assert_eq!(declared.len(), ALL.len(), "a code declared here is missing from ALL");
        for code in declared {
            assert_eq!(ALL.iter().filter(|c| **c == code).count(), 1, "{code} is not listed once in ALL");
        }
    }
}
