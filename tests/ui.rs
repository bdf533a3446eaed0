//! Compile-time diagnostics of the macros: `ui-tests/{event,command,aggregate}/*.rs` must
//! fail with exactly their `.stderr`; `ui-tests/pass/*.rs` must compile and run.
//!
//! Compiler output changes between releases, so the snapshots are pinned to rustc 1.95:
//! on another version the test prints why it skips. Regenerate the snapshots with
//! `TRYBUILD=overwrite cargo test --test ui`.
#![allow(missing_docs)]

use std::process::Command;

const PINNED: &str = "rustc 1.95.";

#[test]
fn ui() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    if !version.starts_with(PINNED) {
        eprintln!(
            "skipping ui tests: their snapshots are for {PINNED}x, this is `{}`",
            version.trim()
        );
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui-tests/event/*.rs");
    cases.compile_fail("ui-tests/command/*.rs");
    cases.compile_fail("ui-tests/aggregate/*.rs");
    cases.pass("ui-tests/pass/*.rs");
}
