use factum::prelude::*;

#[command(id = 2)]
pub struct Cmd(String, u64);

fn main() {}
