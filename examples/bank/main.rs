//! The main job: the bank account of DESIGN.md on SQLite, as a short story.
//!
//! ```sh
//! cargo run --example bank                 # the journal is target/bank.db
//! cargo run --example bank -- /tmp/bank.db # or any path
//! ```
//!
//! The first run opens two accounts; every later run recovers them (from the newest
//! snapshot and the events after it) and continues the story where it stopped. Look at
//! the journal with `sqlite3 target/bank.db "select * from factum_journal"`.

mod domain;
mod story;

use std::error::Error;
use std::path::PathBuf;

use factum::SqliteJournal;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let path = match std::env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bank.db"),
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let existed = path.exists();
    println!(
        "journal: {} ({})",
        path.display(),
        if existed { "existing" } else { "new" }
    );

    // One SQLite file holds the journal and the snapshots.
    let journal = SqliteJournal::open(&path).await?;
    story::run(journal.clone(), journal, &mut std::io::stdout()).await?;

    println!("run it again: the accounts recover and the story goes on");
    Ok(())
}
