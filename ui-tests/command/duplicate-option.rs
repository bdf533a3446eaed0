use factum::prelude::*;

#[command(id = id, id = other)]
pub struct Cmd {
    id: String,
    other: String,
}

fn main() {}
