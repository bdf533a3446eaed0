//! The inputs of the three macros, parsed from syn's syntax tree into what the expansion
//! needs: borrowed from the user's item, with every named field resolved.
//!
//! Mistakes found while resolving (a field that does not exist, a `handle` without
//! `Result`) are recorded in the [`Ctxt`]; what could not be resolved is left out.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Fields, Ident, ImplItemFn, ItemImpl, LitInt, LitStr, Member, Path, Type};

use crate::attr::{self, CommandAttrs, EventAttrs, EventPlace, Source, Upcast};
use crate::ctxt::Ctxt;

/// `::factum`, or the path given with `crate = ..`.
fn crate_path(krate: Option<Path>) -> TokenStream {
    krate.map_or_else(|| quote!(::factum), ToTokens::into_token_stream)
}

// ---------------------------------------------------------------------------------------
// #[event]

/// An `#[event]` type.
pub struct Event<'a> {
    pub ident: &'a Ident,
    pub generics: &'a syn::Generics,
    pub krate: TokenStream,
    /// Tags of every event (type level).
    pub tags: Vec<LitStr>,
    pub tags_with: Option<Path>,
    pub data: EventData<'a>,
}

pub enum EventData<'a> {
    Enum(Vec<Kind<'a>>),
    Struct(Kind<'a>),
}

/// One kind of event, stored under its own manifest: a variant, or the struct.
pub struct Kind<'a> {
    pub ident: &'a Ident,
    pub fields: &'a Fields,
    pub manifest: String,
    /// `rename = ".."` when given, else the ident.
    pub manifest_span: Span,
    pub version: u32,
    pub version_lit: Option<LitInt>,
    /// Tags of this variant only (added to the type's).
    pub tags: Vec<LitStr>,
    pub upcasts: Vec<Upcast>,
}

impl<'a> Kind<'a> {
    fn new(ident: &'a Ident, fields: &'a Fields, attrs: EventAttrs) -> Self {
        let (manifest, manifest_span) = match &attrs.rename {
            Some(lit) => (lit.value(), lit.span()),
            None => (ident.to_string(), ident.span()),
        };
        Kind {
            ident,
            fields,
            manifest,
            manifest_span,
            version: attrs.version.as_ref().map_or(1, |v| v.value),
            version_lit: attrs.version.map(|v| v.lit),
            tags: attrs.tags.unwrap_or_default(),
            upcasts: attrs.upcasts,
        }
    }
}

/// The item `#[event]` stands on.
pub enum EventItem {
    Enum(syn::ItemEnum),
    Struct(syn::ItemStruct),
}

impl EventItem {
    pub fn parse(cx: &Ctxt, tokens: TokenStream) -> Option<Self> {
        match syn::parse2::<syn::Item>(tokens) {
            Ok(syn::Item::Enum(item)) => Some(EventItem::Enum(item)),
            Ok(syn::Item::Struct(item)) => Some(EventItem::Struct(item)),
            Ok(other) => {
                cx.error_spanned_by(
                    item_keyword(&other),
                    "`#[event]` goes on an enum or a struct",
                );
                None
            }
            Err(error) => {
                cx.syn_error(error);
                None
            }
        }
    }
}

impl<'a> Event<'a> {
    pub fn from_syn(cx: &Ctxt, args: TokenStream, item: &'a EventItem) -> Self {
        match item {
            EventItem::Enum(item) => {
                let attrs = attr::event_attrs(cx, Source::Args(args), EventPlace::Enum);
                let kinds = item
                    .variants
                    .iter()
                    .map(|variant| {
                        let mut variant_attrs = EventAttrs::default();
                        for helper in attr::helper_attrs(&variant.attrs, "event") {
                            let parsed =
                                attr::event_attrs(cx, Source::Attr(helper), EventPlace::Variant);
                            merge_event_attrs(cx, &mut variant_attrs, parsed, helper);
                        }
                        Kind::new(&variant.ident, &variant.fields, variant_attrs)
                    })
                    .collect();
                Event {
                    ident: &item.ident,
                    generics: &item.generics,
                    krate: crate_path(attrs.krate),
                    tags: attrs.tags.unwrap_or_default(),
                    tags_with: attrs.tags_with,
                    data: EventData::Enum(kinds),
                }
            }
            EventItem::Struct(item) => {
                let mut attrs = attr::event_attrs(cx, Source::Args(args), EventPlace::Struct);
                let krate = crate_path(attrs.krate.take());
                let tags = attrs.tags.take().unwrap_or_default();
                let tags_with = attrs.tags_with.take();
                Event {
                    ident: &item.ident,
                    generics: &item.generics,
                    krate,
                    tags,
                    tags_with,
                    data: EventData::Struct(Kind::new(&item.ident, &item.fields, attrs)),
                }
            }
        }
    }

    /// Every kind of event, in declaration order.
    pub fn kinds(&self) -> &[Kind<'a>] {
        match &self.data {
            EventData::Enum(kinds) => kinds,
            EventData::Struct(kind) => std::slice::from_ref(kind),
        }
    }
}

/// Two `#[event(..)]` on one variant count as one list of options.
fn merge_event_attrs(cx: &Ctxt, into: &mut EventAttrs, from: EventAttrs, attr: &syn::Attribute) {
    let duplicate =
        |what: &str| cx.error_spanned_by(attr, format_args!("duplicate option `{what}`"));
    if from.tags.is_some() {
        if into.tags.is_some() {
            duplicate("tags")
        } else {
            into.tags = from.tags
        }
    }
    if from.rename.is_some() {
        if into.rename.is_some() {
            duplicate("rename")
        } else {
            into.rename = from.rename
        }
    }
    if from.version.is_some() {
        if into.version.is_some() {
            duplicate("version")
        } else {
            into.version = from.version
        }
    }
    into.upcasts.extend(from.upcasts);
}

// ---------------------------------------------------------------------------------------
// #[command]

/// A `#[command]` type.
pub struct Command<'a> {
    pub ident: &'a Ident,
    pub generics: &'a syn::Generics,
    pub krate: TokenStream,
    pub data: CommandData<'a>,
}

pub enum CommandData<'a> {
    /// Its fields, and the ones its options name (`None` if its `id` could not be resolved).
    Struct(&'a Fields, Option<Target<'a>>),
    /// Each variant, with its fields resolved (`None` if its `id` could not be).
    Enum(Vec<(&'a Ident, &'a Fields, Option<Target<'a>>)>),
}

/// The fields a command (or one of its variants) names.
pub struct Target<'a> {
    pub id: Field<'a>,
    pub expected_version: Option<Field<'a>>,
    pub command_id: Option<Field<'a>>,
}

/// A resolved field: how to reach it, and its type.
pub struct Field<'a> {
    pub member: Member,
    pub ty: &'a Type,
}

pub enum CommandItem {
    Enum(syn::ItemEnum),
    Struct(syn::ItemStruct),
}

impl CommandItem {
    pub fn parse(cx: &Ctxt, tokens: TokenStream) -> Option<Self> {
        match syn::parse2::<syn::Item>(tokens) {
            Ok(syn::Item::Enum(item)) => Some(CommandItem::Enum(item)),
            Ok(syn::Item::Struct(item)) => Some(CommandItem::Struct(item)),
            Ok(other) => {
                cx.error_spanned_by(
                    item_keyword(&other),
                    "`#[command]` goes on a struct or an enum",
                );
                None
            }
            Err(error) => {
                cx.syn_error(error);
                None
            }
        }
    }
}

/// What is being resolved, for messages: "struct `Open`" or "variant `Open`".
struct Owner<'a> {
    what: &'static str,
    ident: &'a Ident,
    fields: &'a Fields,
}

impl<'a> Command<'a> {
    pub fn from_syn(cx: &Ctxt, args: TokenStream, item: &'a CommandItem) -> Self {
        match item {
            CommandItem::Struct(item) => {
                let errors = cx.error_count();
                let attrs = attr::command_attrs(cx, Source::Args(args), false);
                let owner = Owner {
                    what: "struct",
                    ident: &item.ident,
                    fields: &item.fields,
                };
                let target = match &attrs.id {
                    Some(id) => {
                        resolve_target(cx, &owner, &attrs, &CommandAttrs::default(), id, false)
                    }
                    // The options did not parse: whether `id` is there is not known.
                    None if cx.error_count() > errors => None,
                    None => {
                        cx.error_spanned_by(
                            &item.ident,
                            "missing `id`: write `#[command(id = <field>)]`, naming the field that holds the aggregate id",
                        );
                        None
                    }
                };
                Command {
                    ident: &item.ident,
                    generics: &item.generics,
                    krate: crate_path(attrs.krate),
                    data: CommandData::Struct(&item.fields, target),
                }
            }
            CommandItem::Enum(item) => {
                let errors = cx.error_count();
                let defaults = attr::command_attrs(cx, Source::Args(args), false);
                let defaults_parsed = cx.error_count() == errors;
                let variants = item
                    .variants
                    .iter()
                    .map(|variant| {
                        let errors = cx.error_count();
                        let mut attrs = CommandAttrs::default();
                        for helper in attr::helper_attrs(&variant.attrs, "command") {
                            let parsed = attr::command_attrs(cx, Source::Attr(helper), true);
                            merge_command_attrs(cx, &mut attrs, parsed, helper);
                        }
                        // When some options did not parse, a missing `id` may just be unread.
                        let parsed = defaults_parsed && cx.error_count() == errors;
                        let owner = Owner { what: "variant", ident: &variant.ident, fields: &variant.fields };
                        let target = match (&attrs.id, &defaults.id) {
                            (Some(id), _) => resolve_target(cx, &owner, &attrs, &defaults, id, false),
                            (None, Some(id)) => resolve_target(cx, &owner, &attrs, &defaults, id, true),
                            (None, None) if !parsed => None,
                            (None, None) if matches!(variant.fields, Fields::Unit) => {
                                cx.error_spanned_by(
                                    &variant.ident,
                                    format_args!(
                                        "unit variant `{}` has no field to hold the aggregate id: give it one, like `{} {{ id: Id }}`",
                                        variant.ident, variant.ident
                                    ),
                                );
                                None
                            }
                            (None, None) => {
                                cx.error_spanned_by(
                                    &variant.ident,
                                    format_args!(
                                        "missing `id` for variant `{}`: write `#[command(id = <field>)]` on the enum (for every variant) or on this variant",
                                        variant.ident
                                    ),
                                );
                                None
                            }
                        };
                        (&variant.ident, &variant.fields, target)
                    })
                    .collect();
                Command {
                    ident: &item.ident,
                    generics: &item.generics,
                    krate: crate_path(defaults.krate),
                    data: CommandData::Enum(variants),
                }
            }
        }
    }

    /// The id type: the type of the (first) id field.
    pub fn id_type(&self) -> Option<&'a Type> {
        match &self.data {
            CommandData::Struct(_, target) => target.as_ref().map(|t| t.id.ty),
            CommandData::Enum(variants) => variants
                .iter()
                .find_map(|(_, _, target)| target.as_ref().map(|t| t.id.ty)),
        }
    }
}

fn merge_command_attrs(
    cx: &Ctxt,
    into: &mut CommandAttrs,
    from: CommandAttrs,
    attr: &syn::Attribute,
) {
    let duplicate =
        |what: &str| cx.error_spanned_by(attr, format_args!("duplicate option `{what}`"));
    for (slot, value, name) in [
        (&mut into.id, from.id, "id"),
        (
            &mut into.expected_version,
            from.expected_version,
            "expected_version",
        ),
        (&mut into.command_id, from.command_id, "command_id"),
    ] {
        if value.is_some() {
            if slot.is_some() {
                duplicate(name)
            } else {
                *slot = value
            }
        }
    }
}

/// Resolves `id` and the optional fields of one struct or variant: own options first, then
/// the enum's defaults.
fn resolve_target<'a>(
    cx: &Ctxt,
    owner: &Owner<'a>,
    own: &CommandAttrs,
    defaults: &CommandAttrs,
    id: &Member,
    id_is_default: bool,
) -> Option<Target<'a>> {
    let id = resolve(cx, owner, "id", id, id_is_default);
    let optional = |name: &str, own: &Option<Member>, default: &Option<Member>| match (own, default)
    {
        (Some(member), _) => resolve(cx, owner, name, member, false),
        (None, Some(member)) => resolve(cx, owner, name, member, true),
        (None, None) => None,
    };
    let expected_version = optional(
        "expected_version",
        &own.expected_version,
        &defaults.expected_version,
    );
    let command_id = optional("command_id", &own.command_id, &defaults.command_id);
    Some(Target {
        id: id?,
        expected_version,
        command_id,
    })
}

/// Finds the field `member` of `owner`, or explains why there is none.
fn resolve<'a>(
    cx: &Ctxt,
    owner: &Owner<'a>,
    option: &str,
    member: &Member,
    is_default: bool,
) -> Option<Field<'a>> {
    let Owner {
        what,
        ident,
        fields,
    } = owner;
    // An enum-level default is reported at the variant that lacks the field.
    let span_tokens: &dyn ToTokens = if is_default { ident } else { member };
    let from_default = if is_default {
        format!(" (`{option}` on the enum applies to every variant; override it on this variant)")
    } else {
        String::new()
    };
    match (fields, member) {
        (Fields::Named(named), Member::Named(name)) => {
            if let Some(field) = named.named.iter().find(|f| f.ident.as_ref() == Some(name)) {
                return Some(Field {
                    member: member.clone(),
                    ty: &field.ty,
                });
            }
            let list = named
                .named
                .iter()
                .filter_map(|f| f.ident.as_ref().map(|i| format!("`{i}`")))
                .collect::<Vec<_>>()
                .join(", ");
            cx.error_spanned_by(
                span_tokens,
                format_args!("{what} `{ident}` has no field `{name}` for `{option}`; its fields are: {list}{from_default}"),
            );
        }
        (Fields::Unnamed(unnamed), Member::Unnamed(index)) => {
            let count = unnamed.unnamed.len();
            if let Some(field) = unnamed.unnamed.iter().nth(index.index as usize) {
                let member = Member::Unnamed(syn::Index {
                    index: index.index,
                    span: index.span,
                });
                return Some(Field {
                    member,
                    ty: &field.ty,
                });
            }
            let valid = if count == 1 {
                "`0`".to_owned()
            } else {
                format!("`0` to `{}`", count - 1)
            };
            cx.error_spanned_by(
                span_tokens,
                format_args!(
                    "tuple index {} is out of range for `{option}`: {what} `{ident}` has {count} field{}, so the index is {valid}{from_default}",
                    index.index,
                    if count == 1 { "" } else { "s" },
                ),
            );
        }
        (Fields::Named(named), Member::Unnamed(index)) => {
            let list = named
                .named
                .iter()
                .filter_map(|f| f.ident.as_ref().map(|i| format!("`{i}`")))
                .collect::<Vec<_>>()
                .join(", ");
            cx.error_spanned_by(
                span_tokens,
                format_args!("{what} `{ident}` has named fields: name one instead of index {}; its fields are: {list}{from_default}", index.index),
            );
        }
        (Fields::Unnamed(_), Member::Named(name)) => {
            cx.error_spanned_by(
                span_tokens,
                format_args!("{what} `{ident}` has unnamed fields: write `{option} = 0` (a tuple index) instead of `{name}`{from_default}"),
            );
        }
        (Fields::Unit, _) => {
            cx.error_spanned_by(
                span_tokens,
                format_args!(
                    "unit {what} `{ident}` has no fields, so none can be `{option}`{from_default}"
                ),
            );
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// #[aggregate]

/// An `#[aggregate]` impl block.
pub struct Aggregate<'a> {
    pub item: &'a ItemImpl,
    pub krate: TokenStream,
    /// The persistence-id category.
    pub name: String,
    /// `snapshot`: the span of the option and the snapshot version.
    pub snapshot: Option<(Span, u32, Option<LitInt>)>,
    pub handle: Option<Handle<'a>>,
    pub apply: Option<Apply<'a>>,
    pub invariants: Option<&'a ImplItemFn>,
}

/// `fn handle(&self, command: C) -> Result<R, E>`.
pub struct Handle<'a> {
    pub command: &'a Type,
    pub events: Events<'a>,
    pub error: &'a Type,
}

/// What `handle` returns inside `Result`, and the event type in it.
pub struct Events<'a> {
    pub form: EventsForm,
    pub event: &'a Type,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventsForm {
    /// `Vec<Ev>`
    Vec,
    /// `Option<Ev>`
    Option,
    /// `[Ev; N]`
    Array,
    /// `Ev`
    One,
}

/// `fn apply(&mut self, event: &Ev)`.
pub struct Apply<'a> {
    pub event: &'a Type,
}

/// The item `#[aggregate]` stands on, when it is an impl block.
pub fn parse_impl(cx: &Ctxt, tokens: TokenStream) -> Option<ItemImpl> {
    match syn::parse2::<syn::Item>(tokens) {
        Ok(syn::Item::Impl(item)) => {
            if let Some((_, path, _)) = item.trait_.as_ref().map(|(path, for_)| ((), path, for_)) {
                cx.error_spanned_by(
                    path,
                    "`#[aggregate]` goes on the inherent impl block of the state type (`impl Account { .. }`), not on a trait impl",
                );
                return None;
            }
            Some(item)
        }
        Ok(other) => {
            cx.error_spanned_by(
                item_keyword(&other),
                "`#[aggregate]` goes on the inherent impl block of the state type, like `#[aggregate] impl Account { fn handle(..) .. fn apply(..) .. }`",
            );
            None
        }
        Err(error) => {
            cx.syn_error(error);
            None
        }
    }
}

impl<'a> Aggregate<'a> {
    pub fn from_syn(cx: &Ctxt, args: TokenStream, item: &'a ItemImpl) -> Self {
        let attrs = attr::aggregate_attrs(cx, args);
        let name = match &attrs.name {
            Some(lit) => lit.value(),
            None => kebab_case(&type_name(&item.self_ty)),
        };
        let method = |name: &str| {
            item.items.iter().find_map(|it| match it {
                syn::ImplItem::Fn(f) if f.sig.ident == name => Some(f),
                _ => None,
            })
        };
        let handle = match method("handle") {
            Some(f) => handle(cx, f),
            None => {
                cx.error_spanned_by(
                    &item.self_ty,
                    "missing `fn handle(&self, command: Command) -> Result<Vec<Event>, Error>` in this `#[aggregate]` impl block",
                );
                None
            }
        };
        let apply = match method("apply") {
            Some(f) => apply(cx, f),
            None => {
                cx.error_spanned_by(
                    &item.self_ty,
                    "missing `fn apply(&mut self, event: &Event)` in this `#[aggregate]` impl block",
                );
                None
            }
        };
        let invariants = method("invariants");
        if let Some(f) = invariants {
            invariants_signature(cx, f);
        }
        Aggregate {
            item,
            krate: crate_path(attrs.krate),
            name,
            snapshot: attrs.snapshot.map(|(span, version)| {
                (
                    span,
                    version.as_ref().map_or(1, |v| v.value),
                    version.map(|v| v.lit),
                )
            }),
            handle,
            apply,
            invariants,
        }
    }
}

fn is_ref_self(f: &ImplItemFn, mutable: bool) -> bool {
    match f.sig.receiver() {
        Some(receiver) => {
            matches!(receiver.kind, syn::ReceiverKind::Reference(_, _, ref m) if m.is_some() == mutable)
        }
        None => false,
    }
}

/// The receiver (or the parameter list, when there is none), for errors.
fn receiver_tokens(f: &ImplItemFn) -> TokenStream {
    match f.sig.inputs.first() {
        Some(first) => first.to_token_stream(),
        None => f.sig.ident.to_token_stream(),
    }
}

/// The types of the parameters after the receiver.
fn param_types(f: &ImplItemFn) -> Vec<&Type> {
    f.sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            syn::FnArg::Typed(pat) => Some(&*pat.ty),
            syn::FnArg::Receiver(_) => None,
        })
        .collect()
}

fn handle<'a>(cx: &Ctxt, f: &'a ImplItemFn) -> Option<Handle<'a>> {
    const SIGNATURE: &str = "fn handle(&self, command: Command) -> Result<Vec<Event>, Error>";
    let mut ok = true;
    if let Some(asyncness) = &f.sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            format_args!(
                "`handle` cannot be `async`: it decides from the state alone; write `{SIGNATURE}`"
            ),
        );
        ok = false;
    }
    if !is_ref_self(f, false) {
        cx.error_spanned_by(
            receiver_tokens(f),
            format_args!("`handle` must take `&self`: it decides without changing the state (`apply` changes it); write `{SIGNATURE}`"),
        );
        ok = false;
    }
    let params = param_types(f);
    if params.len() != 1 && f.sig.receiver().is_some() {
        cx.error_spanned_by(
            &f.sig.inputs,
            format_args!("`handle` takes `&self` and one command, found {} parameters after `self`; write `{SIGNATURE}`", params.len()),
        );
        ok = false;
    }
    let result = match &f.sig.output {
        syn::ReturnType::Type(_, ty) => result_args(ty),
        syn::ReturnType::Default => None,
    };
    let Some((ok_ty, error)) = result else {
        const EXPECTED: &str = "`handle` must return `Result<Vec<Event>, Error>` (or `Result<Event, Error>`, `Result<Option<Event>, Error>`, `Result<[Event; N], Error>`)";
        match &f.sig.output {
            syn::ReturnType::Type(_, ty) => cx.error_spanned_by(ty, EXPECTED),
            // Where the return type would be.
            syn::ReturnType::Default => cx.error_at(f.sig.paren_token.span.close(), EXPECTED),
        }
        return None;
    };
    let events = events_of(ok_ty);
    // Even when `ok` is false the types are read: the fallback impl uses them, so that
    // the mistake in the signature is the only error.
    let _ = ok;
    let command = params.first()?;
    Some(Handle {
        command,
        events,
        error,
    })
}

/// `Result<T, E>` → `(T, E)`.
fn result_args(ty: &Type) -> Option<(&Type, &Type)> {
    match generic_args(ty, "Result")?.as_slice() {
        [ok, error] => Some((ok, error)),
        _ => None,
    }
}

/// The type arguments of `ty` when its last path segment is `name`.
fn generic_args<'a>(ty: &'a Type, name: &str) -> Option<Vec<&'a Type>> {
    let Type::Path(path) = ungroup(ty) else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    Some(
        args.args
            .iter()
            .filter_map(|arg| match arg {
                syn::GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect(),
    )
}

/// The forms `handle` may return inside `Result`.
fn events_of(ty: &Type) -> Events<'_> {
    let ty = ungroup(ty);
    if let Type::Array(array) = ty {
        return Events {
            form: EventsForm::Array,
            event: &array.elem,
        };
    }
    for (name, form) in [("Vec", EventsForm::Vec), ("Option", EventsForm::Option)] {
        if let Some(args) = generic_args(ty, name)
            && let [event] = args.as_slice()
        {
            return Events { form, event };
        }
    }
    Events {
        form: EventsForm::One,
        event: ty,
    }
}

fn apply<'a>(cx: &Ctxt, f: &'a ImplItemFn) -> Option<Apply<'a>> {
    const SIGNATURE: &str = "fn apply(&mut self, event: &Event)";
    if let Some(asyncness) = &f.sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            format_args!("`apply` cannot be `async`; write `{SIGNATURE}`"),
        );
    } else if !is_ref_self(f, true) {
        cx.error_spanned_by(
            receiver_tokens(f),
            format_args!("`apply` must take `&mut self`: it evolves the state by one event; write `{SIGNATURE}`"),
        );
    }
    let params = param_types(f);
    let params: Vec<&Type> = params.into_iter().map(ungroup).collect();
    let [Type::Reference(reference)] = params.as_slice() else {
        cx.error_spanned_by(
            &f.sig.inputs,
            format_args!(
                "`apply` takes `&mut self` and one event by reference; write `{SIGNATURE}`"
            ),
        );
        // For the fallback: the event type as written, if there is one.
        return match params.as_slice() {
            [Type::Reference(reference), ..] => Some(Apply {
                event: &reference.elem,
            }),
            [event, ..] => Some(Apply { event }),
            [] => None,
        };
    };
    if reference.mutability.is_some() {
        cx.error_spanned_by(
            reference,
            format_args!(
                "`apply` takes the event by shared reference (`&Event`); write `{SIGNATURE}`"
            ),
        );
    }
    if let syn::ReturnType::Type(_, ty) = &f.sig.output
        && !matches!(&**ty, Type::Tuple(t) if t.elems.is_empty())
    {
        cx.error_spanned_by(
            ty,
            format_args!(
                "`apply` returns nothing: events are facts and cannot fail; write `{SIGNATURE}`"
            ),
        );
    }
    Some(Apply {
        event: &reference.elem,
    })
}

fn invariants_signature(cx: &Ctxt, f: &ImplItemFn) {
    const SIGNATURE: &str = "fn invariants(&self) -> Result<(), Error>";
    if f.sig.asyncness.is_some() || !is_ref_self(f, false) || !param_types(f).is_empty() {
        cx.error_spanned_by(&f.sig, format_args!("`invariants` must be `{SIGNATURE}`"));
    }
}

/// The type inside invisible groups (types passed through `macro_rules!`) and parentheses.
pub fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungroup(&group.elem),
        Type::Paren(paren) => ungroup(&paren.elem),
        other => other,
    }
}

/// A type as written, for messages: `Vec<Event>`, not `Vec < Event >`.
pub fn type_string(ty: &Type) -> String {
    let mut s = ty.to_token_stream().to_string();
    for (from, to) in [
        (" < ", "<"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" :: ", "::"),
        (":: ", "::"),
        (" ,", ","),
        ("& ", "&"),
        (" ;", ";"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// The last identifier of a type path: `Account` for `crate::Account<T>`.
pub fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .map_or_else(String::new, |s| s.ident.to_string()),
        other => other.span().source_text().unwrap_or_default(),
    }
}

/// `BankAccount` → `bank-account`, `HTTPServer` → `http-server`.
pub fn kebab_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(|n| n.is_lowercase()),
                _ => false,
            };
            if boundary {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        } else if c == '_' {
            out.push('-');
        } else {
            out.push(c);
        }
    }
    out
}

/// The keyword of an item, to point "wrong kind of item" errors at.
fn item_keyword(item: &syn::Item) -> TokenStream {
    match item {
        syn::Item::Struct(i) => i.struct_token.to_token_stream(),
        syn::Item::Enum(i) => i.enum_token.to_token_stream(),
        syn::Item::Fn(i) => i.sig.fn_token.to_token_stream(),
        syn::Item::Trait(i) => i.trait_token.to_token_stream(),
        syn::Item::Impl(i) => i.impl_token.to_token_stream(),
        syn::Item::Union(i) => i.union_token.to_token_stream(),
        syn::Item::Type(i) => i.type_token.to_token_stream(),
        other => other.to_token_stream(),
    }
}
