//! Newtype ids. An instance's id arrives from outside (the runtime picks it); every id the core
//! creates for a job, task, timer, subscription, call or incident is derived from the instance id
//! and the instance's own sequence counter, so the same state and event always give the same ids.
//!
//! Ids are safe in a URL path segment as they are: a derived id is `{instance}.{kind}.{n}`
//! (`i-3f2a-1.task.4`), and the part of an id a client chooses (a message id behind a message
//! start) is escaped by [`segment`] to unreserved characters. Stores written before this form
//! hold ids derived with `/` (`i-3f2a-1/task/4`); they are read as they are, and reach a URL
//! path percent-encoded.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }
    };
}

id_type!(
    /// The id of an instance (chosen by the runtime).
    InstanceId
);
id_type!(
    /// The id of a job handed to workers.
    JobId
);
id_type!(
    /// The id of a human task.
    TaskId
);
id_type!(
    /// The id of a timer.
    TimerId
);
id_type!(
    /// The id of a message subscription.
    SubscriptionId
);
id_type!(
    /// The id of a call of a child process (the runtime may use it as the child's instance id).
    CallId
);
id_type!(
    /// The id of an incident.
    IncidentId
);

/// An id derived from an instance's: `{instance}.{kind}.{n}`.
pub fn derived(instance: &str, kind: &str, n: u64) -> String {
    format!("{instance}.{kind}.{n}")
}

/// The top-level instance of the case an instance belongs to: a called instance's id extends
/// its caller's (`i-x-1.call.3`, or `i-x-1/call/3` in a store written before ids were safe in a
/// URL path), and no top-level id holds `.call.` or `/call/` (see [`segment`]).
pub fn case_of(instance: &str) -> &str {
    let cut = [".call.", "/call/"].iter().filter_map(|sep| instance.find(sep)).min();
    cut.map_or(instance, |at| &instance[..at])
}

/// Client-chosen text made fit for a part of an id: ASCII letters, digits and `-` stay; any
/// other byte becomes `_` and two hex digits (`pay.1/2` → `pay_2E1_2F2`). Distinct texts stay
/// distinct, and the result holds neither `.` nor `/`, so it cannot pass for a derived id.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("_{byte:02X}"));
        }
    }
    out
}

/// The id of a token within its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(pub u64);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_called_instance_belongs_to_its_callers_case_in_either_form() {
        assert_eq!(case_of("i-ab-1.call.3"), "i-ab-1");
        assert_eq!(case_of("i-ab-1.call.3.call.9"), "i-ab-1");
        assert_eq!(case_of("i-ab-1/call/3/call/9"), "i-ab-1");
        assert_eq!(case_of("order_to_cash~signed-SO-1"), "order_to_cash~signed-SO-1");
        assert_eq!(case_of("month_end_close@20260131T100000Z"), "month_end_close@20260131T100000Z");
    }

    #[test]
    fn client_text_in_an_id_cannot_pass_for_a_derived_part() {
        assert_eq!(segment("dispatch-SO-1001"), "dispatch-SO-1001");
        assert_eq!(segment("pay.1/2"), "pay_2E1_2F2");
        assert_eq!(segment("a_b"), "a_5Fb");
        assert_eq!(segment("x.call.5"), "x_2Ecall_2E5");
        assert_ne!(segment("a_2E"), segment("a."));
        let id = format!("order_to_cash~{}", segment("x.call.5"));
        assert_eq!(case_of(&id), id);
        let derived_id = derived("i-a-1", "task", 4);
        assert_eq!(derived_id, "i-a-1.task.4");
        assert!(derived_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
    }
}
