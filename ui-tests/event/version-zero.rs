use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    #[event(version = 0)]
    Happened,
}

fn main() {}
