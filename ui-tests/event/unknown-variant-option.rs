use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    #[event(tags_with = dynamic)]
    Happened,
}

fn main() {}
