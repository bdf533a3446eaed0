use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    Happened { n: u64 },
}

#[command(id = id)]
#[derive(Debug)]
pub struct Cmd {
    id: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct State {
    n: u64,
}

#[aggregate]
impl State {
    fn handle(&self, cmd: Cmd) -> Result<Vec<Ev>, String> {
        Ok(vec![Ev::Happened { n: cmd.id.len() as u64 }])
    }
    fn apply(&self, event: &Ev) {
        let Ev::Happened { n } = event;
        let _ = n;
    }
}

fn main() {}
