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
    AtomicWrite, Command, EventRecord, Journal, MemoryJournal, MemorySnapshots, Repository,
    SnapshotPolicy, SnapshotRecord, SnapshotStore, Tags,
};

#[path = "../benches/support/domain.rs"]
mod domain;

use domain::{Bank, generated, hand};

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

async fn w1<A: Bank>(window: Option<usize>) -> Figures {
    let mut builder = Repository::<A>::builder(MemoryJournal::new());
    if let Some(window) = window {
        builder = builder.dedupe_window(window);
    }
    let repo = builder.build();
    const N: usize = 100_000;
    let mut latencies = Vec::with_capacity(N);
    // The client's request ids exist before the clock starts: W4 measures what dedupe
    // costs the gateway, not what `format!` costs the client.
    let ids: Vec<Option<String>> = (0..N).map(|i| window.map(|_| format!("req-{i}"))).collect();
    let start = Instant::now();
    for id in ids {
        let t = Instant::now();
        repo.send(A::deposit(0, id)).await.expect("deposit");
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

const AGGREGATES: usize = 10_000;

/// W2: `commands` deposits round-robin over 10,000 aggregates from `tasks` client tasks,
/// spread over the given repositories (several for several nodes).
async fn w2<A: Bank>(repos: &[Repository<A>], tasks: usize, commands: usize) -> Figures {
    let per_task = (commands / tasks).max(1);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let repo = repos[t % repos.len()].clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let account = (t + i * tasks) % AGGREGATES;
                    repo.send(A::deposit(account, None)).await.expect("deposit");
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
    let payload = br#"{"amount":1}"#.to_vec();
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

async fn w3<A: Bank>() -> Figures {
    const EVENTS: u64 = 100_000;
    let mut f = Figures::default();

    let journal = MemoryJournal::new();
    fill(&journal, "account-acc-0", EVENTS).await;
    let repo = Repository::<A>::new(journal.clone());
    let start = Instant::now();
    repo.send(A::deposit(0, None)).await.expect("deposit");
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
    let repo = Repository::<A>::builder(journal)
        .snapshots(snapshots, SnapshotPolicy::Every(1_000))
        .build();
    let start = Instant::now();
    let receipt = repo.send(A::deposit(0, None)).await.expect("deposit");
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

async fn m1<A: Bank>(max_in_memory: Option<usize>) -> Figures {
    const AGGREGATES: usize = 100_000;
    // The journal's own memory is not the gateway's: measure it apart by a null journal.
    let mut builder = Repository::<A>::builder(NullJournal);
    if let Some(max) = max_in_memory {
        builder = builder.max_in_memory(max);
    }
    let repo = builder.build();
    let before = rss_kib();
    let start = Instant::now();
    for i in 0..AGGREGATES {
        repo.send(A::deposit(i, None)).await.expect("deposit");
    }
    // Each command is its aggregate's first: with a bound, each evicts one.
    let elapsed = start.elapsed();
    let peak = peak_rss_kib();
    let mut f = Figures::default();
    f.add("cmd_per_s", AGGREGATES as f64 / elapsed.as_secs_f64());
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

/// A fresh SQLite file, `target/loadgen/{name}.db`.
fn bench_file(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/loadgen");
    std::fs::create_dir_all(&dir).expect("create target/loadgen");
    let path = dir.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// D1: W2 on SQLite, durable (each commit's log synced before its answer); `grouped = false`
/// commits and syncs every command alone.
async fn d1<A: Bank>(tasks: usize, commands: usize, grouped: bool) -> Figures {
    let journal = factum::SqliteJournal::builder(bench_file("d1"))
        .group_commit(grouped)
        .open()
        .await
        .expect("open SQLite");
    let repo = Repository::<A>::builder(journal)
        .group_commit(grouped)
        .build();
    w2(&[repo], tasks, commands).await
}

/// A restart: 10,000 aggregates of one event each in an SQLite file, reopened, and every
/// one recovered by a new repository from `tasks` client tasks at once (each
/// `Repository::state` call replays its aggregate from the journal): aggregates/s.
async fn cold<A: Bank>(tasks: usize) -> Figures {
    let path = bench_file("cold");
    {
        let journal = factum::SqliteJournal::open(&path)
            .await
            .expect("open SQLite");
        let repo = Repository::<A>::new(journal);
        let ids = (0..AGGREGATES).map(|i| A::deposit(i, None));
        let sends = ids.map(|deposit| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.send(deposit).await.expect("deposit") })
        });
        for send in sends.collect::<Vec<_>>() {
            send.await.expect("task");
        }
    }
    let journal = factum::SqliteJournal::open(&path)
        .await
        .expect("reopen SQLite");
    let repo = Repository::<A>::new(journal);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let repo = repo.clone();
            tokio::spawn(async move {
                for account in (t..AGGREGATES).step_by(tasks) {
                    let id = A::deposit(account, None).aggregate_id().clone();
                    let (_, version) = repo.state(&id).await.expect("recover");
                    assert_eq!(version, 1);
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
        "aggregates_per_s",
        AGGREGATES as f64 / elapsed.as_secs_f64(),
    );
    f
}

/// What one SQLite transaction costs by its size: the journal alone, `commits` calls of
/// `size` one-event parts each (one transaction each), over 10,000 streams round-robin
/// as in D1, after 50,000 events written 64 to a transaction: microseconds per commit.
async fn commit_cost(size: usize, commits: usize) -> Figures {
    const FILL: usize = 50_048;
    let journal = factum::SqliteJournal::open(bench_file("commit"))
        .await
        .expect("open SQLite");
    let pids: Vec<Arc<str>> = (0..AGGREGATES)
        .map(|i| Arc::from(format!("account-acc-{i}")))
        .collect();
    let writer: Arc<str> = Arc::from("loadgen");
    let mut highest = vec![0; AGGREGATES];
    let mut next = 0;
    let mut write = |parts: usize| {
        let batch = (0..parts)
            .map(|_| {
                let account = next % AGGREGATES;
                next += 1;
                highest[account] += 1;
                let pid = Arc::clone(&pids[account]);
                AtomicWrite {
                    persistence_id: Arc::clone(&pid),
                    events: vec![EventRecord {
                        persistence_id: pid,
                        sequence_nr: highest[account],
                        manifest: "Deposited".into(),
                        version: 1,
                        payload: br#"{"amount":1}"#.to_vec(),
                        tags: Tags::fixed(&["account"]),
                        command_id: None,
                        timestamp: 0,
                        writer_id: Arc::clone(&writer),
                        position: 0,
                    }],
                }
            })
            .collect::<Vec<_>>();
        journal.write(batch)
    };
    for _ in 0..FILL / 64 {
        assert!(write(64).await.iter().all(Result::is_ok));
    }
    let start = Instant::now();
    for _ in 0..commits {
        assert!(write(size).await.iter().all(Result::is_ok));
    }
    let elapsed = start.elapsed();
    let mut f = Figures::default();
    f.add(
        "us_per_commit",
        elapsed.as_secs_f64() * 1e6 / commits as f64,
    );
    f.add(
        "events_per_s",
        (size * commits) as f64 / elapsed.as_secs_f64(),
    );
    f
}

/// D2: W2 from two repositories (two nodes) on one Postgres database; then checks that
/// every acknowledged command is in the journal exactly once.
#[cfg(feature = "postgres")]
async fn d2<A: Bank>(tasks: usize, commands: usize, reader: bool) -> Figures {
    let url = std::env::var("FACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("factum_loadgen_{}", std::process::id());
    let journal = || async {
        factum::PostgresJournal::builder(&url)
            .schema(&schema)
            .pool_size(8)
            .connect()
            .await
            .expect("connect to Postgres")
    };
    let nodes = [
        Repository::<A>::new(journal().await),
        Repository::<A>::new(journal().await),
    ];
    // With `reader`, a projection pages through `read_all` as fast as it can during the
    // run, then to the end: it must get every event, none skipped.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = if reader { Some(journal().await) } else { None };
    let projection = reader.map(|reader| {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let (mut after, mut reads, mut events) = (0, 0u64, 0u64);
            loop {
                let done = stop.load(std::sync::atomic::Ordering::Relaxed);
                let page = reader.read_all(after, 1_000).await.expect("read_all");
                reads += 1;
                events += page.len() as u64;
                match page.last() {
                    Some(last) => after = last.position,
                    None if done => return (reads, events),
                    None => tokio::task::yield_now().await,
                }
            }
        })
    });
    let mut figures = w2(&nodes, tasks, commands).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = ((commands / tasks).max(1) * tasks) as u64;
    if let Some(projection) = projection {
        let (reads, events) = projection.await.expect("projection");
        assert_eq!(events, sent, "the projection skipped or doubled events");
        figures.add("projection_reads", reads as f64);
    }
    // Every acknowledged deposit is there once: balances add up to the commands sent.
    let check = journal().await;
    let mut events = 0u64;
    let mut after = 0;
    loop {
        let page = check.read_all(after, 10_000).await.expect("read_all");
        let Some(last) = page.last() else { break };
        after = last.position;
        events += page.len() as u64;
    }
    assert_eq!(events, sent, "lost or doubled events");
    figures.add("events_checked", events as f64);
    drop_schema(&url, &schema).await;
    figures
}

#[cfg(feature = "postgres")]
async fn drop_schema(url: &str, schema: &str) {
    let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return;
    };
    tokio::spawn(connection);
    let _ = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
}

#[cfg(not(feature = "postgres"))]
async fn d2<A: Bank>(_: usize, _: usize, _: bool) -> Figures {
    eprintln!("D2 needs the `postgres` feature: --features postgres");
    std::process::exit(2);
}

/// D1 throughput against the number of client tasks, as an SVG line chart.
fn plot(points: &[(usize, f64)], baseline: &[(usize, f64)], path: &std::path::Path) {
    let (w, h, left, bottom) = (640.0, 400.0, 70.0, 50.0);
    let max = points
        .iter()
        .chain(baseline)
        .map(|p| p.1)
        .fold(1.0, f64::max)
        * 1.1;
    let x = |i: usize| left + (w - left - 20.0) * i as f64 / (points.len() - 1).max(1) as f64;
    let y = |v: f64| (h - bottom) - (h - bottom - 20.0) * v / max;
    let line = |series: &[(usize, f64)]| {
        series
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.1)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"16\" text-anchor=\"middle\">D1: SQLite (durable), W2 commands/s by client tasks</text>\n\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"20\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n",
        w / 2.0,
        h - bottom,
        w - 20.0,
        h - bottom,
        h - bottom
    );
    for (i, p) in points.iter().enumerate() {
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            x(i),
            h - bottom + 18.0,
            p.0
        );
    }
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        svg += &format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}k</text>\n",
            left - 6.0,
            y(v) + 4.0,
            v / 1000.0
        );
    }
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">client tasks</text>\n\
         <polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>\n\
         <polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"5,4\" points=\"{}\"/>\n\
         <text x=\"{}\" y=\"40\" fill=\"#1f77b4\">group commit</text>\n\
         <text x=\"{}\" y=\"56\" fill=\"#d62728\">one commit per command (baseline)</text>\n</svg>\n",
        w / 2.0,
        h - 10.0,
        line(points),
        line(baseline),
        left + 10.0,
        left + 10.0
    );
    std::fs::write(path, svg).expect("write the plot");
}

// ---- Driver ---------------------------------------------------------------------------

struct Args {
    workload: String,
    store: String,
    runs: usize,
    tasks: usize,
    threads: usize,
    commands: usize,
    domain: String,
    variant: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        workload: "w1".into(),
        store: "memory".into(),
        runs: 5,
        tasks: 64,
        threads: 2,
        commands: 200_000,
        domain: "macro".into(),
        variant: None,
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
            "--commands" => args.commands = value.parse().unwrap_or(200_000),
            "--domain" => args.domain = value,
            "--variant" => args.variant = Some(value),
            other => {
                eprintln!(
                    "unknown flag {other}; flags: --workload w1|w2|w3|w4|m1|d1|d1-plot|d2|commit|cold \
                     --store memory|null|sqlite|postgres --runs N --tasks N --threads N --commands N --domain macro|hand|both --variant V"
                );
                std::process::exit(2);
            }
        }
    }
    args
}

/// D1 at 1, 4, 16, 64 and 256 client tasks, with and without group commit; writes
/// `benches/results/d1.svg` (the plot in BENCHMARKS.md).
fn d1_plot(runtime: &tokio::runtime::Runtime, args: &Args) {
    let mut grouped = Vec::new();
    let mut baseline = Vec::new();
    for tasks in [1, 4, 16, 64, 256] {
        for (grouping, series) in [(true, &mut grouped), (false, &mut baseline)] {
            let commands = args.commands;
            let mut rates: Vec<f64> = (0..args.runs)
                .map(|_| {
                    runtime
                        .block_on(d1::<generated::Account>(
                            tasks,
                            commands.max(tasks),
                            grouping,
                        ))
                        .metrics[0]
                        .1
                })
                .collect();
            rates.sort_by(f64::total_cmp);
            let median = rates[rates.len() / 2];
            println!(
                "{{\"workload\":\"d1\",\"store\":\"sqlite\",\"tasks\":{tasks},\"group_commit\":{grouping},\"cmd_per_s\":{median:.1}}}"
            );
            series.push((tasks, median));
        }
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results/d1.svg");
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create benches/results");
    plot(&grouped, &baseline, &path);
    println!("\n| tasks | group commit cmd/s | one commit per command cmd/s | ratio |");
    println!("|---|---|---|---|");
    for ((tasks, g), (_, b)) in grouped.iter().zip(&baseline) {
        println!("| {tasks} | {g:.0} | {b:.0} | {:.1}x |", g / b);
    }
    println!("\nplot: {}", path.display());
}

async fn run_once<A: Bank>(args: &Args, variant: &str) -> Figures {
    match (args.workload.as_str(), args.store.as_str()) {
        ("w1", _) => w1::<A>(None).await,
        // W4 runs W1 itself first ("none": no command ids), the baseline of its ratios.
        ("w4", _) => w1::<A>(variant.parse().ok()).await,
        ("w2", "memory") => {
            let repo = Repository::<A>::new(MemoryJournal::new());
            w2(&[repo], args.tasks, args.commands).await
        }
        ("w2", "null") => {
            // The gateway alone: a journal that stores nothing.
            let repo = Repository::<A>::new(NullJournal);
            w2(&[repo], args.tasks, args.commands).await
        }
        ("w2" | "d1", "sqlite") => {
            // Both variants run the same commands, so that they compare (the baseline is
            // slow: pass a smaller --commands, e.g. 50000).
            d1::<A>(args.tasks, args.commands, variant != "no-group-commit").await
        }
        ("w2" | "d2", "postgres") => d2::<A>(args.tasks, args.commands, variant == "reader").await,
        ("cold", "sqlite") => cold::<A>(args.tasks).await,
        ("commit", "sqlite") => {
            let size = variant.parse().unwrap_or(32);
            commit_cost(size, (args.commands / size).clamp(200, 2_000)).await
        }
        ("w3", _) => w3::<A>().await,
        ("m1", _) => m1::<A>(variant.parse().ok()).await,
        (w, s) => {
            eprintln!("no workload {w} on store {s}");
            std::process::exit(2);
        }
    }
}

/// M1 measures a process's peak memory: each variant runs in a process of its own.
fn m1_in_children(args: &Args) {
    for variant in ["default", "10000"] {
        let status = std::process::Command::new(std::env::current_exe().expect("current exe"))
            .args([
                "--workload",
                "m1",
                "--variant",
                variant,
                "--domain",
                &args.domain,
            ])
            .status()
            .expect("run the M1 child");
        assert!(status.success(), "M1 child failed");
    }
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("runtime");
    if args.workload == "d1-plot" {
        return d1_plot(&runtime, &args);
    }
    if args.workload == "m1" && args.variant.is_none() {
        return m1_in_children(&args);
    }
    let variants: Vec<String> = match (args.workload.as_str(), &args.variant) {
        (_, Some(variant)) => variant.split(',').map(str::to_owned).collect(),
        ("d1", None) => vec!["group-commit".into(), "no-group-commit".into()],
        ("w4", None) => vec!["none".into(), "128".into(), "1024".into(), "4096".into()],
        ("commit", None) => ["1", "2", "8", "32", "64", "128"]
            .map(String::from)
            .to_vec(),
        _ => vec!["-".into()],
    };
    let domains: Vec<&str> = match args.domain.as_str() {
        "both" => vec!["macro", "hand"],
        one => vec![one],
    };
    let pairs: Vec<(&String, &str)> = variants
        .iter()
        .flat_map(|v| domains.iter().map(move |d| (v, *d)))
        .collect();
    let run_pair = |variant: &str, domain: &str| match domain {
        "hand" => runtime.block_on(run_once::<hand::Account>(&args, variant)),
        _ => runtime.block_on(run_once::<generated::Account>(&args, variant)),
    };
    // Memory figures are per process: one run only.
    let n = if args.workload == "m1" { 1 } else { args.runs };
    // In-memory workloads get one unreported warm-up round, so that the first variant
    // does not alone pay for the process's first page faults.
    if args.store == "memory" && args.workload != "m1" {
        for (variant, domain) in &pairs {
            drop(run_pair(variant, domain));
        }
    }
    // Rounds run every variant once, in turn, so that a machine whose speed drifts
    // between runs shifts all variants alike and the per-round ratios stay comparable.
    let mut runs: Vec<Vec<Figures>> = pairs.iter().map(|_| Vec::new()).collect();
    for run in 0..n {
        // Each round starts one variant later, so that no variant always runs right after
        // the same neighbour (whose leftover heap changes what the next run pays).
        for k in 0..pairs.len() {
            let i = (k + run) % pairs.len();
            let (variant, domain) = pairs[i];
            let figures = run_pair(variant, domain);
            let fields: Vec<String> = figures
                .metrics
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v:.3}"))
                .collect();
            println!(
                "{{\"workload\":\"{}\",\"store\":\"{}\",\"domain\":\"{domain}\",\"variant\":\"{}\",\"run\":{},{}}}",
                args.workload,
                args.store,
                variant,
                run,
                fields.join(",")
            );
            runs[i].push(figures);
        }
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!(
        "\n| workload | store | variant | metric | median of {n} | ratio to the first variant (median of per-round ratios) |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, (variant, domain)) in pairs.iter().enumerate() {
        for (m, (name, _)) in runs[i][0].metrics.iter().enumerate() {
            let value = median(runs[i].iter().map(|f| f.metrics[m].1).collect());
            let ratio = median(
                runs[i]
                    .iter()
                    .zip(&runs[0])
                    .map(|(f, base)| f.metrics[m].1 / base.metrics[m].1)
                    .collect(),
            );
            println!(
                "| {} | {} | {domain} {variant} | {name} | {value:.3} | {ratio:.3} |",
                args.workload, args.store
            );
        }
    }
}
