//! `crate = path`: a crate that re-exports factum under another path.
mod reexport {
    pub use factum as inner;
}

use factum::{aggregate, command, event};
use serde::{Deserialize, Serialize};

#[event(crate = crate::reexport::inner)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    Happened { n: u64 },
}

#[command(id = 0, crate = crate::reexport::inner)]
pub struct Cmd(pub String);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct State;

#[aggregate(crate = crate::reexport::inner, snapshot)]
impl State {
    fn handle(&self, _: Cmd) -> Result<Ev, String> {
        Ok(Ev::Happened { n: 1 })
    }

    fn apply(&mut self, _: &Ev) {}
}

fn main() {
    use factum::Aggregate;
    assert_eq!(State::NAME, "state");
}
