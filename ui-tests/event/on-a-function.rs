use factum::prelude::*;

#[event]
fn happened() {}

fn main() {}
