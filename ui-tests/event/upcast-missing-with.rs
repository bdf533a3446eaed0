use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    #[event(version = 2, upcast(from = 1))]
    Happened { n: u64 },
}

fn main() {}
