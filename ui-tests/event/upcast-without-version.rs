use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    #[event(upcast(from = 1, with = lift))]
    Happened { n: u64 },
}

fn lift(v: serde_json::Value) -> serde_json::Value {
    v
}

fn main() {}
