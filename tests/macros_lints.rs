//! The generated code is lint-clean: this crate denies warnings, `clippy::all` and
//! `clippy::pedantic`, and uses every macro form (`cargo clippy --all-targets` checks it).
#![deny(warnings, clippy::all, clippy::pedantic)]
#![allow(missing_docs)]

mod common;

use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event(tags = ["t"], tags_with = dynamic)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Forms {
    Named {
        x: u8,
    },
    Tuple(u8, String),
    Unit,
    #[event(rename = "v", version = 3, upcast(from = 1, with = up), upcast(from = 2, with = up))]
    Versioned {},
}

fn dynamic(_: &Forms) -> Vec<String> {
    Vec::new()
}

#[allow(clippy::needless_pass_by_value)]
fn up(value: serde_json::Value) -> serde_json::Value {
    value
}

#[event(version = 2, upcast(from = 1, with = up))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Single(pub u8);

#[command(id = 0, expected_version = 1, command_id = 2)]
#[derive(Debug)]
pub struct Tuple(pub String, pub Option<u64>, pub Option<String>);

#[command(id = id)]
#[derive(Debug, Clone)]
pub enum Many {
    A {
        id: String,
    },
    #[command(command_id = request, expected_version = version)]
    B {
        id: String,
        request: &'static str,
        version: u64,
    },
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct State {
    n: u64,
}

#[aggregate(snapshot(version = 2))]
impl State {
    #[allow(clippy::unnecessary_wraps)]
    fn handle(&self, _: Many) -> Result<Option<Forms>, String> {
        Ok((self.n == 0).then_some(Forms::Unit))
    }

    fn apply(&mut self, _: &Forms) {
        self.n += 1;
    }
}

#[test]
fn compiles_without_lints() {
    use factum::Aggregate;
    assert_eq!(State::NAME, "state");
    assert_eq!(Single(1).version(), 2);
    assert!(Tuple(String::new(), None, None).retry_copy().is_some());
}
