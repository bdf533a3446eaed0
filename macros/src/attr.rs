//! Parsing of our attributes' options: `#[event(..)]`, `#[command(..)]`,
//! `#[aggregate(..)]`, on the type and on variants.
//!
//! Unknown options are errors that list the valid ones; a repeated option is an error at
//! its second use. Everything else (does the field exist, is the version above 0) is
//! checked later, in `model.rs` and `check.rs`.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Attribute, LitInt, LitStr, Member, Path, Token};

use crate::ctxt::Ctxt;

/// Where the options come from: the macro's own arguments, or a helper attribute such as
/// `#[event(..)]` on a variant.
pub enum Source<'a> {
    Args(TokenStream),
    Attr(&'a Attribute),
}

/// Runs `logic` on every `key = value` / `key(..)` / `key` of `source`, recording a parse
/// error in `cx`.
fn parse_options(cx: &Ctxt, source: Source, logic: impl FnMut(ParseNestedMeta) -> syn::Result<()>) {
    let result = match source {
        Source::Args(tokens) => syn::meta::parser(logic).parse2(tokens),
        // `#[event]` on a variant, without options: nothing to do.
        Source::Attr(attr) if matches!(attr.meta, syn::Meta::Path(_)) => Ok(()),
        Source::Attr(attr) => attr.parse_nested_meta(logic),
    };
    if let Err(error) = result {
        cx.syn_error(error);
    }
}

/// The helper attributes named `name` among `attrs` (`#[event(..)]` on a variant).
pub fn helper_attrs<'a>(
    attrs: &'a [Attribute],
    name: &'a str,
) -> impl Iterator<Item = &'a Attribute> {
    attrs.iter().filter(move |attr| attr.path().is_ident(name))
}

/// The option's name as written (`crate` included).
fn key(meta: &ParseNestedMeta) -> String {
    let segments: Vec<String> = meta
        .path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    segments.join("::")
}

/// The error for an option that is not one of `valid`.
fn unknown(meta: &ParseNestedMeta, what: &str, valid: &[&str]) -> syn::Error {
    let list = valid
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ");
    meta.error(format_args!(
        "unknown option `{}` of {what}; expected one of: {list}",
        key(meta)
    ))
}

/// Sets `slot` once; a second use is reported at its key.
fn set_once<T>(cx: &Ctxt, slot: &mut Option<T>, meta: &ParseNestedMeta, value: T) {
    if slot.is_some() {
        cx.error_spanned_by(&meta.path, format_args!("duplicate option `{}`", key(meta)));
    } else {
        *slot = Some(value);
    }
}

/// A version number as written, with its value.
#[derive(Clone)]
pub struct Version {
    pub value: u32,
    pub lit: LitInt,
}

fn parse_version(input: syn::parse::ParseStream) -> syn::Result<Version> {
    let lit: LitInt = input
        .parse()
        .map_err(|e| syn::Error::new(e.span(), "expected a version number, like `version = 2`"))?;
    let value = lit.base10_parse::<u32>()?;
    Ok(Version { value, lit })
}

// ---------------------------------------------------------------------------------------
// #[event]

/// One `upcast(from = N, with = path)`.
pub struct Upcast {
    pub from: Version,
    pub with: Path,
}

/// The options of `#[event(..)]`, on the type or on a variant.
#[derive(Default)]
pub struct EventAttrs {
    pub tags: Option<Vec<LitStr>>,
    pub tags_with: Option<Path>,
    pub rename: Option<LitStr>,
    pub version: Option<Version>,
    pub upcasts: Vec<Upcast>,
    pub krate: Option<Path>,
}

/// Where an `#[event(..)]` stands, which decides the options it accepts.
#[derive(Clone, Copy, PartialEq)]
pub enum EventPlace {
    Enum,
    Variant,
    Struct,
}

impl EventPlace {
    fn options(self) -> &'static [&'static str] {
        match self {
            EventPlace::Enum => &["tags", "tags_with", "crate"],
            EventPlace::Variant => &["tags", "rename", "version", "upcast"],
            EventPlace::Struct => &["tags", "tags_with", "rename", "version", "upcast", "crate"],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            EventPlace::Enum => "`#[event]` on an enum",
            EventPlace::Variant => "`#[event]` on a variant",
            EventPlace::Struct => "`#[event]` on a struct",
        }
    }
}

pub fn event_attrs(cx: &Ctxt, source: Source, place: EventPlace) -> EventAttrs {
    let mut attrs = EventAttrs::default();
    parse_options(cx, source, |meta| {
        let key = key(&meta);
        if !place.options().contains(&key.as_str()) {
            return Err(unknown(&meta, place.describe(), place.options()));
        }
        match key.as_str() {
            // tags = ["a", "b"]
            "tags" => {
                let tags = parse_tags(meta.value()?)?;
                set_once(cx, &mut attrs.tags, &meta, tags);
            }
            // tags_with = path::to::fn
            "tags_with" => {
                let path = parse_path(
                    meta.value()?,
                    "a function path, like `tags_with = dynamic_tags`",
                )?;
                set_once(cx, &mut attrs.tags_with, &meta, path);
            }
            // rename = "stored-name"
            "rename" => {
                let lit = parse_str(
                    meta.value()?,
                    "a string literal, like `rename = \"money-withdrawn\"`",
                )?;
                set_once(cx, &mut attrs.rename, &meta, lit);
            }
            // version = 2
            "version" => {
                let version = parse_version(meta.value()?)?;
                set_once(cx, &mut attrs.version, &meta, version);
            }
            // upcast(from = 1, with = path::to::fn)
            "upcast" => attrs.upcasts.push(parse_upcast(cx, &meta)?),
            // crate = path::to::factum
            _ => {
                let path = parse_path(
                    meta.value()?,
                    "a path to the `factum` crate, like `crate = ::my_crate::factum`",
                )?;
                set_once(cx, &mut attrs.krate, &meta, path);
            }
        }
        Ok(())
    });
    attrs
}

/// `["a", "b"]`: a list of string literals.
fn parse_tags(input: syn::parse::ParseStream) -> syn::Result<Vec<LitStr>> {
    const EXPECTED: &str = "expected a list of string literals, like `tags = [\"account\"]`";
    if !input.peek(syn::token::Bracket) {
        let value: syn::Expr = input.parse()?;
        return Err(syn::Error::new_spanned(value, EXPECTED));
    }
    let content;
    syn::bracketed!(content in input);
    let items = content.parse_terminated(syn::Expr::parse, Token![,])?;
    items
        .into_iter()
        .map(|item| match item {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(lit),
                ..
            }) => Ok(lit),
            other => Err(syn::Error::new_spanned(other, EXPECTED)),
        })
        .collect()
}

use syn::parse::Parse;

fn parse_path(input: syn::parse::ParseStream, expected: &str) -> syn::Result<Path> {
    input
        .call(Path::parse_mod_style)
        .map_err(|e| syn::Error::new(e.span(), format_args!("expected {expected}")))
}

fn parse_str(input: syn::parse::ParseStream, expected: &str) -> syn::Result<LitStr> {
    input
        .parse()
        .map_err(|e| syn::Error::new(e.span(), format_args!("expected {expected}")))
}

fn parse_upcast(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Upcast> {
    let mut from = None;
    let mut with = None;
    meta.parse_nested_meta(|inner| {
        match key(&inner).as_str() {
            // from = 1
            "from" => {
                let version = parse_version(inner.value()?)?;
                set_once(cx, &mut from, &inner, version);
            }
            // with = path::to::fn
            "with" => {
                let path = parse_path(
                    inner.value()?,
                    "a function path, like `with = deposited_v1_to_v2`",
                )?;
                set_once(cx, &mut with, &inner, path);
            }
            _ => return Err(unknown(&inner, "`upcast(..)`", &["from", "with"])),
        }
        Ok(())
    })?;
    match (from, with) {
        (Some(from), Some(with)) => Ok(Upcast { from, with }),
        (None, _) => Err(meta.error("`upcast` needs `from = <stored version>`, like `upcast(from = 1, with = v1_to_v2)`")),
        (_, None) => Err(meta.error("`upcast` needs `with = <fn(serde_json::Value) -> serde_json::Value>`, like `upcast(from = 1, with = v1_to_v2)`")),
    }
}

// ---------------------------------------------------------------------------------------
// #[command]

/// A field named by an option: `id = account_id` or `id = 0`.
pub type FieldRef = Member;

/// The options of `#[command(..)]`, on the type or on a variant.
#[derive(Default)]
pub struct CommandAttrs {
    pub id: Option<FieldRef>,
    pub expected_version: Option<FieldRef>,
    pub command_id: Option<FieldRef>,
    pub krate: Option<Path>,
}

pub fn command_attrs(cx: &Ctxt, source: Source, on_variant: bool) -> CommandAttrs {
    let (options, what): (&[&str], _) = if on_variant {
        (
            &["id", "expected_version", "command_id"],
            "`#[command]` on a variant",
        )
    } else {
        (
            &["id", "expected_version", "command_id", "crate"],
            "`#[command]`",
        )
    };
    let mut attrs = CommandAttrs::default();
    parse_options(cx, source, |meta| {
        let key = key(&meta);
        if !options.contains(&key.as_str()) {
            return Err(unknown(&meta, what, options));
        }
        match key.as_str() {
            // id = field | id = 0
            "id" => {
                let field = parse_field(meta.value()?)?;
                set_once(cx, &mut attrs.id, &meta, field);
            }
            // expected_version = field
            "expected_version" => {
                let field = parse_field(meta.value()?)?;
                set_once(cx, &mut attrs.expected_version, &meta, field);
            }
            // command_id = field
            "command_id" => {
                let field = parse_field(meta.value()?)?;
                set_once(cx, &mut attrs.command_id, &meta, field);
            }
            // crate = path::to::factum
            _ => {
                let path = parse_path(
                    meta.value()?,
                    "a path to the `factum` crate, like `crate = ::my_crate::factum`",
                )?;
                set_once(cx, &mut attrs.krate, &meta, path);
            }
        }
        Ok(())
    });
    attrs
}

fn parse_field(input: syn::parse::ParseStream) -> syn::Result<FieldRef> {
    if (input.peek(syn::Ident) || input.peek(syn::LitInt))
        && let Ok(member) = input.parse::<Member>()
    {
        return Ok(member);
    }
    let span = input.span();
    Err(syn::Error::new(
        span,
        "expected a field name or a tuple index, like `id = account_id` or `id = 0`",
    ))
}

// ---------------------------------------------------------------------------------------
// #[aggregate]

/// The options of `#[aggregate(..)]`.
#[derive(Default)]
pub struct AggregateAttrs {
    pub name: Option<LitStr>,
    /// `snapshot` (version 1) or `snapshot(version = N)`, with the span of `snapshot`.
    pub snapshot: Option<(Span, Option<Version>)>,
    pub krate: Option<Path>,
}

pub fn aggregate_attrs(cx: &Ctxt, args: TokenStream) -> AggregateAttrs {
    const OPTIONS: &[&str] = &["name", "snapshot", "crate"];
    let mut attrs = AggregateAttrs::default();
    parse_options(cx, Source::Args(args), |meta| {
        match key(&meta).as_str() {
            // name = "account"
            "name" => {
                let lit = parse_str(meta.value()?, "a string literal, like `name = \"account\"`")?;
                set_once(cx, &mut attrs.name, &meta, lit);
            }
            // snapshot | snapshot(version = 2)
            "snapshot" => {
                let span = syn::spanned::Spanned::span(&meta.path);
                let mut version = None;
                if meta.input.peek(syn::token::Paren) {
                    meta.parse_nested_meta(|inner| {
                        if !inner.path.is_ident("version") {
                            return Err(unknown(&inner, "`snapshot(..)`", &["version"]));
                        }
                        let v = parse_version(inner.value()?)?;
                        set_once(cx, &mut version, &inner, v);
                        Ok(())
                    })?;
                }
                set_once(cx, &mut attrs.snapshot, &meta, (span, version));
            }
            // crate = path::to::factum
            "crate" => {
                let path = parse_path(
                    meta.value()?,
                    "a path to the `factum` crate, like `crate = ::my_crate::factum`",
                )?;
                set_once(cx, &mut attrs.krate, &meta, path);
            }
            _ => return Err(unknown(&meta, "`#[aggregate]`", OPTIONS)),
        }
        Ok(())
    });
    attrs
}
