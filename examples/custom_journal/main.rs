//! A custom store: the bank story of `cargo run --example bank` on [`jsonl::JsonlJournal`],
//! an append-only JSON-lines file written for this example (see `jsonl.rs`; the store
//! conformance suite in `tests/conformance_stores.rs` runs against it too).
//!
//! ```sh
//! cargo run --example custom_journal                  # the file is target/bank.jsonl
//! cargo run --example custom_journal -- /tmp/bank.jsonl
//! ```
//!
//! Everything a repository needs from a store is the two traits, `Journal` and
//! `SnapshotStore`; each line of the file is readable JSON.

#[path = "../bank/domain.rs"]
mod domain;
mod jsonl;
#[path = "../bank/story.rs"]
mod story;

use std::error::Error;
use std::path::PathBuf;

use jsonl::JsonlJournal;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let path = match std::env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bank.jsonl"),
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let journal = JsonlJournal::open(&path)?;
    println!("journal: {}", path.display());
    story::run(journal.clone(), journal, &mut std::io::stdout()).await?;
    println!("the last lines of the file:");
    let text = std::fs::read_to_string(&path)?;
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(3)..] {
        println!("  {line}");
    }
    Ok(())
}
