//! Given–when–then tests of an aggregate: pure, synchronous, no journal.

use std::fmt::{Debug, Write as _};

use crate::aggregate::{Aggregate, Command, Event};
use crate::error::Error;

/// Tests an aggregate's decisions: given past events, when a command arrives, then expect
/// events, an error or a state.
///
/// Beyond the expectations, every step checks what a journal would rely on, and panics
/// with a readable message when it does not hold:
/// - every event (given and produced) round-trips through its codec unchanged;
/// - the state round-trips through the snapshot codec (when the aggregate has snapshots);
/// - the state rebuilt from all the decoded events equals the live state.
///
/// ```
/// # use factum::{Aggregate, CodecError, Command, Event, TestFixture};
/// # #[derive(Debug, Default, Clone, PartialEq)]
/// # struct Counter { value: u64 }
/// # #[derive(Debug, Clone, PartialEq)]
/// # struct Added(u64);
/// # struct Add { id: String, amount: u64 }
/// # impl Command for Add {
/// #     type Id = String;
/// #     fn aggregate_id(&self) -> &String { &self.id }
/// # }
/// # impl Event for Added {
/// #     fn manifest(&self) -> &'static str { "added" }
/// #     fn version(&self) -> u32 { 1 }
/// #     fn encode(&self) -> Result<Vec<u8>, CodecError> { Ok(serde_json::to_vec(&self.0)?) }
/// #     fn decode(_: &str, _: u32, payload: &[u8]) -> Result<Self, CodecError> {
/// #         Ok(Added(serde_json::from_slice(payload)?))
/// #     }
/// # }
/// # impl Aggregate for Counter {
/// #     type Command = Add;
/// #     type Event = Added;
/// #     type Error = String;
/// #     const NAME: &'static str = "counter";
/// #     fn handle(&self, cmd: Add) -> Result<Vec<Added>, String> {
/// #         if cmd.amount == 0 { return Err("zero".into()) }
/// #         Ok(vec![Added(cmd.amount)])
/// #     }
/// #     fn apply(&mut self, event: &Added) { self.value += event.0 }
/// # }
/// TestFixture::<Counter>::given([Added(1)])
///     .when(Add { id: "c".into(), amount: 2 })
///     .then_expect_events([Added(2)])
///     .then_expect_state(Counter { value: 3 });
///
/// TestFixture::<Counter>::given([])
///     .when(Add { id: "c".into(), amount: 0 })
///     .then_expect_error("zero".to_string());
/// ```
pub struct TestFixture<A: Aggregate> {
    state: A,
    history: Vec<A::Event>,
}

/// The outcome of [`TestFixture::when`], to check with the `then_expect_*` methods.
pub struct TestOutcome<A: Aggregate> {
    outcome: Result<Vec<A::Event>, Error<A::Error>>,
    state: A,
}

impl<A> TestFixture<A>
where
    A: Aggregate + Debug,
    A::Event: PartialEq + Debug,
    A::Error: Debug,
{
    /// The aggregate after `events` (each checked through the codec first).
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        let mut state = A::default();
        let history: Vec<A::Event> = events.into_iter().collect();
        for event in &history {
            check_round_trip(event);
            state.apply(event);
        }
        TestFixture { state, history }
    }

    /// Runs `command` as the repository would: expected version, `handle`, `apply`,
    /// `invariants`; then checks the codecs and the rebuilt state.
    pub fn when(self, command: A::Command) -> TestOutcome<A> {
        let TestFixture { state, mut history } = self;
        let version = history.len() as u64;
        if let Some(expected) = command.expected_version()
            && expected != version
        {
            let persistence_id = A::persistence_id(command.aggregate_id());
            return TestOutcome {
                outcome: Err(Error::Conflict {
                    persistence_id,
                    expected,
                    actual: version,
                }),
                state,
            };
        }
        let events = match state.handle(command) {
            Ok(events) => events,
            Err(error) => {
                return TestOutcome {
                    outcome: Err(Error::Domain(error)),
                    state,
                };
            }
        };
        let mut next = state.clone();
        for event in &events {
            check_round_trip(event);
            next.apply(event);
        }
        if let Err(error) = next.invariants() {
            return TestOutcome {
                outcome: Err(Error::Domain(error)),
                state,
            };
        }
        history.extend(events.iter().cloned());
        check_snapshot_round_trip(&next);
        check_rebuilt(&next, &history);
        TestOutcome {
            outcome: Ok(events),
            state: next,
        }
    }
}

impl<A> TestOutcome<A>
where
    A: Aggregate + Debug,
    A::Event: PartialEq + Debug,
    A::Error: Debug,
{
    /// Expects the command to have produced exactly `expected`.
    #[track_caller]
    pub fn then_expect_events(self, expected: impl IntoIterator<Item = A::Event>) -> Self {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match &self.outcome {
            Ok(events) if *events == expected => {}
            Ok(events) => mismatch("events", &expected, events),
            Err(error) => panic!(
                "expected events, but the command failed:\n{}",
                diff(&format!("{expected:#?}"), &format!("{error:#?}"))
            ),
        }
        self
    }

    /// Expects the command to have failed with the domain error `expected`.
    #[track_caller]
    pub fn then_expect_error(self, expected: A::Error) -> Self
    where
        A::Error: PartialEq,
    {
        match &self.outcome {
            Err(Error::Domain(error)) if *error == expected => {}
            Err(Error::Domain(error)) => mismatch("error", &expected, error),
            Err(other) => panic!("expected the domain error {expected:?}, got {other:?}"),
            Ok(events) => panic!(
                "expected the error {expected:?}, but the command succeeded with events:\n{events:#?}"
            ),
        }
        self
    }

    /// Expects the command to have been refused as a version conflict.
    #[track_caller]
    pub fn then_expect_conflict(self) -> Self {
        if !matches!(self.outcome, Err(Error::Conflict { .. })) {
            panic!("expected a version conflict, got {:?}", self.outcome);
        }
        self
    }

    /// Expects the state after the command (unchanged if it failed) to equal `expected`.
    #[track_caller]
    pub fn then_expect_state(self, expected: A) -> Self
    where
        A: PartialEq,
    {
        if self.state != expected {
            mismatch("state", &expected, &self.state);
        }
        self
    }

    /// The state after the command, for checks of your own.
    pub fn state(&self) -> &A {
        &self.state
    }
}

impl<A: Aggregate> Debug for TestFixture<A>
where
    A: Debug,
    A::Event: Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestFixture")
            .field("state", &self.state)
            .field("history", &self.history)
            .finish()
    }
}

impl<A: Aggregate> Debug for TestOutcome<A>
where
    A: Debug,
    A::Event: Debug,
    A::Error: Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOutcome")
            .field("outcome", &self.outcome)
            .field("state", &self.state)
            .finish()
    }
}

/// Encodes and decodes `event` as the journal would, and panics if it comes back different.
#[track_caller]
fn check_round_trip<E: Event + PartialEq + Debug>(event: &E) {
    let payload = event
        .encode()
        .unwrap_or_else(|e| panic!("event {event:?} does not encode: {e}"));
    let decoded = E::decode(event.manifest(), event.version(), &payload).unwrap_or_else(|e| {
        panic!(
            "event {event:?} encodes (manifest `{}`, version {}, payload {}) but does not decode: {e}",
            event.manifest(),
            event.version(),
            String::from_utf8_lossy(&payload)
        )
    });
    if decoded != *event {
        panic!(
            "event does not survive its codec (manifest `{}`):\n{}",
            event.manifest(),
            diff(&format!("{event:#?}"), &format!("{decoded:#?}"))
        );
    }
}

/// The state's snapshot form must decode to a state with the same snapshot form.
#[track_caller]
fn check_snapshot_round_trip<A: Aggregate + Debug>(state: &A) {
    if A::SNAPSHOT_VERSION.is_none() {
        return;
    }
    let encoded = state
        .encode_snapshot()
        .unwrap_or_else(|e| panic!("state {state:?} does not encode as a snapshot: {e}"));
    let decoded = A::decode_snapshot(encoded.clone())
        .unwrap_or_else(|e| panic!("snapshot {encoded} encodes but does not decode: {e}"));
    let again = decoded
        .encode_snapshot()
        .unwrap_or_else(|e| panic!("decoded snapshot {decoded:?} does not encode: {e}"));
    if again != encoded {
        panic!(
            "state does not survive its snapshot codec:\n{}",
            diff(&pretty(&encoded), &pretty(&again))
        );
    }
}

/// The state rebuilt from the decoded history must equal the live state: compared by
/// snapshot form when the aggregate has one, else by `Debug`.
#[track_caller]
fn check_rebuilt<A: Aggregate + Debug>(live: &A, history: &[A::Event]) {
    let mut rebuilt = A::default();
    for event in history {
        let payload = event.encode().unwrap_or_else(|e| panic!("{e}"));
        let decoded = A::Event::decode(event.manifest(), event.version(), &payload)
            .unwrap_or_else(|e| panic!("{e}"));
        rebuilt.apply(&decoded);
    }
    let (live_form, rebuilt_form) = match (live.encode_snapshot(), rebuilt.encode_snapshot()) {
        (Ok(a), Ok(b)) if A::SNAPSHOT_VERSION.is_some() => (pretty(&a), pretty(&b)),
        _ => (format!("{live:#?}"), format!("{rebuilt:#?}")),
    };
    if live_form != rebuilt_form {
        panic!(
            "the state rebuilt from all events differs from the live state (- live, + rebuilt):\n{}",
            diff(&live_form, &rebuilt_form)
        );
    }
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[track_caller]
fn mismatch<T: Debug + ?Sized>(what: &str, expected: &T, actual: &T) -> ! {
    panic!(
        "{what} differ (- expected, + actual):\n{}",
        diff(&format!("{expected:#?}"), &format!("{actual:#?}"))
    )
}

/// A line diff of two texts: unchanged lines indented, removed `-`, added `+`.
pub(crate) fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // Longest common subsequence table, from the end.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "  {}", a[i]);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::diff;

    #[test]
    fn diff_marks_removed_and_added_lines() {
        assert_eq!(diff("a\nb\nc", "a\nx\nc"), "  a\n- b\n+ x\n  c\n");
        assert_eq!(diff("", "a"), "+ a\n");
    }
}
