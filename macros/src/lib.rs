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

/// Options of `#[event]` — on the type: `tags = ["..", ..]`, the tags of every event;
/// `tags_with = path`, a `fn(&Self) -> Vec<String>` of dynamic tags; `crate = path`, where
/// `factum` is when it is renamed. On a variant, or on a struct: `tags` (added to the
/// type's); `rename = ".."`, the stored manifest (default: the variant's name);
/// `version = N` (default 1); any number of `upcast(from = N, with = path)`, each a
/// `fn(serde_json::Value) -> serde_json::Value` lifting a stored version-N payload to N + 1.
///
/// Generates `impl factum::Event`: the manifest and version of each variant, its tags,
/// `serde_json` encoding, and decoding that dispatches on the stored manifest and version
/// and runs the upcasters in order.
#[proc_macro_attribute]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    event_impl(args.into(), input.into()).into()
}

/// Options of `#[command]`, each naming a field (or a tuple index such as `id = 0`):
/// `id` (required), the aggregate id; `expected_version`, a `u64` or `Option<u64>`: the
/// command runs only at that version; `command_id`, a string (`String`, `&str`, any
/// `AsRef<str>`, or an `Option` of one): the idempotency key of the dedupe window. On an
/// enum they may stand on the type, as defaults, and on variants. Also `crate = path` on
/// the type.
///
/// Generates `impl factum::Command`; `retry_copy` returns a copy when the type is `Clone`,
/// so that a command that lost a write race to another process can run again.
#[proc_macro_attribute]
pub fn command(args: TokenStream, input: TokenStream) -> TokenStream {
    command_impl(args.into(), input.into()).into()
}

/// Options of `#[aggregate]`: `name = ".."`, the persistence-id category (default: the
/// type name in kebab-case); `snapshot` or `snapshot(version = N)`: the state is
/// snapshotted with serde, and a stored snapshot of another version is ignored; `crate =
/// path`.
///
/// In the block: `fn handle(&self, cmd: C) -> Result<R, E>`, where `R` is `Vec<Ev>`, `Ev`,
/// `Option<Ev>` or `[Ev; N]`; `fn apply(&mut self, event: &Ev)`; optionally `fn
/// invariants(&self) -> Result<(), E>`. The command, event and error types are taken from
/// these signatures. Other methods in the block stay as they are.
///
/// Generates `impl factum::Aggregate` (and keeps the block as an inherent impl).
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
