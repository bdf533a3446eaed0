//! Every accepted form of `#[command]`.
use factum::prelude::*;

#[command(id = id, expected_version = version, command_id = request)]
pub struct Named {
    pub id: u64,
    pub version: Option<u64>,
    pub request: Option<String>,
}

#[command(id = 0, expected_version = 1, command_id = 2)]
pub struct Tuple(pub String, pub u64, pub &'static str);

#[command(id = id, command_id = request)]
#[derive(Clone)]
pub enum Enum {
    Default { id: String, request: String },
    #[command(id = 0, command_id = 1)]
    Tuple(String, Box<str>),
    #[command(expected_version = version)]
    #[command(command_id = other)]
    Both { id: String, version: u64, other: std::sync::Arc<str> },
}

#[command(id = id)]
pub struct Generic<T: Send + 'static> {
    pub id: String,
    pub payload: T,
}

fn main() {
    let named = Named { id: 1, version: Some(2), request: None };
    assert_eq!((named.expected_version(), named.command_id()), (Some(2), None));
    assert_eq!(Tuple("t".into(), 1, "r").command_id(), Some("r"));
    assert!(Enum::Tuple("x".into(), "y".into()).retry_copy().is_some());
    let generic = Generic { id: "g".into(), payload: 1u8 };
    assert_eq!(generic.aggregate_id(), "g");
    let _ = generic.payload;
}
