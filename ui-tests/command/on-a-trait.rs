use factum::prelude::*;

#[command(id = id)]
pub trait Cmd {}

fn main() {}
