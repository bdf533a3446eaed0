//! Snapshot-first recovery: the newest usable snapshot, then only the later events, read
//! page by page so that no stream is ever held in memory whole.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};
use crate::codec::{CodecError, DecodeError};
use crate::dedupe::{CommandId, Entry, Window};
use crate::error::Error;
use crate::gateway::Inner;
use crate::gateway::slots::{Live, Slot};
use crate::store::{EventRecord, JournalError};

/// How many events one journal read returns at most during recovery.
pub(crate) const REPLAY_PAGE: usize = 1024;

/// What a snapshot payload holds: the state and the dedupe window at that point.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotPayload {
    pub state: serde_json::Value,
    #[serde(default)]
    pub dedupe: Vec<(String, Entry)>,
}

pub(crate) async fn recover<A: Aggregate>(
    inner: &Inner<A>,
    slot: &Slot<A>,
) -> Result<Live<A>, Error<A::Error>> {
    let persistence_id = &slot.persistence_id;
    let _permit = inner
        .recovery_permits
        .acquire()
        .await
        .map_err(|_| Error::Stopped {
            persistence_id: persistence_id.to_string(),
        })?;
    let journal_error = |source: JournalError| Error::Journal {
        persistence_id: persistence_id.to_string(),
        source,
    };

    let snapshot = load_snapshot(inner, persistence_id).await;
    let from_snapshot = snapshot.as_ref().map_or(0, |live| live.version);
    let mut live = replay(inner, persistence_id, snapshot.unwrap_or_else(fresh)).await?;

    // Nothing replayed although a write found its sequence number taken: the events may
    // have been deleted (or written by another node since), and the version must not go
    // back. (Asked only then: a new aggregate costs one read, not two.)
    if live.version == from_snapshot && slot.verify_highest.swap(false, Ordering::Relaxed) {
        let highest = inner
            .committer
            .journal()
            .highest_sequence_nr(persistence_id)
            .await
            .map_err(journal_error)?;
        if highest < from_snapshot {
            // The snapshot saw events the journal never had (a journal restored from an
            // older backup, say): the journal is the truth, and writing after the
            // snapshot's version would conflict for good.
            tracing::warn!(
                persistence_id = &**persistence_id,
                snapshot = from_snapshot,
                highest,
                "snapshot ahead of the journal; replaying the journal without it"
            );
            live = replay(inner, persistence_id, fresh()).await?;
        }
        live.version = live.version.max(highest);
    }
    tracing::debug!(
        persistence_id = &**persistence_id,
        snapshot = from_snapshot,
        replayed = live.version.saturating_sub(from_snapshot),
        "recovered"
    );
    Ok(live)
}

/// A new aggregate: the default state at version 0.
fn fresh<A: Aggregate>() -> Live<A> {
    Live {
        state: A::default(),
        version: 0,
        window: Window::default(),
    }
}

/// Applies the journal's events after `live.version` to `live`, page by page, rebuilding
/// the dedupe window from their command ids. Sequence numbers must rise (gaps are
/// deleted events); a journal that returns them out of order, or full pages that move
/// nothing, is an error rather than a loop.
async fn replay<A: Aggregate>(
    inner: &Inner<A>,
    persistence_id: &Arc<str>,
    mut live: Live<A>,
) -> Result<Live<A>, Error<A::Error>> {
    let journal_error = |source: JournalError| Error::Journal {
        persistence_id: persistence_id.to_string(),
        source,
    };
    let window = inner.config.dedupe_window;
    let mut failed = None;
    while let Some(from) = live.version.checked_add(1) {
        let mut visit = |record: &EventRecord| {
            if failed.is_some() {
                return;
            }
            if record.sequence_nr <= live.version {
                let error = out_of_range(from, u64::MAX, record.sequence_nr);
                failed = Some(Failure::Journal(error));
                return;
            }
            match decode::<A>(record) {
                Ok(event) => live.state.apply(&event),
                Err(error) => {
                    failed = Some(Failure::Decode(error));
                    return;
                }
            }
            live.version = record.sequence_nr;
            // With the window off, ids are not hashed (as in the gateway).
            if window > 0
                && let Some(command_id) = &record.command_id
            {
                let entry = Entry {
                    version: record.sequence_nr,
                    count: 1,
                };
                live.window
                    .record(CommandId::new(command_id), entry, window);
            }
        };
        let count = inner
            .committer
            .journal()
            .replay(persistence_id, from, u64::MAX, REPLAY_PAGE, &mut visit)
            .await
            .map_err(journal_error)?;
        match failed {
            Some(Failure::Decode(error)) => return Err(Error::Decode(error)),
            Some(Failure::Journal(error)) => return Err(journal_error(error)),
            None => {}
        }
        if count < REPLAY_PAGE {
            break;
        }
        if live.version < from {
            return Err(journal_error(out_of_range(from, u64::MAX, live.version)));
        }
    }
    Ok(live)
}

/// Why a replay stopped: an event that does not decode, or a journal that broke its
/// contract.
enum Failure {
    Decode(DecodeError),
    Journal(JournalError),
}

/// A journal that answered a read of `from..=to` with sequence number `got`.
pub(crate) fn out_of_range(from: u64, to: u64, got: u64) -> JournalError {
    JournalError::backend(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "the journal answered a read of sequence numbers {from}..={to} with {got}, \
             out of order or out of range"
        ),
    ))
}

/// The newest snapshot, if there is one of the current version that decodes; otherwise
/// `None`, with a warning, so that recovery replays the whole journal.
async fn load_snapshot<A: Aggregate>(inner: &Inner<A>, persistence_id: &str) -> Option<Live<A>> {
    let version = A::SNAPSHOT_VERSION?;
    let store = inner.snapshots.as_ref()?;
    let record = match store.load(persistence_id, u64::MAX).await {
        Ok(record) => record?,
        Err(error) => {
            tracing::warn!(persistence_id, %error, "cannot load snapshot; replaying the journal");
            return None;
        }
    };
    if record.version != version {
        tracing::warn!(
            persistence_id,
            stored = record.version,
            current = version,
            "snapshot of another version; replaying the journal"
        );
        return None;
    }
    let decoded = serde_json::from_slice::<SnapshotPayload>(&record.payload)
        .map_err(CodecError::from)
        .and_then(|payload| Ok((A::decode_snapshot(payload.state)?, payload.dedupe)));
    // A receipt is read back from `version - count + 1 ..= version`: entries outside the
    // snapshot's events make the snapshot as unusable as one that does not decode.
    let decoded = decoded.and_then(|(state, dedupe)| {
        match dedupe
            .iter()
            .find(|(_, e)| e.version > record.sequence_nr || u64::from(e.count) > e.version)
        {
            Some((id, e)) => Err(CodecError::from(
                <serde_json::Error as serde::de::Error>::custom(format!(
                    "dedupe entry `{id}` (version {}, {} events) is out of range",
                    e.version, e.count
                )),
            )),
            None => Ok((state, dedupe)),
        }
    });
    match decoded {
        Ok((state, dedupe)) => Some(Live {
            state,
            version: record.sequence_nr,
            window: Window::from_list(
                dedupe
                    .into_iter()
                    .map(|(id, e)| (Arc::from(id), e))
                    .collect(),
                inner.config.dedupe_window,
            ),
        }),
        Err(error) => {
            tracing::warn!(
                persistence_id,
                sequence_nr = record.sequence_nr,
                %error,
                "cannot decode snapshot; replaying the journal"
            );
            None
        }
    }
}

/// Encodes the state and dedupe window of `live` as a snapshot payload.
pub(crate) fn encode_snapshot<A: Aggregate>(live: &Live<A>) -> Result<Vec<u8>, CodecError> {
    let payload = SnapshotPayload {
        state: live.state.encode_snapshot()?,
        dedupe: live
            .window
            .to_list()
            .into_iter()
            .map(|(id, e)| (id.to_string(), e))
            .collect(),
    };
    Ok(serde_json::to_vec(&payload)?)
}

/// Decodes one stored event of `A`, naming where it is on failure.
pub(crate) fn decode<A: Aggregate>(record: &EventRecord) -> Result<A::Event, DecodeError> {
    A::Event::decode(&record.manifest, record.version, &record.payload).map_err(|source| {
        DecodeError {
            persistence_id: record.persistence_id.to_string(),
            sequence_nr: record.sequence_nr,
            manifest: record.manifest.to_string(),
            version: record.version,
            source,
        }
    })
}
