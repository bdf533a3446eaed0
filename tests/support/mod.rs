//! Shared by the store tests: a hand-written aggregate (the macros are not used here), and
//! the places the tests keep their data.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use factum::{Aggregate, CodecError, Command, Event, Tags};
use serde::{Deserialize, Serialize};

/// A bank account: deposits only.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub balance: u64,
    pub deposits: u64,
}

/// Deposit `amount`, written as `split` events of `amount` each (at least one).
#[derive(Debug, Clone)]
pub struct Deposit {
    pub account: String,
    pub amount: u64,
    pub split: u32,
    pub expected_version: Option<u64>,
    pub request_id: Option<String>,
}

impl Deposit {
    pub fn new(account: &str, amount: u64) -> Self {
        Deposit {
            account: account.to_owned(),
            amount,
            split: 1,
            expected_version: None,
            request_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deposited {
    pub amount: u64,
}

impl Command for Deposit {
    type Id = String;
    fn aggregate_id(&self) -> &String {
        &self.account
    }
    fn expected_version(&self) -> Option<u64> {
        self.expected_version
    }
    fn command_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    fn retry_copy(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl Event for Deposited {
    fn manifest(&self) -> &'static str {
        "deposited"
    }
    fn version(&self) -> u32 {
        1
    }
    fn tags(&self) -> Tags {
        Tags::fixed(&["account"])
    }
    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        Ok(serde_json::to_vec(self)?)
    }
    fn decode(manifest: &str, version: u32, payload: &[u8]) -> Result<Self, CodecError> {
        match (manifest, version) {
            ("deposited", 1) => Ok(serde_json::from_slice(payload)?),
            ("deposited", _) => Err(CodecError::UnknownVersion {
                manifest: manifest.to_owned(),
                version,
                current: 1,
            }),
            _ => Err(CodecError::UnknownManifest(manifest.to_owned())),
        }
    }
}

impl Aggregate for Account {
    type Command = Deposit;
    type Event = Deposited;
    type Error = String;
    const NAME: &'static str = "account";
    const SNAPSHOT_VERSION: Option<u32> = Some(1);

    fn handle(&self, command: Deposit) -> Result<Vec<Deposited>, String> {
        if command.amount == 0 {
            return Err("nothing to deposit".into());
        }
        Ok((0..command.split.max(1))
            .map(|_| Deposited {
                amount: command.amount,
            })
            .collect())
    }

    fn apply(&mut self, event: &Deposited) {
        self.balance += event.amount;
        self.deposits += 1;
    }

    fn encode_snapshot(&self) -> Result<serde_json::Value, CodecError> {
        Ok(serde_json::to_value(self)?)
    }

    fn decode_snapshot(value: serde_json::Value) -> Result<Self, CodecError> {
        Ok(serde_json::from_value(value)?)
    }
}

/// A name no other test (in this or a parallel run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000_000
    )
}

/// A fresh SQLite file path under the target's temporary directory.
pub fn sqlite_path(prefix: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("factum-stores");
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir.join(format!("{}.db", unique(prefix)))
}

/// Removes a SQLite file and its WAL files (best effort).
pub fn remove_sqlite(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}

/// The Postgres URL from `FACTUM_TEST_POSTGRES`. When it is unset, prints a skip line and
/// returns `None` — except under CI (`CI=true`), where the Postgres tests must run, so it
/// panics.
pub fn postgres_url() -> Option<String> {
    match std::env::var("FACTUM_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!(
                    "CI=true but FACTUM_TEST_POSTGRES is not set: the Postgres tests must run in CI"
                );
            }
            eprintln!("skipped: FACTUM_TEST_POSTGRES not set");
            None
        }
    }
}

/// A plain client on `url` with `search_path` set to `schema`, to poke at the tables.
#[cfg(feature = "postgres")]
pub async fn postgres_client(url: &str, schema: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to Postgres");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET search_path TO \"{schema}\""))
        .await
        .expect("set search_path");
    client
}

/// Drops a test's own schema (never a shared one).
#[cfg(feature = "postgres")]
pub async fn drop_schema(url: &str, schema: &str) {
    assert!(
        schema.starts_with("factum_t"),
        "only test schemas are dropped"
    );
    let client = postgres_client(url, schema).await;
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop the test schema");
}
