//! `impl Event` for an `#[event]` type.
//!
//! The codec stores each event's content (its fields, not the variant name) as JSON, next
//! to its manifest and version. For an enum, every variant with fields gets two private
//! helper structs: one that borrows the fields to encode them, one that owns them to
//! decode them. For a struct, the struct's own serde impls are used.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Fields;
use syn::spanned::Spanned;

use crate::model::{Event, EventData, Kind};

pub fn expand(event: &Event) -> TokenStream {
    let private = super::private(&event.krate);
    let ident = event.ident;
    let helpers = match &event.data {
        EventData::Enum(kinds) => kinds.iter().map(|kind| helpers(event, kind)).collect(),
        EventData::Struct(_) => TokenStream::new(),
    };
    let manifest = manifest_fn(event);
    let version = version_fn(event);
    let tags = tags_fn(event, &private);
    let encode = encode_fn(event, &private);
    let decode = decode_fn(event, &private);
    quote! {
        const _: () = {
            #helpers

            #[automatically_derived]
            impl #private::Event for #ident {
                #manifest
                #version
                #tags
                #encode
                #decode
            }
        };
    }
}

/// `Self::Opened { .. }`, `Self::Moved(..)` or `Self::Closed`.
fn pattern(kind: &Kind) -> TokenStream {
    let ident = kind.ident;
    match kind.fields {
        Fields::Named(_) => quote!(Self::#ident { .. }),
        Fields::Unnamed(_) => quote!(Self::#ident(..)),
        Fields::Unit => quote!(Self::#ident),
    }
}

/// A method that returns one value per kind of event: a plain body when all kinds agree,
/// else a `match` with kinds of equal value joined by `|`.
fn per_kind(event: &Event, value: impl Fn(&Kind) -> TokenStream) -> TokenStream {
    let kinds = event.kinds();
    let mut groups: Vec<(String, TokenStream, Vec<TokenStream>)> = Vec::new();
    for kind in kinds {
        let value = value(kind);
        let key = value.to_string();
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, patterns)) => patterns.push(pattern(kind)),
            None => groups.push((key, value, vec![pattern(kind)])),
        }
    }
    if let [(_, value, _)] = groups.as_slice() {
        return value.clone();
    }
    let arms = groups
        .iter()
        .map(|(_, value, patterns)| quote!(#(#patterns)|* => #value,));
    quote! {
        match self {
            #(#arms)*
        }
    }
}

fn manifest_fn(event: &Event) -> TokenStream {
    let body = per_kind(event, |kind| {
        let manifest = &kind.manifest;
        quote!(#manifest)
    });
    quote! {
        fn manifest(&self) -> &'static str {
            #body
        }
    }
}

fn version_fn(event: &Event) -> TokenStream {
    let body = per_kind(event, |kind| {
        let version = super::number(kind.version);
        quote!(#version)
    });
    quote! {
        fn version(&self) -> u32 {
            #body
        }
    }
}

fn tags_fn(event: &Event, private: &TokenStream) -> TokenStream {
    let no_tags = event.tags.is_empty() && event.kinds().iter().all(|kind| kind.tags.is_empty());
    if no_tags && event.tags_with.is_none() {
        // The trait's default: no tags.
        return TokenStream::new();
    }
    let body = per_kind(event, |kind| {
        let fixed = event.tags.iter().chain(&kind.tags);
        match &event.tags_with {
            None => quote!(#private::Tags::fixed(&[#(#fixed),*])),
            Some(path) => {
                let call = quote_spanned!(path.span()=> #path(self));
                quote!(#private::Tags::with_owned(&[#(#fixed),*], #call))
            }
        }
    });
    quote! {
        fn tags(&self) -> #private::Tags {
            #body
        }
    }
}

/// The names of the helpers of a variant: `__OpenedRef` (encodes) and `__Opened` (decodes).
fn helper_names(kind: &Kind) -> (syn::Ident, syn::Ident) {
    (
        format_ident!("__{}Ref", kind.ident),
        format_ident!("__{}", kind.ident),
    )
}

fn helpers(event: &Event, kind: &Kind) -> TokenStream {
    let private = super::private(&event.krate);
    let serde_crate = format!("{}::serde", private).replace(' ', "");
    let (encoder, decoder) = helper_names(kind);
    let ident = event.ident;
    let variant = kind.ident;
    let encode_doc =
        format!(" The content of `{ident}::{variant}` to encode: its fields, borrowed.");
    let decode_doc = format!(" The content of `{ident}::{variant}` as decoded.");
    // The borrowing helper needs a lifetime only when it borrows something.
    let lifetime = (!kind.fields.is_empty()).then(|| quote!(<'a>));
    match kind.fields {
        Fields::Named(fields) => {
            let names: Vec<_> = fields.named.iter().map(|f| &f.ident).collect();
            let types: Vec<_> = fields.named.iter().map(|f| &f.ty).collect();
            quote! {
                #[doc = #encode_doc]
                #[derive(#private::serde::Serialize)]
                #[serde(crate = #serde_crate)]
                struct #encoder #lifetime {
                    #(#names: &'a #types,)*
                }

                #[doc = #decode_doc]
                #[derive(#private::serde::Deserialize)]
                #[serde(crate = #serde_crate)]
                struct #decoder {
                    #(#names: #types,)*
                }

                impl #decoder {
                    fn into_event(self) -> #ident {
                        #ident::#variant {
                            #(#names: self.#names,)*
                        }
                    }
                }
            }
        }
        Fields::Unnamed(fields) => {
            let types: Vec<_> = fields.unnamed.iter().map(|f| &f.ty).collect();
            let indexes = (0..types.len()).map(syn::Index::from);
            quote! {
                #[doc = #encode_doc]
                #[derive(#private::serde::Serialize)]
                #[serde(crate = #serde_crate)]
                struct #encoder #lifetime (#(&'a #types),*);

                #[doc = #decode_doc]
                #[derive(#private::serde::Deserialize)]
                #[serde(crate = #serde_crate)]
                struct #decoder(#(#types),*);

                impl #decoder {
                    fn into_event(self) -> #ident {
                        #ident::#variant(#(self.#indexes),*)
                    }
                }
            }
        }
        Fields::Unit => TokenStream::new(),
    }
}

fn encode_fn(event: &Event, private: &TokenStream) -> TokenStream {
    let body = match &event.data {
        EventData::Struct(_) => quote!(Ok(#private::serde_json::to_vec(self)?)),
        EventData::Enum(kinds) => {
            let arms = kinds.iter().map(|kind| {
                let variant = kind.ident;
                let (encoder, _) = helper_names(kind);
                match kind.fields {
                    Fields::Named(fields) => {
                        let names: Vec<_> = fields.named.iter().map(|f| &f.ident).collect();
                        quote! {
                            Self::#variant { #(#names),* } => #private::serde_json::to_vec(&#encoder { #(#names),* })?,
                        }
                    }
                    Fields::Unnamed(fields) => {
                        let bindings: Vec<_> = (0..fields.unnamed.len()).map(|i| format_ident!("__{}", i)).collect();
                        quote! {
                            Self::#variant(#(#bindings),*) => #private::serde_json::to_vec(&#encoder(#(#bindings),*))?,
                        }
                    }
                    Fields::Unit => quote! {
                        Self::#variant => #private::Vec::from("null"),
                    },
                }
            });
            quote! {
                let __payload = match self {
                    #(#arms)*
                };
                Ok(__payload)
            }
        }
    };
    quote! {
        fn encode(&self) -> #private::Result<#private::Vec<u8>, #private::CodecError> {
            #body
        }
    }
}

fn decode_fn(event: &Event, private: &TokenStream) -> TokenStream {
    let arms = event.kinds().iter().map(|kind| {
        let manifest = &kind.manifest;
        let current = super::number(kind.version);
        let from_payload = content(event, kind, private, quote!(from_slice), quote!(__payload));
        // Each stored version from which a chain of upcasts leads to the current one.
        let upcasted = (1..kind.version).rev().filter_map(|stored| {
            let steps = (stored..kind.version)
                .map(|from| kind.upcasts.iter().find(|u| u.from.value == from).map(|u| &u.with))
                .collect::<Option<Vec<_>>>()?;
            let steps = steps.iter().map(|with| quote_spanned!(with.span()=> let __value = #with(__value);));
            let from_value = content(event, kind, private, quote!(from_value), quote!(__value));
            let stored = super::number(stored);
            Some(quote! {
                #stored => {
                    let __value: #private::serde_json::Value = #private::serde_json::from_slice(__payload)?;
                    #(#steps)*
                    #from_value
                }
            })
        });
        quote! {
            #manifest => match __version {
                #current => #from_payload,
                #(#upcasted)*
                _ => Err(#private::unknown_version(__manifest, __version, #current)),
            },
        }
    });
    quote! {
        fn decode(
            __manifest: &str,
            __version: u32,
            __payload: &[u8],
        ) -> #private::Result<Self, #private::CodecError> {
            match __manifest {
                #(#arms)*
                _ => Err(#private::unknown_manifest(__manifest)),
            }
        }
    }
}

/// Decodes the current version of `kind` from `source` with `serde_json::<function>`.
fn content(
    event: &Event,
    kind: &Kind,
    private: &TokenStream,
    function: TokenStream,
    source: TokenStream,
) -> TokenStream {
    let variant = kind.ident;
    match (&event.data, kind.fields) {
        (EventData::Struct(_), _) => quote!(Ok(#private::serde_json::#function::<Self>(#source)?)),
        (EventData::Enum(_), Fields::Unit) => quote! {{
            #private::serde_json::#function::<#private::serde::de::IgnoredAny>(#source)?;
            Ok(Self::#variant)
        }},
        (EventData::Enum(_), _) => {
            let (_, decoder) = helper_names(kind);
            quote!(Ok(#private::serde_json::#function::<#decoder>(#source)?.into_event()))
        }
    }
}
