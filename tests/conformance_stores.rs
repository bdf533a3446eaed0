//! The store conformance suite (`tests/conformance/mod.rs`) against every store:
//! `memory`, `sqlite` (feature `sqlite`) and `postgres` (feature `postgres`; needs
//! `FACTUM_TEST_POSTGRES`, see `tests/support/mod.rs`), and the custom JSON-lines store of
//! `examples/custom_journal`.

mod conformance;
#[path = "../examples/custom_journal/jsonl.rs"]
mod jsonl;
mod support;

mod memory {
    use super::conformance::{self, Factory};
    use factum::{MemoryJournal, MemorySnapshots};

    struct Memory;

    impl Factory for Memory {
        type J = MemoryJournal;
        type S = MemorySnapshots;
        async fn journal(&self) -> MemoryJournal {
            MemoryJournal::new()
        }
        async fn reopen(&self, journal: &MemoryJournal) -> MemoryJournal {
            journal.clone()
        }
        async fn snapshots(&self) -> MemorySnapshots {
            MemorySnapshots::new()
        }
        async fn reopen_snapshots(&self, snapshots: &MemorySnapshots) -> MemorySnapshots {
            snapshots.clone()
        }
    }

    crate::conformance_suite!(Some(Memory));
}

mod custom_jsonl {
    use super::conformance::{self, Factory};
    use super::jsonl::JsonlJournal;
    use super::support::sqlite_path;
    use std::path::PathBuf;

    /// Each check gets its own file; opening it again in the process shares the handle.
    struct Jsonl {
        path: PathBuf,
    }

    impl Factory for Jsonl {
        type J = JsonlJournal;
        type S = JsonlJournal;
        async fn journal(&self) -> JsonlJournal {
            JsonlJournal::open(&self.path).expect("open")
        }
        async fn reopen(&self, _: &JsonlJournal) -> JsonlJournal {
            self.journal().await
        }
        async fn snapshots(&self) -> JsonlJournal {
            self.journal().await
        }
        async fn reopen_snapshots(&self, _: &JsonlJournal) -> JsonlJournal {
            self.journal().await
        }
        async fn cleanup(&self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    crate::conformance_suite!(Some(Jsonl {
        path: sqlite_path("jsonl").with_extension("jsonl"),
    }));
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::conformance::{self, Factory};
    use super::support::{remove_sqlite, sqlite_path};
    use factum::SqliteJournal;
    use std::path::PathBuf;

    /// Each check gets its own database file.
    pub(super) struct Sqlite {
        path: PathBuf,
        /// The stream index's batch ([`factum::SqliteBuilder::index_batch`]).
        index_batch: usize,
    }

    impl Sqlite {
        pub(super) fn new(index_batch: usize) -> Self {
            Sqlite {
                path: sqlite_path("conformance"),
                index_batch,
            }
        }
    }

    impl Factory for Sqlite {
        type J = SqliteJournal;
        type S = SqliteJournal;
        async fn journal(&self) -> SqliteJournal {
            SqliteJournal::builder(&self.path)
                .index_batch(self.index_batch)
                .open()
                .await
                .expect("open")
        }
        async fn reopen(&self, journal: &SqliteJournal) -> SqliteJournal {
            SqliteJournal::builder(journal.path())
                .index_batch(self.index_batch)
                .open()
                .await
                .expect("reopen")
        }
        async fn snapshots(&self) -> SqliteJournal {
            self.journal().await
        }
        async fn reopen_snapshots(&self, snapshots: &SqliteJournal) -> SqliteJournal {
            self.reopen(snapshots).await
        }
        async fn cleanup(&self) {
            remove_sqlite(&self.path);
        }
    }

    // The default batch: in these checks every event stays unmerged, found by position.
    crate::conformance_suite!(Some(Sqlite::new(32_768)));

    /// The same checks with the stream index merged every two events, so that reads and
    /// checks meet streams whose events are part merged, part not.
    mod merged {
        use super::super::conformance;
        use super::Sqlite;

        crate::conformance_suite!(Some(Sqlite::new(2)));
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::conformance::{self, Factory};
    use super::support::{drop_schema, postgres_url, unique};
    use factum::PostgresJournal;

    /// Each check gets its own Postgres schema, dropped when it passes.
    struct Postgres {
        url: String,
        schema: String,
    }

    fn factory() -> Option<Postgres> {
        Some(Postgres {
            url: postgres_url()?,
            schema: unique("factum_t"),
        })
    }

    impl Factory for Postgres {
        type J = PostgresJournal;
        type S = PostgresJournal;
        async fn journal(&self) -> PostgresJournal {
            PostgresJournal::connect_with_schema(&self.url, &self.schema)
                .await
                .expect("connect")
        }
        async fn reopen(&self, _: &PostgresJournal) -> PostgresJournal {
            self.journal().await
        }
        async fn snapshots(&self) -> PostgresJournal {
            self.journal().await
        }
        async fn reopen_snapshots(&self, _: &PostgresJournal) -> PostgresJournal {
            self.journal().await
        }
        async fn cleanup(&self) {
            drop_schema(&self.url, &self.schema).await;
        }
    }

    crate::conformance_suite!(factory());
}
