//! The error a command returns.

use crate::codec::DecodeError;
use crate::store::JournalError;

/// Why a command did not succeed. Every variant but `Domain` names the persistence id.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E> {
    /// `handle` or `invariants` rejected the command.
    #[error("{0}")]
    Domain(E),
    /// The aggregate is not at the expected version (or lost a write race and the command
    /// carried an expected version, or ran out of retries).
    #[error("conflict on `{persistence_id}`: expected version {expected}, actual {actual}")]
    Conflict {
        /// The aggregate's stream.
        persistence_id: String,
        /// The version the command expected.
        expected: u64,
        /// The version the aggregate is at.
        actual: u64,
    },
    /// The journal failed, or the outcome of the write is unknown. The aggregate's state is
    /// rebuilt from the journal on its next command.
    #[error("journal failure on `{persistence_id}`: {source}")]
    Journal {
        /// The aggregate's stream.
        persistence_id: String,
        /// What the store said.
        #[source]
        source: JournalError,
    },
    /// A stored event could not be decoded; the aggregate cannot be recovered.
    #[error(transparent)]
    Decode(DecodeError),
    /// An `on_command` interceptor rejected the command.
    #[error("command rejected on `{persistence_id}`: {reason}")]
    Rejected {
        /// The aggregate's stream.
        persistence_id: String,
        /// The interceptor's reason.
        reason: String,
    },
    /// The repository or the runtime is shutting down; the command did not run.
    #[error("repository stopped before the command on `{persistence_id}` completed")]
    Stopped {
        /// The aggregate's stream.
        persistence_id: String,
    },
}

impl<E> Error<E> {
    /// The persistence id named by this error (`None` for `Domain`).
    pub fn persistence_id(&self) -> Option<&str> {
        match self {
            Error::Domain(_) => None,
            Error::Conflict { persistence_id, .. }
            | Error::Journal { persistence_id, .. }
            | Error::Rejected { persistence_id, .. }
            | Error::Stopped { persistence_id } => Some(persistence_id),
            Error::Decode(e) => Some(&e.persistence_id),
        }
    }
}
