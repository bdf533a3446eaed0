use factum::prelude::*;

#[command(id = id, version = version)]
pub struct Cmd {
    id: String,
    version: u64,
}

fn main() {}
