//! The bank story of `cargo run --example bank` on PostgreSQL: the store for users who
//! outgrow one machine.
//!
//! ```sh
//! FACTUM_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --example postgres --features postgres
//! ```
//!
//! The tables are created on connect, in the connection's `search_path` (normally
//! `public`; `PostgresJournal::connect_with_schema` keeps them in a schema of their own).
//! Run it several times: each run recovers the accounts and goes on.
//!
//! Several processes may serve the same accounts on one database: a process that loses
//! a write race reloads the account and retries the command (or returns the conflict when
//! the command carried an expected version); `tests/postgres_nodes.rs` runs two of them.
//! This story itself checks exact versions, so run one at a time.

#[path = "bank/domain.rs"]
mod domain;
#[path = "bank/story.rs"]
mod story;

use std::error::Error;

use factum::PostgresJournal;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let Ok(url) = std::env::var("FACTUM_POSTGRES_URL") else {
        println!(
            "FACTUM_POSTGRES_URL is not set; nothing to do. Try\n  \
             FACTUM_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
             cargo run --example postgres --features postgres"
        );
        return Ok(());
    };
    let journal = PostgresJournal::connect(&url).await?;
    println!("journal: PostgreSQL");

    // The journal is also the snapshot store: both live in the same database.
    story::run(journal.clone(), journal, &mut std::io::stdout()).await?;
    Ok(())
}
