use factum::prelude::*;

#[command]
pub enum Cmd {
    #[command(id = id)]
    Open { id: String },
    Close { id: String },
}

fn main() {}
