//! Load generator for the workloads of BENCHMARKS.md.
//!
//! ```sh
//! cargo run --release --example loadgen -- --workload w2 --store sqlite --runs 5
//! ```
//!
//! Prints one JSON line per run and a markdown table of medians.

use std::sync::Arc;
use std::time::{Duration, Instant};

use factum::{
    Aggregate, AtomicWrite, CodecError, Command, Event, EventRecord, Journal, MemoryJournal,
    MemorySnapshots, Repository, SnapshotPolicy, SnapshotRecord, SnapshotStore, Tags,
};
use serde::{Deserialize, Serialize};

// ---- The domain: Deposit { account_id, amount } -> Deposited { amount } --------------

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[derive(Debug)]
struct Deposit {
    account_id: String,
    amount: u64,
    request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

impl Command for Deposit {
    type Id = String;
    fn aggregate_id(&self) -> &String {
        &self.account_id
    }
    fn command_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
}

impl Event for Deposited {
    fn manifest(&self) -> &'static str {
        "Deposited"
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
            ("Deposited", 1) => Ok(serde_json::from_slice(payload)?),
            ("Deposited", v) => Err(CodecError::UnknownVersion {
                manifest: manifest.into(),
                version: v,
                current: 1,
            }),
            _ => Err(CodecError::UnknownManifest(manifest.into())),
        }
    }
}

impl Aggregate for Account {
    type Command = Deposit;
    type Event = Deposited;
    type Error = String;
    const NAME: &'static str = "account";
    const SNAPSHOT_VERSION: Option<u32> = Some(1);

    fn handle(&self, cmd: Deposit) -> Result<Vec<Deposited>, String> {
        if cmd.amount == 0 {
            return Err("zero deposit".into());
        }
        Ok(vec![Deposited { amount: cmd.amount }])
    }
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.amount;
    }
    fn encode_snapshot(&self) -> Result<serde_json::Value, CodecError> {
        Ok(serde_json::to_value(self)?)
    }
    fn decode_snapshot(value: serde_json::Value) -> Result<Self, CodecError> {
        Ok(serde_json::from_value(value)?)
    }
}

fn deposit(account: usize, request_id: Option<String>) -> Deposit {
    Deposit {
        account_id: format!("acc-{account}"),
        amount: 1,
        request_id,
    }
}

// ---- Workloads ------------------------------------------------------------------------

#[derive(Default)]
struct Figures {
    metrics: Vec<(&'static str, f64)>,
}

impl Figures {
    fn add(&mut self, name: &'static str, value: f64) {
        self.metrics.push((name, value));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

async fn w1(window: Option<usize>) -> Figures {
    let mut builder = Repository::<Account>::builder(MemoryJournal::new());
    if let Some(window) = window {
        builder = builder.dedupe_window(window);
    }
    let repo = builder.build();
    const N: usize = 100_000;
    let mut latencies = Vec::with_capacity(N);
    let start = Instant::now();
    for i in 0..N {
        let id = window.map(|_| format!("req-{i}"));
        let t = Instant::now();
        repo.send(deposit(0, id)).await.expect("deposit");
        latencies.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let mut f = Figures::default();
    f.add("cmd_per_s", N as f64 / elapsed.as_secs_f64());
    f.add("p50_us", percentile(&latencies, 0.50));
    f.add("p99_us", percentile(&latencies, 0.99));
    f
}

async fn w2(repo: Repository<Account>, tasks: usize) -> Figures {
    const AGGREGATES: usize = 10_000;
    const COMMANDS: usize = 200_000;
    let per_task = COMMANDS / tasks;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let repo = repo.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let account = (t + i * tasks) % AGGREGATES;
                    repo.send(deposit(account, None)).await.expect("deposit");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task");
    }
    let elapsed = start.elapsed();
    let mut f = Figures::default();
    f.add(
        "cmd_per_s",
        (per_task * tasks) as f64 / elapsed.as_secs_f64(),
    );
    f
}

/// Writes `n` events straight into the journal for `account`.
async fn fill(journal: &MemoryJournal, pid: &str, n: u64) {
    let pid: Arc<str> = Arc::from(pid);
    let writer: Arc<str> = Arc::from("loadgen");
    let payload = serde_json::to_vec(&Deposited { amount: 1 }).expect("encode");
    let mut next = 1;
    while next <= n {
        let events = (next..=n.min(next + 9_999))
            .map(|sequence_nr| EventRecord {
                persistence_id: pid.clone(),
                sequence_nr,
                manifest: "Deposited".into(),
                version: 1,
                payload: payload.clone(),
                tags: Tags::NONE,
                command_id: None,
                timestamp: 0,
                writer_id: writer.clone(),
                position: 0,
            })
            .collect::<Vec<_>>();
        next += events.len() as u64;
        let results = journal
            .write(vec![AtomicWrite {
                persistence_id: pid.clone(),
                events,
            }])
            .await;
        assert!(results.iter().all(Result::is_ok));
    }
}

async fn w3() -> Figures {
    const EVENTS: u64 = 100_000;
    let mut f = Figures::default();

    let journal = MemoryJournal::new();
    fill(&journal, "account-acc-0", EVENTS).await;
    let repo = Repository::<Account>::new(journal.clone());
    let start = Instant::now();
    repo.send(deposit(0, None)).await.expect("deposit");
    f.add("full_replay_ms", start.elapsed().as_secs_f64() * 1e3);

    // A snapshot every 1,000 events, the last at 100,000, then a 500-event tail.
    let snapshots = MemorySnapshots::new();
    let journal = MemoryJournal::new();
    fill(&journal, "account-acc-0", EVENTS + 500).await;
    let state = serde_json::json!({ "state": { "balance": EVENTS }, "dedupe": [] });
    for seq in (1_000..=EVENTS).step_by(1_000) {
        snapshots
            .save(SnapshotRecord {
                persistence_id: Arc::from("account-acc-0"),
                sequence_nr: seq,
                version: 1,
                payload: serde_json::to_vec(&state).expect("encode"),
                timestamp: 0,
            })
            .await
            .expect("save");
    }
    let repo = Repository::<Account>::builder(journal)
        .snapshots(snapshots, SnapshotPolicy::Every(1_000))
        .build();
    let start = Instant::now();
    let receipt = repo.send(deposit(0, None)).await.expect("deposit");
    f.add("snapshot_tail_ms", start.elapsed().as_secs_f64() * 1e3);
    assert_eq!(receipt.version, EVENTS + 501);
    f
}

fn peak_rss_kib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

fn rss_kib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

async fn m1(max_in_memory: Option<usize>) -> Figures {
    const AGGREGATES: usize = 100_000;
    // The journal's own memory is not the gateway's: measure it apart by a null journal.
    let mut builder = Repository::<Account>::builder(NullJournal);
    if let Some(max) = max_in_memory {
        builder = builder.max_in_memory(max);
    }
    let repo = builder.build();
    let before = rss_kib();
    for i in 0..AGGREGATES {
        repo.send(deposit(i, None)).await.expect("deposit");
    }
    let peak = peak_rss_kib();
    let mut f = Figures::default();
    f.add("in_memory", repo.in_memory() as f64);
    f.add("peak_rss_mib", peak / 1024.0);
    f.add(
        "bytes_per_resident",
        (peak - before) * 1024.0 / repo.in_memory() as f64,
    );
    f
}

/// A journal that accepts every write and stores nothing: isolates the gateway's memory.
struct NullJournal;

impl Journal for NullJournal {
    fn write(
        &self,
        batch: Vec<AtomicWrite>,
    ) -> factum::BoxFuture<'_, Vec<Result<(), factum::JournalError>>> {
        Box::pin(std::future::ready(batch.iter().map(|_| Ok(())).collect()))
    }
    fn read<'a>(
        &'a self,
        _: &'a str,
        _: u64,
        _: u64,
        _: usize,
    ) -> factum::BoxFuture<'a, Result<Vec<EventRecord>, factum::JournalError>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    fn highest_sequence_nr<'a>(
        &'a self,
        _: &'a str,
    ) -> factum::BoxFuture<'a, Result<u64, factum::JournalError>> {
        Box::pin(std::future::ready(Ok(0)))
    }
    fn delete_to<'a>(
        &'a self,
        _: &'a str,
        _: u64,
    ) -> factum::BoxFuture<'a, Result<(), factum::JournalError>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn read_all(
        &self,
        _: u64,
        _: usize,
    ) -> factum::BoxFuture<'_, Result<Vec<EventRecord>, factum::JournalError>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    fn read_tag<'a>(
        &'a self,
        _: &'a str,
        _: u64,
        _: usize,
    ) -> factum::BoxFuture<'a, Result<Vec<EventRecord>, factum::JournalError>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
}

// ---- Driver ---------------------------------------------------------------------------

struct Args {
    workload: String,
    store: String,
    runs: usize,
    tasks: usize,
    threads: usize,
}

fn args() -> Args {
    let mut args = Args {
        workload: "w1".into(),
        store: "memory".into(),
        runs: 5,
        tasks: 64,
        threads: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--workload" => args.workload = value,
            "--store" => args.store = value,
            "--runs" => args.runs = value.parse().unwrap_or(5),
            "--tasks" => args.tasks = value.parse().unwrap_or(64),
            "--threads" => args.threads = value.parse().unwrap_or(2),
            other => {
                eprintln!(
                    "unknown flag {other}; flags: --workload w1|w2|w3|w4|m1 --store memory --runs N --tasks N --threads N"
                );
                std::process::exit(2);
            }
        }
    }
    args
}

async fn run_once(args: &Args, variant: &str) -> Figures {
    match (args.workload.as_str(), args.store.as_str()) {
        ("w1", _) => w1(None).await,
        ("w4", _) => w1(Some(variant.parse().unwrap_or(1024))).await,
        ("w2", "memory") => w2(Repository::new(MemoryJournal::new()), args.tasks).await,
        ("w3", _) => w3().await,
        ("m1", _) => m1(variant.parse().ok()).await,
        (w, s) => {
            eprintln!("no workload {w} on store {s}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("runtime");
    let variants: Vec<String> = match args.workload.as_str() {
        "w4" => vec!["128".into(), "1024".into(), "4096".into()],
        "m1" => vec!["default".into(), "10000".into()],
        _ => vec!["-".into()],
    };
    let mut table = Vec::new();
    for variant in &variants {
        let mut runs: Vec<Figures> = Vec::new();
        // Memory figures are per process: one run only.
        let n = if args.workload == "m1" { 1 } else { args.runs };
        for run in 0..n {
            let figures = runtime.block_on(run_once(&args, variant));
            let fields: Vec<String> = figures
                .metrics
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v:.3}"))
                .collect();
            println!(
                "{{\"workload\":\"{}\",\"store\":\"{}\",\"variant\":\"{}\",\"run\":{},{}}}",
                args.workload,
                args.store,
                variant,
                run,
                fields.join(",")
            );
            runs.push(figures);
        }
        let names: Vec<&str> = runs[0].metrics.iter().map(|(k, _)| *k).collect();
        for (i, name) in names.iter().enumerate() {
            let mut values: Vec<f64> = runs.iter().map(|f| f.metrics[i].1).collect();
            values.sort_by(f64::total_cmp);
            table.push((variant.clone(), name.to_string(), values[values.len() / 2]));
        }
    }
    println!(
        "\n| workload | store | variant | metric | median of {} |",
        args.runs
    );
    println!("|---|---|---|---|---|");
    for (variant, name, value) in table {
        println!(
            "| {} | {} | {} | {} | {:.3} |",
            args.workload, args.store, variant, name, value
        );
    }
}
