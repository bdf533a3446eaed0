use factum::prelude::*;

#[command(id = id)]
pub enum Cmd {
    Open { id: String },
    Ping,
}

fn main() {}
