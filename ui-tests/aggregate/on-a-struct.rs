use factum::prelude::*;

#[aggregate]
#[derive(Debug, Default, Clone)]
pub struct State {
    n: u64,
}

fn main() {}
