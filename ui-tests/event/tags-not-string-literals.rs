use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event(tags = [account, "large"])]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    Happened,
}

fn main() {}
