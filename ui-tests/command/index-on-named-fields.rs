use factum::prelude::*;

#[command(id = 0)]
pub struct Cmd {
    id: String,
}

fn main() {}
