//! The states a stored instance, job, task or incident can be in: enums at the store boundary,
//! stored as the lower-case words the tables and the API use.

use super::Error;

/// Declares a state enum with its stored word for each variant.
macro_rules! states {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every state, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored word.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;

            fn from_str(word: &str) -> Result<$name, Error> {
                match word {
                    $($word => Ok($name::$variant),)+
                    other => Err(Error::Corrupt(format!(concat!("unknown ", stringify!($name), " `{}`"), other))),
                }
            }
        }
    };
}

states! {
    /// Where an instance stands.
    InstanceState {
        /// Started, not yet stepped.
        Created => "created",
        /// Waiting for something or working.
        Running => "running",
        /// Reached a normal end.
        Completed => "completed",
        /// Reached an error end.
        Failed => "failed",
        /// Cancelled by someone (or by its parent).
        Cancelled => "cancelled",
    }
}

impl InstanceState {
    /// The state of an instance with this status.
    pub fn of(status: &crate::instance::Status) -> InstanceState {
        use crate::instance::Status;
        match status {
            Status::Created => InstanceState::Created,
            Status::Running => InstanceState::Running,
            Status::Completed { .. } => InstanceState::Completed,
            Status::Failed { .. } => InstanceState::Failed,
            Status::Cancelled { .. } => InstanceState::Cancelled,
        }
    }
}

states! {
    /// Where a job stands.
    JobState {
        /// Waiting for a worker (from its due time).
        Ready => "ready",
        /// Held by a worker under a lease.
        Locked => "locked",
        /// Out of retries: waits for an operator.
        Incident => "incident",
        /// Finished.
        Done => "done",
        /// Withdrawn with its node.
        Cancelled => "cancelled",
    }
}

states! {
    /// Where a human task stands.
    TaskState {
        /// In someone's inbox.
        Open => "open",
        /// Decided.
        Completed => "completed",
        /// Withdrawn (escalated, cancelled with its instance).
        Cancelled => "cancelled",
    }
}

states! {
    /// Where an incident stands.
    IncidentState {
        /// Waiting for an operator.
        Open => "open",
        /// Retried by an operator.
        Resolved => "resolved",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_word_and_an_unknown_word_is_an_error() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), *state);
            assert_eq!(serde_json::to_value(state).unwrap(), serde_json::json!(state.as_str()));
        }
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>().unwrap(), *state);
        }
        for state in InstanceState::ALL {
            assert_eq!(state.to_string().parse::<InstanceState>().unwrap(), *state);
        }
        let wrong = "paused".parse::<InstanceState>().unwrap_err();
        assert_eq!(wrong.to_string(), "corrupt row: unknown InstanceState `paused`");
    }
}
