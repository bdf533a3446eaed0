use factum::prelude::*;

#[command(id = id, command_id = request)]
pub struct Cmd {
    id: String,
    request: Option<u64>,
}

fn main() {}
