//! Every accepted form of `#[event]`.
use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[event(tags = ["a", "b"], tags_with = dynamic)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Forms {
    Named { x: u8 },
    Tuple(u8, u8),
    Newtype(String),
    Unit,
    #[event(tags = ["c"], rename = "renamed", version = 3, upcast(from = 1, with = up), upcast(from = 2, with = up))]
    #[event()]
    Versioned {},
}

fn dynamic(_: &Forms) -> Vec<String> {
    Vec::new()
}

fn up(value: serde_json::Value) -> serde_json::Value {
    value
}

#[event(rename = "named-struct", version = 2, upcast(from = 1, with = up), tags = ["s"])]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedStruct {
    pub x: u8,
}

#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TupleStruct(pub u8);

#[event(tags_with = unit_tags)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitStruct;

fn unit_tags(_: &UnitStruct) -> Vec<String> {
    vec!["unit".to_owned()]
}

fn main() {
    assert_eq!(Forms::Versioned {}.manifest(), "renamed");
    assert_eq!(NamedStruct { x: 1 }.version(), 2);
    assert_eq!(TupleStruct(1).manifest(), "TupleStruct");
    assert!(UnitStruct.tags().contains("unit"));
}
