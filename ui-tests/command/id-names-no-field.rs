use factum::prelude::*;

#[command(id = acount_id)]
pub struct Cmd {
    account_id: String,
    owner: String,
}

fn main() {}
