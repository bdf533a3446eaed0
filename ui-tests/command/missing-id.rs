use factum::prelude::*;

#[command]
pub struct Cmd {
    id: String,
}

fn main() {}
