//! Newtype ids. An instance's id arrives from outside (the runtime picks it); every id the core
//! creates for a job, task, timer, subscription, call or incident is derived from the instance id
//! and the instance's own sequence counter, so the same state and event always give the same ids.

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

/// The id of a token within its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(pub u64);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}
