//! Event and snapshot encoding errors, and event tags.

use std::fmt;

/// Why a payload could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// No event kind has this manifest.
    #[error("unknown manifest `{0}`")]
    UnknownManifest(String),
    /// The manifest is known, but not at this version and no upcaster leads from it.
    #[error("unknown version {version} of `{manifest}` (current: {current})")]
    UnknownVersion {
        /// The stored manifest.
        manifest: String,
        /// The stored version.
        version: u32,
        /// The version the code knows.
        current: u32,
    },
    /// The payload is not valid for the type.
    #[error("bad payload: {0}")]
    Payload(#[from] serde_json::Error),
    /// The type does not support this (for example snapshots of an aggregate without them).
    #[error("{0} not supported by this type")]
    Unsupported(&'static str),
}

/// A stored event that could not be decoded: names where it is and what it claims to be.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot decode event {sequence_nr} of `{persistence_id}` (manifest `{manifest}`, version {version}): {source}"
)]
pub struct DecodeError {
    /// The persistence id of the stream.
    pub persistence_id: String,
    /// The sequence number of the event.
    pub sequence_nr: u64,
    /// The stored manifest.
    pub manifest: String,
    /// The stored version.
    pub version: u32,
    /// What went wrong.
    #[source]
    pub source: CodecError,
}

/// The tags of one event: static ones (no allocation) and dynamic ones.
#[derive(Clone, Default)]
pub struct Tags {
    fixed: &'static [&'static str],
    owned: Vec<String>,
}

impl Tags {
    /// No tags.
    pub const NONE: Tags = Tags {
        fixed: &[],
        owned: Vec::new(),
    };

    /// Static tags, allocation free.
    pub const fn fixed(tags: &'static [&'static str]) -> Self {
        Tags {
            fixed: tags,
            owned: Vec::new(),
        }
    }

    /// Static tags plus dynamic ones.
    pub fn with_owned(fixed: &'static [&'static str], owned: Vec<String>) -> Self {
        Tags { fixed, owned }
    }

    /// Owned tags, as read back from a store.
    pub fn owned(owned: Vec<String>) -> Self {
        Tags { fixed: &[], owned }
    }

    /// All tags, static first.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.fixed
            .iter()
            .copied()
            .chain(self.owned.iter().map(String::as_str))
    }

    /// Whether `tag` is one of them.
    pub fn contains(&self, tag: &str) -> bool {
        self.iter().any(|t| t == tag)
    }

    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.fixed.is_empty() && self.owned.is_empty()
    }
}

impl PartialEq for Tags {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Tags {}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
