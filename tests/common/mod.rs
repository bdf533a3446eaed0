//! Domain types shared by the integration tests and the benchmark.
#![allow(dead_code, missing_docs)]

pub mod bank;
pub mod hand;
