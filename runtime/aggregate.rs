//! The three traits a domain implements: [`Aggregate`], [`Command`] and [`Event`].
//!
//! The macros `#[aggregate]`, `#[command]` and `#[event]` generate these impls; writing
//! them by hand is equally supported.

use std::fmt::{Debug, Display};
use std::hash::Hash;

use crate::codec::{CodecError, Tags};

/// The state of one event-sourced aggregate: decides with [`handle`](Aggregate::handle),
/// evolves with [`apply`](Aggregate::apply).
///
/// `Default` is the state of an aggregate that has no events yet.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aggregate",
    label = "not an aggregate",
    note = "put `#[aggregate]` on the inherent `impl {Self} {{ fn handle(..) .. fn apply(..) }}` block, or implement `factum::Aggregate` by hand"
)]
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// The commands this aggregate handles.
    type Command: Command;
    /// The events this aggregate emits and applies.
    type Event: Event;
    /// The domain error `handle` and `invariants` return; surfaces as `Error::Domain`.
    /// Only `Debug` is asked of it; `Error<Self::Error>` is `Display` and
    /// `std::error::Error` (so `?` into a `Box<dyn Error>` works) when it is `Display`.
    type Error: Debug + Send + Sync + 'static;

    /// The persistence-id category: the persistence id is `"{NAME}-{id}"`.
    const NAME: &'static str;

    /// The snapshot format version, or `None` when the state is never snapshotted.
    ///
    /// A stored snapshot of another version is ignored and recovery replays the journal.
    const SNAPSHOT_VERSION: Option<u32> = None;

    /// Decides: the events a command produces, or a domain error. Must not mutate.
    fn handle(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Evolves the state by one event. Must not fail: events are facts.
    fn apply(&mut self, event: &Self::Event);

    /// Checked on the state the new events produce, before they are persisted.
    /// An error rejects the command and nothing is written.
    fn invariants(&self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Encodes the state for a snapshot. Only called when `SNAPSHOT_VERSION` is `Some`.
    fn encode_snapshot(&self) -> Result<serde_json::Value, CodecError> {
        Err(CodecError::Unsupported("snapshots"))
    }

    /// Decodes a snapshot written by [`encode_snapshot`](Aggregate::encode_snapshot).
    fn decode_snapshot(value: serde_json::Value) -> Result<Self, CodecError> {
        let _ = value;
        Err(CodecError::Unsupported("snapshots"))
    }

    /// The persistence id of the aggregate with this id: `"{NAME}-{id}"`.
    fn persistence_id(id: &<Self::Command as Command>::Id) -> String {
        format!("{}-{}", Self::NAME, id)
    }
}

/// A request addressed to one aggregate.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command",
    label = "not a command",
    note = "put `#[command(id = <field>)]` on `{Self}`, or implement `factum::Command` by hand"
)]
pub trait Command: Send + 'static {
    /// The aggregate id type.
    type Id: Clone + Eq + Hash + Display + Send + Sync + 'static;

    /// The id of the aggregate this command is addressed to.
    fn aggregate_id(&self) -> &Self::Id;

    /// When `Some(v)`, the command runs only if the aggregate is at exactly version `v`.
    fn expected_version(&self) -> Option<u64> {
        None
    }

    /// The idempotency key for the dedupe window.
    fn command_id(&self) -> Option<&str> {
        None
    }

    /// A copy of the command, so that a command that lost a write race to another process
    /// can run again on the reloaded state. `None` (the default) returns the conflict to
    /// the caller instead. `#[command]` returns a copy whenever the type is `Clone`.
    fn retry_copy(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// A fact an aggregate emits, with a stable manifest and version for the journal.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "not an event",
    note = "put `#[event]` on `{Self}`, or implement `factum::Event` by hand"
)]
pub trait Event: Clone + Send + Sync + 'static {
    /// The stored name of this event's kind (variant): stable across renames in code.
    fn manifest(&self) -> &'static str;

    /// The current format version of this event's kind.
    fn version(&self) -> u32;

    /// The tags stored with this event.
    fn tags(&self) -> Tags {
        Tags::NONE
    }

    /// Encodes the payload (JSON).
    fn encode(&self) -> Result<Vec<u8>, CodecError>;

    /// Decodes a payload stored with `manifest` and `version`, upcasting older versions.
    fn decode(manifest: &str, version: u32, payload: &[u8]) -> Result<Self, CodecError>;
}
