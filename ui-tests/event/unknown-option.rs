use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event(tag = ["account"])]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    Happened,
}

fn main() {}
