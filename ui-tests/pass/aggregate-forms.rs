//! Every accepted form of `#[aggregate]`.
use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    Happened,
}

#[command(id = 0)]
pub struct Cmd(pub String);

#[derive(Debug)]
pub struct Oops;

impl std::fmt::Display for Oops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("oops")
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Snap {
    n: u64,
}

#[aggregate(name = "snapped", snapshot(version = 3))]
impl Snap {
    pub fn handle(&self, _: Cmd) -> Result<[Ev; 1], Oops> {
        Ok([Ev::Happened])
    }

    pub fn apply(&mut self, _: &Ev) {
        self.n += 1;
    }

    fn invariants(&self) -> Result<(), Oops> {
        if self.n > 10 { Err(Oops) } else { Ok(()) }
    }

    /// Hand-written methods stay.
    pub fn count(&self) -> u64 {
        self.n
    }
}

#[derive(Debug, Clone)]
pub struct Generic<T> {
    items: Vec<T>,
}

impl<T> Default for Generic<T> {
    fn default() -> Self {
        Generic { items: Vec::new() }
    }
}

#[aggregate]
impl<T: Default + Clone + Send + Sync + 'static> Generic<T> {
    fn handle(&self, _: Cmd) -> Result<Option<Ev>, Oops> {
        Ok(None)
    }

    fn apply(&mut self, _: &Ev) {
        self.items.push(T::default());
    }
}

fn main() {
    assert_eq!(Snap::NAME, "snapped");
    assert_eq!(Snap::SNAPSHOT_VERSION, Some(3));
    assert_eq!(Snap::default().count(), 0);
    assert_eq!(<Generic<u8>>::NAME, "generic");
}
