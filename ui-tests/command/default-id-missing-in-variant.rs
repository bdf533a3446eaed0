use factum::prelude::*;

#[command(id = account_id)]
pub enum Cmd {
    Open { account_id: String },
    Transfer { from: String, to: String },
}

fn main() {}
