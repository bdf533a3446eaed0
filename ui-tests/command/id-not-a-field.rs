use factum::prelude::*;

#[command(id = "id")]
pub struct Cmd {
    id: String,
}

fn main() {}
