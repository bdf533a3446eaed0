//! Helpers shared by the SQL stores: integer conversions, tags as JSON, the sequence check
//! (the same rule as the memory journal), and the error for corrupt rows.

use std::sync::Arc;

use crate::codec::Tags;

use super::{EventRecord, JournalError};

/// A row that cannot be turned into a record (a column of the wrong type or range).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Corrupt(pub String);

/// A backend error with this message.
pub(crate) fn corrupt(message: String) -> JournalError {
    JournalError::backend(Corrupt(message))
}

/// `value` as a SQL `BIGINT`, or an encoding error naming `what`.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, JournalError> {
    i64::try_from(value).map_err(|_| JournalError::Encode(format!("{what} {value} is too large")))
}

/// `value` clamped into a SQL `BIGINT` (for read bounds such as `u64::MAX`).
pub(crate) fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A row count limit as a SQL `BIGINT`.
pub(crate) fn limit(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

/// A stored `BIGINT` as `u64`, or a corrupt-row error naming where it is.
pub(crate) fn to_u64(
    value: i64,
    column: &str,
    persistence_id: &str,
    sequence_nr: i64,
) -> Result<u64, JournalError> {
    u64::try_from(value).map_err(|_| {
        corrupt(format!(
            "corrupt row {sequence_nr} of `{persistence_id}`: {column} is {value}"
        ))
    })
}

/// A stored version as `u32`, or a corrupt-row error naming where it is.
pub(crate) fn to_u32(
    value: i64,
    column: &str,
    persistence_id: &str,
    sequence_nr: i64,
) -> Result<u32, JournalError> {
    u32::try_from(value).map_err(|_| {
        corrupt(format!(
            "corrupt row {sequence_nr} of `{persistence_id}`: {column} is {value}"
        ))
    })
}

/// The tags as a JSON array of strings, as stored in the `tags` column.
#[cfg(feature = "sqlite")]
pub(crate) fn tags_json(tags: &Tags) -> String {
    let mut json = String::with_capacity(2 + tags.iter().map(|t| t.len() + 3).sum::<usize>());
    json.push('[');
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json_string(&mut json, tag);
    }
    json.push(']');
    json
}

/// Appends `text` as a JSON string, escaped as `serde_json` escapes it.
#[cfg(feature = "sqlite")]
fn push_json_string(json: &mut String, text: &str) {
    use std::fmt::Write as _;
    json.push('"');
    for c in text.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            '\n' => json.push_str("\\n"),
            '\r' => json.push_str("\\r"),
            '\t' => json.push_str("\\t"),
            '\u{08}' => json.push_str("\\b"),
            '\u{0c}' => json.push_str("\\f"),
            c if c < ' ' => {
                // Writing to a `String` cannot fail.
                let _ = write!(json, "\\u{:04x}", u32::from(c));
            }
            c => json.push(c),
        }
    }
    json.push('"');
}

/// The tags read back from the `tags` column.
#[cfg(feature = "sqlite")]
pub(crate) fn parse_tags(
    json: &str,
    persistence_id: &str,
    sequence_nr: i64,
) -> Result<Tags, JournalError> {
    serde_json::from_str::<Vec<String>>(json)
        .map(Tags::owned)
        .map_err(|e| {
            corrupt(format!(
                "corrupt tags of event {sequence_nr} of `{persistence_id}`: {e}"
            ))
        })
}

/// Distinct tags of one event (a repeated tag is stored once in the tag index).
#[cfg(feature = "postgres")]
pub(crate) fn distinct_tags(tags: &Tags) -> Vec<&str> {
    let mut list: Vec<&str> = Vec::new();
    for tag in tags.iter() {
        if !list.contains(&tag) {
            list.push(tag);
        }
    }
    list
}

/// The payload as text: the SQL stores keep it readable. A payload that is not UTF-8
/// cannot be stored.
pub(crate) fn payload_text(event: &EventRecord) -> Result<&str, JournalError> {
    std::str::from_utf8(&event.payload).map_err(|_| {
        JournalError::Encode(format!(
            "the payload of event {} of `{}` is not UTF-8 text",
            event.sequence_nr, event.persistence_id
        ))
    })
}

/// Checks that `events` continue the stream right after `highest`, without gaps: the rule of
/// the memory journal. The error names the first sequence number that cannot be written.
pub(crate) fn check_sequence(
    persistence_id: &str,
    highest: u64,
    events: &[EventRecord],
) -> Result<(), JournalError> {
    for (after, event) in (1..).zip(events) {
        let expected = highest.checked_add(after);
        if Some(event.sequence_nr) != expected {
            return Err(JournalError::Conflict {
                persistence_id: persistence_id.to_owned(),
                sequence_nr: expected.map_or(event.sequence_nr, |e| e.min(event.sequence_nr)),
            });
        }
    }
    Ok(())
}

/// A conflict on the first event of a part (a unique key said the number is taken).
pub(crate) fn conflict(persistence_id: &Arc<str>, events: &[EventRecord]) -> JournalError {
    JournalError::Conflict {
        persistence_id: persistence_id.to_string(),
        sequence_nr: events.first().map_or(0, |e| e.sequence_nr),
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    /// The `tags` column is the JSON that `serde_json` would write, and reads back as the
    /// same tags, whatever characters they hold.
    #[test]
    fn tags_json_is_serde_json_and_reads_back() {
        let tricky = [
            "plain",
            "",
            "quote \" and \\ backslash",
            "new\nline\r\ttab \u{8}\u{c}",
            "control \u{0} \u{1f} \u{7f}",
            "ünïcødé 👍",
        ];
        for n in 0..=tricky.len() {
            let list: Vec<String> = tricky[..n].iter().map(|t| t.to_string()).collect();
            let tags = Tags::owned(list.clone());
            let json = tags_json(&tags);
            assert_eq!(json, serde_json::to_string(&list).unwrap());
            assert_eq!(parse_tags(&json, "p", 1).unwrap(), tags);
        }
    }
}
