use factum::prelude::*;

#[command(id = id)]
pub enum Cmd {
    Open { id: String },
    Close { id: u64 },
}

fn main() {}
