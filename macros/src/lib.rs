//! Procedural macros of factum: `#[aggregate]`, `#[command]` and `#[event]`.
//!
//! Use them through the `factum` crate (`use factum::prelude::*;`); this crate is an
//! implementation detail. Each macro runs the same pipeline: parse the item and our
//! options into a model (`model.rs`, `attr.rs`), check it (`check.rs`), then generate the
//! trait impl (`expand/`) — or, on any mistake, emit the item with the errors and a
//! stand-in impl (`fallback.rs`).

mod attr;
mod check;
mod ctxt;
mod expand;
mod fallback;
mod model;

#[cfg(test)]
mod tests;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{ToTokens, quote};

use crate::ctxt::Ctxt;
use crate::model::{Aggregate, Command, CommandItem, Event, EventItem};

/// Makes an enum (one event kind per variant) or a struct an event: generates
/// `impl factum::Event` with a manifest, a version, tags and a serde_json codec.
///
/// ```ignore
/// use factum::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[event(tags = ["account"])]
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub enum AccountEvent {
///     Opened { owner: String },
///     #[event(tags = ["large"], version = 2, upcast(from = 1, with = deposited_v1_to_v2))]
///     Deposited { amount: u64, currency: String },
///     #[event(rename = "money-withdrawn")]
///     Withdrawn { amount: u64 },
/// }
///
/// fn deposited_v1_to_v2(mut v1: serde_json::Value) -> serde_json::Value {
///     v1["currency"] = "EUR".into();
///     v1
/// }
/// ```
///
/// On the type: `tags = ["..", ..]`, `tags_with = path` (a `fn(&Self) -> Vec<String>`),
/// `crate = path`. On a variant (or on a struct): `tags`, `rename = ".."`, `version = N`
/// and any number of `upcast(from = N, with = path)`, each a
/// `fn(serde_json::Value) -> serde_json::Value` lifting version N to N + 1.
#[proc_macro_attribute]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    event_impl(args.into(), input.into()).into()
}

/// Makes a struct or an enum a command: generates `impl factum::Command`.
///
/// ```ignore
/// use factum::prelude::*;
///
/// #[command(id = account_id)] // the default for every variant
/// #[derive(Debug)]
/// pub enum AccountCommand {
///     Open { account_id: AccountId, owner: String },
///     #[command(expected_version = version, command_id = request_id)]
///     Deposit { account_id: AccountId, amount: u64, version: Option<u64>, request_id: String },
///     #[command(id = from)]
///     Transfer { from: AccountId, to: AccountId, amount: u64 },
/// }
/// ```
///
/// Options (each names a field, or a tuple index like `id = 0`): `id` (required), the
/// aggregate id; `expected_version`, a `u64` or `Option<u64>`; `command_id`, a string
/// (`String`, `&str`, any `AsRef<str>`, or an `Option` of one). On an enum they may stand
/// on the type, as defaults, and on variants. Also `crate = path` on the type.
#[proc_macro_attribute]
pub fn command(args: TokenStream, input: TokenStream) -> TokenStream {
    command_impl(args.into(), input.into()).into()
}

/// Makes the state type of an inherent impl block an aggregate: generates
/// `impl factum::Aggregate` from its `handle`, `apply` and optional `invariants`.
///
/// ```ignore
/// use factum::prelude::*;
///
/// #[aggregate(name = "account", snapshot)]
/// impl Account {
///     fn handle(&self, cmd: AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
///         todo!()
///     }
///     fn apply(&mut self, event: &AccountEvent) {}
/// }
/// ```
///
/// `handle` may also return `Result<Event, E>`, `Result<Option<Event>, E>` or
/// `Result<[Event; N], E>`. Options: `name = ".."` (default: the type name in
/// kebab-case), `snapshot` or `snapshot(version = N)`, `crate = path`.
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    aggregate_impl(args.into(), input.into()).into()
}

fn event_impl(args: TokenStream2, input: TokenStream2) -> TokenStream2 {
    let cx = Ctxt::new();
    let Some(item) = EventItem::parse(&cx, input.clone()) else {
        return unparsed(cx, input);
    };
    let event = Event::from_syn(&cx, args, &item);
    check::event(&cx, &event);
    let stripped = strip_helpers(&item, "event");
    match cx.check() {
        Ok(()) => {
            let expanded = expand::event::expand(&event);
            quote!(#stripped #expanded)
        }
        Err(error) => fallback::event(&event, stripped, &error),
    }
}

fn command_impl(args: TokenStream2, input: TokenStream2) -> TokenStream2 {
    let cx = Ctxt::new();
    let Some(item) = CommandItem::parse(&cx, input.clone()) else {
        return unparsed(cx, input);
    };
    let command = Command::from_syn(&cx, args, &item);
    let stripped = match &item {
        CommandItem::Enum(e) => strip_variants(e.clone(), "command"),
        CommandItem::Struct(s) => s.to_token_stream(),
    };
    match cx.check() {
        Ok(()) => {
            let expanded = expand::command::expand(&command);
            quote!(#stripped #expanded)
        }
        Err(error) => fallback::command(&command, stripped, &error),
    }
}

fn aggregate_impl(args: TokenStream2, input: TokenStream2) -> TokenStream2 {
    let cx = Ctxt::new();
    let Some(item) = model::parse_impl(&cx, input.clone()) else {
        return unparsed(cx, input);
    };
    let aggregate = Aggregate::from_syn(&cx, args, &item);
    check::aggregate(&cx, &aggregate);
    match cx.check() {
        Ok(()) => expand::aggregate::expand(&aggregate),
        Err(error) => fallback::aggregate(&aggregate, &error),
    }
}

/// The input was not an item the macro accepts: keep it as written, with the error.
fn unparsed(cx: Ctxt, input: TokenStream2) -> TokenStream2 {
    let errors = cx.check().err().map(|e| e.to_compile_error());
    quote!(#input #errors)
}

fn strip_helpers(item: &EventItem, name: &str) -> TokenStream2 {
    match item {
        EventItem::Enum(e) => strip_variants(e.clone(), name),
        EventItem::Struct(s) => s.to_token_stream(),
    }
}

/// The enum without our helper attributes (`#[event(..)]`, `#[command(..)]`) on variants:
/// they are ours to read, not the compiler's.
fn strip_variants(mut item: syn::ItemEnum, name: &str) -> TokenStream2 {
    for variant in &mut item.variants {
        variant.attrs.retain(|attr| !attr.path().is_ident(name));
    }
    item.to_token_stream()
}
