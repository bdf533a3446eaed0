use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    #[event(rename = opened)]
    Opened,
}

fn main() {}
