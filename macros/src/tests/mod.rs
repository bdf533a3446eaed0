//! Expansion snapshots: what each macro generates for representative inputs, formatted
//! with prettyplease and compared with the snapshots in `snapshots/` (insta). Review a
//! changed snapshot as you would review hand-written code.

use proc_macro2::TokenStream;
use quote::quote;

fn pretty(tokens: TokenStream) -> String {
    let file = syn::parse2::<syn::File>(tokens).expect("the expansion is valid Rust");
    prettyplease::unparse(&file)
}

#[test]
fn event_enum_of_design_md() {
    let expanded = crate::event_impl(
        quote!(tags = ["account"]),
        quote! {
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            pub enum AccountEvent {
                Opened { owner: String },
                #[event(tags = ["large"], version = 2, upcast(from = 1, with = deposited_v1_to_v2))]
                Deposited { amount: u64, currency: String },
                #[event(rename = "money-withdrawn")]
                Withdrawn { amount: u64 },
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn event_enum_of_every_variant_form() {
    let expanded = crate::event_impl(
        quote!(tags_with = shape_tags),
        quote! {
            #[derive(Debug, Clone, Serialize, Deserialize)]
            pub enum Shape {
                Tuple(u8, String),
                Unit,
                #[event(version = 3, upcast(from = 1, with = v1_to_v2), upcast(from = 2, with = v2_to_v3))]
                Chained { x: i64 },
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn event_struct() {
    let expanded = crate::event_impl(
        quote!(rename = "point-moved", tags = ["point"]),
        quote! {
            #[derive(Debug, Clone, Serialize, Deserialize)]
            pub struct PointMoved { pub x: i64, pub y: i64 }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn command_enum_of_design_md() {
    let expanded = crate::command_impl(
        quote!(id = account_id),
        quote! {
            #[derive(Debug)]
            pub enum AccountCommand {
                Open { account_id: AccountId, owner: String },
                #[command(expected_version = version, command_id = request_id)]
                Deposit { account_id: AccountId, amount: u64, version: Option<u64>, request_id: String },
                #[command(id = from)]
                Transfer { from: AccountId, to: AccountId, amount: u64 },
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn command_tuple_struct() {
    let expanded = crate::command_impl(
        quote!(id = 0, expected_version = 1, command_id = 2),
        quote! {
            pub struct Rename(pub ItemId, pub u64, pub Option<String>);
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn aggregate_of_design_md() {
    let expanded = crate::aggregate_impl(
        quote!(name = "account", snapshot),
        quote! {
            impl Account {
                fn handle(&self, cmd: AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
                    todo!()
                }
                fn apply(&mut self, event: &AccountEvent) {}
                fn invariants(&self) -> Result<(), AccountError> {
                    Ok(())
                }
                pub fn balance(&self) -> u64 {
                    self.balance
                }
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn aggregate_returning_one_event() {
    let expanded = crate::aggregate_impl(
        quote!(),
        quote! {
            impl<T: Clone> ShoppingCart<T> {
                fn handle(&self, cmd: CartCommand) -> Result<CartEvent, CartError> {
                    todo!()
                }
                fn apply(&mut self, event: &CartEvent) {}
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn fallback_keeps_the_item() {
    let expanded = crate::command_impl(
        quote!(id = id, retry = true),
        quote! {
            pub struct Ping { id: String }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}
