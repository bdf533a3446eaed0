use factum::prelude::*;

#[command(id = id, expected_version = version)]
pub struct Cmd {
    id: String,
    version: i32,
}

fn main() {}
