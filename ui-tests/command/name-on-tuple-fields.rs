use factum::prelude::*;

#[command(id = id)]
pub struct Cmd(String);

fn main() {}
