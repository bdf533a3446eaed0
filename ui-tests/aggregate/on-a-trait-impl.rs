use factum::prelude::*;

#[derive(Debug, Default, Clone)]
pub struct State {
    n: u64,
}

#[aggregate]
impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.n)
    }
}

fn main() {}
