//! # factum
//!
//! Event-sourced aggregates (DDD/CQRS) from plain structs and enums. Annotate them with
//! `#[aggregate]`, `#[command]` and `#[event]`; run them with a [`Repository`], which
//! validates, persists, snapshots, deduplicates and recovers them.
//!
//! The traits the macros implement ([`Aggregate`], [`Command`], [`Event`]) can also be
//! implemented by hand. Stores implement [`Journal`] and [`SnapshotStore`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod aggregate;
mod codec;
mod dedupe;
mod error;
mod fixture;
mod gateway;
mod recovery;
pub mod store;

pub use aggregate::{Aggregate, Command, Event};
pub use codec::{CodecError, DecodeError, Tags};
pub use error::Error;
pub use fixture::{TestFixture, TestOutcome};
pub use gateway::{Committed, Receipt, Repository, RepositoryBuilder, SnapshotPolicy};
pub use store::memory::{MemoryJournal, MemorySnapshots};
#[cfg(feature = "postgres")]
pub use store::postgres::{PostgresBuilder, PostgresJournal};
#[cfg(feature = "sqlite")]
pub use store::sqlite::{SqliteBuilder, SqliteJournal};
pub use store::{
    AtomicWrite, BoxFuture, EventRecord, Journal, JournalError, SnapshotRecord, SnapshotStore,
};

pub use factum_macros::{aggregate, command, event};

/// Everything a domain module needs: the traits (and, with the macros, the attributes).
pub mod prelude {
    pub use crate::{Aggregate, Command, Event};
    pub use factum_macros::{aggregate, command, event};
}

/// Hidden re-exports and helpers for generated code. Not a public API: may change in any
/// release.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
