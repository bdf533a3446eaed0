use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event(tags = "account")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    Happened,
}

fn main() {}
