//! # factum
//!
//! Event-sourced aggregates (DDD/CQRS) from plain structs and enums. Annotate them with
//! [`#[event]`](macro@event), [`#[command]`](macro@command) and
//! [`#[aggregate]`](macro@aggregate); run them with a [`Repository`], which validates,
//! persists, snapshots, deduplicates and recovers them, on SQLite ([`SqliteJournal`],
//! embedded, the default) or PostgreSQL ([`PostgresJournal`]).
//!
//! ## Quick start
//!
//! With `factum`, `serde` (feature `derive`) and `tokio` (features `macros`,
//! `rt-multi-thread`) as dependencies:
//!
//! ```
//! use factum::prelude::*;
//! use factum::{Repository, SqliteJournal};
//! use serde::{Deserialize, Serialize};
//!
//! #[event]
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! pub enum AccountEvent { Deposited { amount: u64 }, Withdrawn { amount: u64 } }
//!
//! #[command(id = account)]
//! #[derive(Debug, Clone)]
//! pub enum AccountCommand { Deposit { account: String, amount: u64 }, Withdraw { account: String, amount: u64 } }
//!
//! #[derive(Debug, Default, Clone, Serialize, Deserialize)]
//! pub struct Account { balance: u64 }
//!
//! #[aggregate(snapshot)]
//! impl Account {
//!     fn handle(&self, cmd: AccountCommand) -> Result<AccountEvent, String> {
//!         match cmd {
//!             AccountCommand::Deposit { amount, .. } => Ok(AccountEvent::Deposited { amount }),
//!             AccountCommand::Withdraw { amount, .. } if amount <= self.balance => Ok(AccountEvent::Withdrawn { amount }),
//!             AccountCommand::Withdraw { .. } => Err(format!("insufficient funds: {}", self.balance)),
//!         }
//!     }
//!     fn apply(&mut self, event: &AccountEvent) {
//!         match event {
//!             AccountEvent::Deposited { amount } => self.balance += amount,
//!             AccountEvent::Withdrawn { amount } => self.balance -= amount,
//!         }
//!     }
//! }
//!
//! # /// The `TestFixture` example of README.md.
//! # fn readme_fixture() {
//! #     factum::TestFixture::<Account>::given([AccountEvent::Deposited { amount: 100 }])
//! #         .when(AccountCommand::Withdraw { account: "alice".into(), amount: 30 })
//! #         .then_expect_events([AccountEvent::Withdrawn { amount: 30 }]);
//! # }
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! #   readme_fixture();
//!     let journal = SqliteJournal::open(std::env::temp_dir().join("accounts.db")).await?;
//!     let accounts: Repository<Account> = Repository::new(journal);
//!     let receipt = accounts.send(AccountCommand::Deposit { account: "alice".into(), amount: 100 }).await?;
//!     println!("{:?} at version {}", receipt.events, receipt.version); // durable once send returns
//!     let (account, version) = accounts.state(&"alice".to_string()).await?;
//!     println!("alice has {} at version {version}", account.balance);
//!     Ok(())
//! }
//! ```
//!
//! `cargo run --example bank` runs a longer story: the bank account of the design, with
//! expected versions, request ids, snapshots and recovery.
//!
//! ## The pieces
//!
//! - The macros implement the traits [`Event`], [`Command`] and [`Aggregate`]; hand-written
//!   impls work as well. [`TestFixture`] tests an aggregate's decisions without a store.
//! - [`Repository`] is the command gateway: commands for one aggregate run one at a time, in
//!   arrival order; different aggregates run in parallel and their writes are committed
//!   together. It recovers aggregates from the newest snapshot and the events after it,
//!   deduplicates commands by id, and passivates idle aggregates.
//! - Stores implement [`Journal`] and [`SnapshotStore`]: [`MemoryJournal`] and
//!   [`MemorySnapshots`] for tests, [`SqliteJournal`] (feature `sqlite`, on by default) and
//!   [`PostgresJournal`] (feature `postgres`), or your own (`cargo run --example
//!   custom_journal`).
//!
//! A repository needs a Tokio runtime with the time driver (`#[tokio::main]` or a runtime
//! built with `enable_time`/`enable_all`). The README lists the guarantees and their limits.
//!
//! [`PostgresJournal`]: store/postgres/struct.PostgresJournal.html
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod aggregate;
mod codec;
mod dedupe;
mod error;
mod fixture;
mod gateway;
mod hash;
mod recovery;
pub mod store;

pub use aggregate::{Aggregate, Command, Event};
pub use codec::{CodecError, DecodeError, Tags};
pub use error::Error;
pub use fixture::{TestFixture, TestOutcome};
/// The command gateway: [`send`](Repository::send) a command, read an aggregate's
/// [`state`](Repository::state).
///
/// ```
/// # use factum::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[event]
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # pub struct Added { n: u64 }
/// # #[command(id = counter)]
/// # #[derive(Debug, Clone)]
/// # pub struct Add { counter: String, n: u64 }
/// # #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
/// # pub struct Counter { total: u64 }
/// # #[aggregate(snapshot)]
/// # impl Counter {
/// #     fn handle(&self, cmd: Add) -> Result<Added, String> { Ok(Added { n: cmd.n }) }
/// #     fn apply(&mut self, event: &Added) { self.total += event.n }
/// # }
/// // `Counter { total }`, made with the macros: `Add { counter, n }` -> `Added { n }`.
/// use factum::{MemoryJournal, Repository, SnapshotPolicy};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let journal = MemoryJournal::new();
/// let counters: Repository<Counter> = Repository::builder(journal.clone())
///     .snapshots(factum::MemorySnapshots::new(), SnapshotPolicy::Every(100))
///     .keep_snapshots(2)
///     .dedupe_window(1024) // command ids remembered per aggregate; 0 disables
///     .passivate_after(Duration::from_secs(300))
///     .max_in_memory(100_000)
///     .build();
///
/// let receipt = counters.send(Add { counter: "c-1".into(), n: 2 }).await?;
/// assert_eq!((receipt.events, receipt.version), (vec![Added { n: 2 }], 1));
/// counters.send(Add { counter: "c-1".into(), n: 3 }).await?;
/// assert_eq!(counters.state(&"c-1".to_string()).await?, (Counter { total: 5 }, 2));
///
/// // The handle is cheap to clone and to share between tasks.
/// let again = counters.clone();
/// tokio::spawn(async move { again.send(Add { counter: "c-2".into(), n: 1 }).await })
///     .await??;
/// assert_eq!(counters.state(&"c-2".to_string()).await?.1, 1);
///
/// // After a restart, a new repository recovers the aggregates from the journal.
/// let restarted: Repository<Counter> = Repository::new(journal);
/// assert_eq!(restarted.state(&"c-1".to_string()).await?, (Counter { total: 5 }, 2));
/// # Ok(())
/// # }
/// ```
pub use gateway::Repository;
/// Configures a [`Repository`]: see the example there. Every setting has a default:
/// no snapshots, `keep_snapshots(2)`, `dedupe_window(1024)`, `recovery_permits(16)`,
/// `passivate_after(5 minutes)`, `max_in_memory(100_000)`, `conflict_retries(10)`.
pub use gateway::RepositoryBuilder;
pub use gateway::{Committed, Receipt, SnapshotPolicy};
/// An in-memory journal, for tests and benchmarks.
///
/// ```
/// # use factum::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[event]
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # pub struct Added { n: u64 }
/// # #[command(id = counter)]
/// # #[derive(Debug, Clone)]
/// # pub struct Add { counter: String, n: u64 }
/// # #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
/// # pub struct Counter { total: u64 }
/// # #[aggregate(snapshot)]
/// # impl Counter {
/// #     fn handle(&self, cmd: Add) -> Result<Added, String> { Ok(Added { n: cmd.n }) }
/// #     fn apply(&mut self, event: &Added) { self.total += event.n }
/// # }
/// // `Counter { total }`, made with the macros: `Add { counter, n }` -> `Added { n }`.
/// use factum::{Journal, MemoryJournal, Repository};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let journal = MemoryJournal::new();
/// let counters: Repository<Counter> = Repository::new(journal.clone());
/// counters.send(Add { counter: "c-1".into(), n: 2 }).await?;
///
/// // Clones share the events: read them back as the repository stored them.
/// let stored = journal.read("counter-c-1", 1, u64::MAX, 100).await?;
/// assert_eq!(stored[0].manifest, "Added");
/// assert_eq!(stored[0].payload, br#"{"n":2}"#);
/// # Ok(())
/// # }
/// ```
pub use store::memory::MemoryJournal;
/// An in-memory snapshot store, for tests and benchmarks.
///
/// ```
/// # use factum::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[event]
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # pub struct Added { n: u64 }
/// # #[command(id = counter)]
/// # #[derive(Debug, Clone)]
/// # pub struct Add { counter: String, n: u64 }
/// # #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
/// # pub struct Counter { total: u64 }
/// # #[aggregate(snapshot)]
/// # impl Counter {
/// #     fn handle(&self, cmd: Add) -> Result<Added, String> { Ok(Added { n: cmd.n }) }
/// #     fn apply(&mut self, event: &Added) { self.total += event.n }
/// # }
/// // `Counter { total }`, made with the macros: `Add { counter, n }` -> `Added { n }`.
/// use factum::{MemoryJournal, MemorySnapshots, Repository, SnapshotPolicy, SnapshotStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let snapshots = MemorySnapshots::new();
/// let counters: Repository<Counter> = Repository::builder(MemoryJournal::new())
///     .snapshots(snapshots.clone(), SnapshotPolicy::Every(2))
///     .build();
/// for _ in 0..3 {
///     counters.send(Add { counter: "c-1".into(), n: 1 }).await?;
/// }
/// let latest = snapshots.load("counter-c-1", u64::MAX).await?.expect("a snapshot");
/// assert_eq!(latest.sequence_nr, 2);
/// # Ok(())
/// # }
/// ```
pub use store::memory::MemorySnapshots;
#[cfg(feature = "postgres")]
pub use store::postgres::PostgresBuilder;
/// The store for users who outgrow one machine: several processes may serve the same
/// aggregates on one PostgreSQL database.
///
/// ```no_run
/// # use factum::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[event]
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # pub struct Added { n: u64 }
/// # #[command(id = counter)]
/// # #[derive(Debug, Clone)]
/// # pub struct Add { counter: String, n: u64 }
/// # #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
/// # pub struct Counter { total: u64 }
/// # #[aggregate(snapshot)]
/// # impl Counter {
/// #     fn handle(&self, cmd: Add) -> Result<Added, String> { Ok(Added { n: cmd.n }) }
/// #     fn apply(&mut self, event: &Added) { self.total += event.n }
/// # }
/// // `Counter { total }`, made with the macros: `Add { counter, n }` -> `Added { n }`.
/// use factum::{PostgresJournal, Repository, SnapshotPolicy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let journal = PostgresJournal::connect("postgres://postgres@127.0.0.1:5432/app").await?;
/// let counters: Repository<Counter> = Repository::builder(journal.clone())
///     .snapshots(journal.clone(), SnapshotPolicy::Every(100))
///     .conflict_retries(10) // lost write races against other processes, retried
///     .build();
/// counters.send(Add { counter: "c-1".into(), n: 2 }).await?;
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "postgres")]
pub use store::postgres::PostgresJournal;
#[cfg(feature = "sqlite")]
pub use store::sqlite::SqliteBuilder;
/// The embedded, durable store: one SQLite file holds the journal and the snapshots.
///
/// ```
/// # use factum::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[event]
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # pub struct Added { n: u64 }
/// # #[command(id = counter)]
/// # #[derive(Debug, Clone)]
/// # pub struct Add { counter: String, n: u64 }
/// # #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
/// # pub struct Counter { total: u64 }
/// # #[aggregate(snapshot)]
/// # impl Counter {
/// #     fn handle(&self, cmd: Add) -> Result<Added, String> { Ok(Added { n: cmd.n }) }
/// #     fn apply(&mut self, event: &Added) { self.total += event.n }
/// # }
/// // `Counter { total }`, made with the macros: `Add { counter, n }` -> `Added { n }`.
/// use factum::{Repository, SnapshotPolicy, SqliteJournal};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join(format!("factum-doc-{}.db", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let journal = SqliteJournal::open(&path).await?;
/// let counters: Repository<Counter> = Repository::builder(journal.clone())
///     .snapshots(journal.clone(), SnapshotPolicy::Every(100))
///     .build();
/// counters.send(Add { counter: "c-1".into(), n: 2 }).await?; // fsynced when it returns
/// drop((counters, journal));
///
/// // Reopened (say, after a restart), the aggregate recovers from the file.
/// let counters: Repository<Counter> = Repository::new(SqliteJournal::open(&path).await?);
/// assert_eq!(counters.state(&"c-1".to_string()).await?, (Counter { total: 2 }, 1));
/// # drop(counters);
/// # for suffix in ["", "-wal", "-shm"] {
/// #     let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
/// # }
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "sqlite")]
pub use store::sqlite::SqliteJournal;
pub use store::{
    AtomicWrite, BoxFuture, EventRecord, Journal, JournalError, SnapshotRecord, SnapshotStore,
};

/// Makes the state type of an inherent `impl` block an aggregate: implements [`Aggregate`]
/// from its `fn handle`, `fn apply` and optional `fn invariants`.
///
/// ```
/// use factum::prelude::*;
/// use factum::TestFixture;
/// use serde::{Deserialize, Serialize};
///
/// #[event]
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub enum CartEvent { Added { item: String }, Removed { item: String } }
///
/// #[command(id = cart)]
/// #[derive(Debug)]
/// pub enum CartCommand { Add { cart: u32, item: String }, Remove { cart: u32, item: String } }
///
/// #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
/// pub struct ShoppingCart { items: Vec<String> }
///
/// #[aggregate(snapshot)] // persistence ids "shopping-cart-{id}"; the state is snapshotted
/// impl ShoppingCart {
///     /// Decides. May return a `Vec`, one event, an `Option` or an array of events.
///     fn handle(&self, cmd: CartCommand) -> Result<Option<CartEvent>, String> {
///         Ok(match cmd {
///             CartCommand::Add { item, .. } => Some(CartEvent::Added { item }),
///             CartCommand::Remove { item, .. } if self.items.contains(&item) => {
///                 Some(CartEvent::Removed { item })
///             }
///             CartCommand::Remove { .. } => None, // nothing to do: no event
///         })
///     }
///
///     /// Evolves. Events are facts: this cannot fail.
///     fn apply(&mut self, event: &CartEvent) {
///         match event {
///             CartEvent::Added { item } => self.items.push(item.clone()),
///             CartEvent::Removed { item } => self.items.retain(|i| i != item),
///         }
///     }
///
///     /// Checked on the state the new events would produce, before they are written.
///     fn invariants(&self) -> Result<(), String> {
///         match self.items.len() {
///             0..=3 => Ok(()),
///             _ => Err("at most 3 items".into()),
///         }
///     }
/// }
///
/// assert_eq!(ShoppingCart::NAME, "shopping-cart");
/// assert_eq!(ShoppingCart::persistence_id(&7), "shopping-cart-7");
/// assert_eq!(ShoppingCart::SNAPSHOT_VERSION, Some(1));
///
/// let added = |item: &str| CartEvent::Added { item: item.into() };
/// TestFixture::<ShoppingCart>::given([added("tea"), added("milk")])
///     .when(CartCommand::Add { cart: 7, item: "jam".into() })
///     .then_expect_events([added("jam")]);
/// TestFixture::<ShoppingCart>::given([added("tea"), added("milk"), added("jam")])
///     .when(CartCommand::Add { cart: 7, item: "honey".into() })
///     .then_expect_error("at most 3 items".to_string());
/// ```
#[doc(inline)]
pub use factum_macros::aggregate;
/// Makes a struct or an enum a command: implements [`Command`] (the aggregate id, and
/// optionally an expected version and an idempotency key).
///
/// ```
/// use factum::prelude::*;
///
/// #[command(id = account_id)] // the default for every variant
/// #[derive(Debug, Clone)]
/// pub enum AccountCommand {
///     Open { account_id: String, owner: String },
///     #[command(expected_version = version, command_id = request_id)]
///     Deposit { account_id: String, amount: u64, version: Option<u64>, request_id: String },
///     #[command(id = from)]
///     Transfer { from: String, to: String, amount: u64 },
/// }
///
/// /// A tuple struct names its id field by index.
/// #[command(id = 0, expected_version = 1)]
/// pub struct Close(String, u64);
///
/// let deposit = AccountCommand::Deposit {
///     account_id: "alice".into(),
///     amount: 100,
///     version: Some(3),
///     request_id: "req-1".into(),
/// };
/// assert_eq!(deposit.aggregate_id(), "alice");
/// assert_eq!(deposit.expected_version(), Some(3));
/// assert_eq!(deposit.command_id(), Some("req-1"));
///
/// let transfer = AccountCommand::Transfer { from: "bob".into(), to: "alice".into(), amount: 5 };
/// assert_eq!(transfer.aggregate_id(), "bob");
/// assert_eq!((transfer.expected_version(), transfer.command_id()), (None, None));
///
/// let close = Close("alice".into(), 9);
/// assert_eq!((close.aggregate_id().as_str(), close.expected_version()), ("alice", Some(9)));
/// ```
#[doc(inline)]
pub use factum_macros::command;
/// Makes an enum (one event kind per variant) or a struct an event: implements [`Event`]
/// with a manifest, a version, tags and a `serde_json` codec.
///
/// ```
/// use factum::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[event(tags = ["account"])]
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub enum AccountEvent {
///     Opened { owner: String },
///     #[event(tags = ["large"], version = 2, upcast(from = 1, with = deposited_v1_to_v2))]
///     Deposited { amount: u64, currency: String },
///     #[event(rename = "money-withdrawn")]
///     Withdrawn { amount: u64 },
/// }
///
/// /// Version 1 had no currency: everything was in euros.
/// fn deposited_v1_to_v2(mut v1: serde_json::Value) -> serde_json::Value {
///     v1["currency"] = "EUR".into();
///     v1
/// }
///
/// let withdrawn = AccountEvent::Withdrawn { amount: 5 };
/// assert_eq!((withdrawn.manifest(), withdrawn.version()), ("money-withdrawn", 1));
/// assert_eq!(withdrawn.encode()?, br#"{"amount":5}"#);
///
/// let deposited = AccountEvent::Deposited { amount: 7, currency: "EUR".into() };
/// assert_eq!((deposited.manifest(), deposited.version()), ("Deposited", 2));
/// assert_eq!(deposited.tags().iter().collect::<Vec<_>>(), ["account", "large"]);
///
/// // A version-1 payload written long ago is upcast on the way in.
/// assert_eq!(AccountEvent::decode("Deposited", 1, br#"{"amount":7}"#)?, deposited);
/// // An unknown manifest is an error, never a panic.
/// assert!(AccountEvent::decode("Closed", 1, b"{}").is_err());
/// # Ok::<(), factum::CodecError>(())
/// ```
#[doc(inline)]
pub use factum_macros::event;

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
