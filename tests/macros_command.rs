//! `#[command]` on every accepted form, and `#[aggregate]` with every `handle` return form.
#![allow(missing_docs)]

use factum::prelude::*;
use factum::{MemoryJournal, Repository};
use serde::{Deserialize, Serialize};

#[command(id = account, expected_version = version, command_id = request)]
#[derive(Debug, Clone)]
pub struct Named {
    pub account: u32,
    pub version: u64,
    pub request: &'static str,
}

#[command(id = 1, command_id = 0)]
#[derive(Debug)]
pub struct Tuple(pub Option<String>, pub String);

/// A string newtype: any `AsRef<str>` is a command id.
#[derive(Debug, Clone)]
pub struct RequestId(String);

impl AsRef<str> for RequestId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

pub type Id = String;

#[command(id = id, command_id = request)]
#[derive(Debug, Clone)]
pub enum Many {
    One {
        id: String,
        request: RequestId,
    },
    #[command(id = 0, command_id = 1)]
    Two(Id, Box<str>),
    #[command(expected_version = version)]
    Three {
        id: String,
        request: Option<RequestId>,
        version: u64,
    },
}

#[test]
fn struct_commands() {
    let named = Named {
        account: 7,
        version: 3,
        request: "r",
    };
    assert_eq!(*named.aggregate_id(), 7);
    assert_eq!(named.expected_version(), Some(3));
    assert_eq!(named.command_id(), Some("r"));
    assert!(named.retry_copy().is_some());

    let tuple = Tuple(Some("c".into()), "id".into());
    assert_eq!(tuple.aggregate_id(), "id");
    assert_eq!(tuple.expected_version(), None);
    assert_eq!(tuple.command_id(), Some("c"));
    // Not `Clone`, but every field is: copied field by field, to retry with.
    let copy = tuple.retry_copy().expect("a copy");
    assert_eq!((copy.0.as_deref(), copy.1.as_str()), (Some("c"), "id"));
    assert_eq!(Tuple(None, "id".into()).command_id(), None);
    // A field that is not `Clone`: no copy, so a lost write race returns the conflict.
    let (reply, _) = tokio::sync::oneshot::channel();
    assert!(WithReply("id".into(), reply).retry_copy().is_none());
}

/// A command that cannot be copied: its reply channel is not `Clone`.
#[command(id = 0)]
#[derive(Debug)]
pub struct WithReply(pub String, pub tokio::sync::oneshot::Sender<u64>);

/// DESIGN.md's `AccountCommand` derives only `Debug`: every variant form is copied field
/// by field, so a command without an expected version is retried after a lost race.
#[command(id = account)]
#[derive(Debug, PartialEq)]
pub enum NotClone {
    Named {
        account: String,
        amount: u64,
    },
    #[command(id = 0)]
    Tuple(String, Vec<u8>),
    #[command(id = account)]
    Empty {
        account: String,
    },
}

#[test]
fn commands_without_clone_are_copied_field_by_field() {
    for command in [
        NotClone::Named {
            account: "a".into(),
            amount: 5,
        },
        NotClone::Tuple("b".into(), vec![1, 2]),
        NotClone::Empty {
            account: "c".into(),
        },
    ] {
        assert_eq!(command.retry_copy().as_ref(), Some(&command));
    }
}

#[test]
fn enum_commands_with_defaults_and_overrides() {
    let one = Many::One {
        id: "1".into(),
        request: RequestId("r1".into()),
    };
    assert_eq!(
        (
            one.aggregate_id().as_str(),
            one.command_id(),
            one.expected_version()
        ),
        ("1", Some("r1"), None)
    );
    let two = Many::Two("2".into(), "r2".into());
    assert_eq!(
        (two.aggregate_id().as_str(), two.command_id()),
        ("2", Some("r2"))
    );
    // Variant options are added to the type-level ones.
    let three = Many::Three {
        id: "3".into(),
        request: None,
        version: 4,
    };
    assert_eq!(
        (
            three.aggregate_id().as_str(),
            three.command_id(),
            three.expected_version()
        ),
        ("3", None, Some(4))
    );
    assert!(three.retry_copy().is_some());
}

// ---------------------------------------------------------------------------------------
// Every return form of `handle`.

#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bumped;

#[command(id = 0)]
#[derive(Debug, Clone)]
pub struct Bump(pub String, pub usize);

macro_rules! counter {
    ($name:ident, $ret:ty, |$n:ident| $events:expr) => {
        #[derive(Debug, Default, Clone)]
        pub struct $name {
            bumps: usize,
        }

        #[aggregate]
        impl $name {
            fn handle(&self, cmd: Bump) -> Result<$ret, String> {
                let $n = cmd.1;
                Ok($events)
            }

            fn apply(&mut self, _: &Bumped) {
                self.bumps += 1;
            }
        }
    };
}

counter!(ByVec, Vec<Bumped>, |n| vec![Bumped; n]);
counter!(ByOption, Option<Bumped>, |n| (n > 0).then_some(Bumped));
counter!(ByArray, [Bumped; 2], |_n| [Bumped, Bumped]);
counter!(ByOne, Bumped, |_n| Bumped);

async fn bumps<A: Aggregate<Command = Bump>>(n: usize) -> u64 {
    let repository: Repository<A> = Repository::new(MemoryJournal::new());
    repository.send(Bump("x".into(), n)).await.unwrap().version
}

#[tokio::test]
async fn every_handle_return_form() {
    assert_eq!(bumps::<ByVec>(3).await, 3);
    assert_eq!(bumps::<ByOption>(0).await, 0);
    assert_eq!(bumps::<ByOption>(1).await, 1);
    assert_eq!(bumps::<ByArray>(0).await, 2);
    assert_eq!(bumps::<ByOne>(0).await, 1);
    // Default names: the type name in kebab-case.
    assert_eq!((ByVec::NAME, ByOption::NAME), ("by-vec", "by-option"));
    assert_eq!(ByOne::SNAPSHOT_VERSION, None);
}

// ---------------------------------------------------------------------------------------
// A command without `Clone` through a lost write race.

#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Added {
    pub amount: u64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    total: u64,
}

#[aggregate]
impl Tally {
    fn handle(&self, cmd: NotClone) -> Result<Option<Added>, String> {
        Ok(match cmd {
            NotClone::Named { amount, .. } => Some(Added { amount }),
            NotClone::Tuple(..) | NotClone::Empty { .. } => None,
        })
    }

    fn apply(&mut self, event: &Added) {
        self.total += event.amount;
    }
}

/// Two gateways over one journal: the one with a stale state loses the write race and
/// runs its field-by-field copy of the command again on the reloaded state.
#[tokio::test]
async fn a_command_without_clone_is_retried_after_a_lost_race() {
    let journal = MemoryJournal::new();
    let a: Repository<Tally> = Repository::new(journal.clone());
    let b: Repository<Tally> = Repository::new(journal.clone());
    let named = |amount| NotClone::Named {
        account: "t".into(),
        amount,
    };
    a.send(named(1)).await.unwrap();
    b.send(named(2)).await.unwrap();
    // `a` still believes version 1: its write loses, and the copy runs at version 2.
    assert_eq!(a.send(named(3)).await.unwrap().version, 3);
    let fresh: Repository<Tally> = Repository::new(journal);
    let state = fresh.state(&"t".to_string()).await.unwrap();
    assert_eq!(state, (Tally { total: 6 }, 3));
}

// ---------------------------------------------------------------------------------------
// A domain error that is only `Debug`.

/// No `Display`: the aggregate compiles and its error comes back as `Error::Domain`; only
/// turning `Error<Refused>` into a `Box<dyn std::error::Error>` would ask for `Display`.
#[derive(Debug, PartialEq)]
pub struct Refused;

#[derive(Debug, Default, Clone)]
pub struct Picky;

#[aggregate]
impl Picky {
    fn handle(&self, cmd: Bump) -> Result<Bumped, Refused> {
        if cmd.1 == 0 { Err(Refused) } else { Ok(Bumped) }
    }

    fn apply(&mut self, _: &Bumped) {}
}

#[tokio::test]
async fn a_domain_error_needs_only_debug() {
    let repository: Repository<Picky> = Repository::new(MemoryJournal::new());
    assert!(matches!(
        repository.send(Bump("p".into(), 0)).await,
        Err(factum::Error::Domain(Refused))
    ));
    assert_eq!(
        repository.send(Bump("p".into(), 1)).await.unwrap().version,
        1
    );
    factum::TestFixture::<Picky>::given(vec![])
        .when(Bump("p".into(), 0))
        .then_expect_error(Refused);
}
