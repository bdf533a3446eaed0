use factum::prelude::*;

#[command(id = id)]
pub enum Cmd {
    #[command(crate = factum)]
    Open { id: String },
}

fn main() {}
