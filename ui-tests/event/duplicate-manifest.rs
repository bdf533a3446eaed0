use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    Opened,
    #[event(rename = "Opened")]
    Reopened,
}

fn main() {}
