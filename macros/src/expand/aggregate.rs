//! `impl Aggregate` for the state type of an `#[aggregate]` impl block: each method calls
//! the inherent one of the same name; the user's impl block is kept as written.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Type;

use crate::model::{Aggregate, EventsForm};

pub fn expand(aggregate: &Aggregate) -> TokenStream {
    let private = super::private(&aggregate.krate);
    let item = aggregate.item;
    let self_ty = &*item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let handle = aggregate
        .handle
        .as_ref()
        .expect("checked: `handle` is present");
    let apply = aggregate
        .apply
        .as_ref()
        .expect("checked: `apply` is present");
    let (command, event, error) = (handle.command, apply.event, handle.error);
    let name = &aggregate.name;
    let inherent = inherent_path(self_ty);

    let decided = quote!(#inherent::handle(self, __command));
    let handle_body = match handle.events.form {
        EventsForm::Vec => decided,
        EventsForm::Option => quote!(#decided.map(#private::Vec::from_iter)),
        EventsForm::Array => quote!(#decided.map(#private::Vec::from)),
        EventsForm::One => quote!(#decided.map(|__event| #private::Vec::from([__event]))),
    };
    let invariants = aggregate.invariants.map(|_| {
        quote! {
            fn invariants(&self) -> #private::Result<(), #error> {
                #inherent::invariants(self)
            }
        }
    });
    let snapshot = aggregate.snapshot.as_ref().map(|(span, version, _)| {
        let version = super::number(*version);
        // Spanned at `snapshot`: a state without serde is reported there.
        let encode = quote_spanned!(*span=> <Self as #private::SnapshotState>::encode_snapshot(self));
        let decode = quote_spanned!(*span=> <Self as #private::SnapshotState>::decode_snapshot(__value));
        quote! {
            const SNAPSHOT_VERSION: #private::Option<u32> = #private::Some(#version);

            fn encode_snapshot(&self) -> #private::Result<#private::serde_json::Value, #private::CodecError> {
                #encode
            }

            fn decode_snapshot(
                __value: #private::serde_json::Value,
            ) -> #private::Result<Self, #private::CodecError> {
                #decode
            }
        }
    });
    quote! {
        #item

        #[automatically_derived]
        impl #impl_generics #private::Aggregate for #self_ty #where_clause {
            type Command = #command;
            type Event = #event;
            type Error = #error;

            const NAME: &'static str = #name;

            #snapshot

            fn handle(
                &self,
                __command: #command,
            ) -> #private::Result<#private::Vec<#event>, #error> {
                #handle_body
            }

            fn apply(&mut self, __event: &#event) {
                #inherent::apply(self, __event);
            }

            #invariants
        }
    }
}

/// How to name the inherent impl: `Account` as written, or `<Account<T>>` when the type
/// has arguments (a path expression cannot have them without a turbofish).
fn inherent_path(self_ty: &Type) -> TokenStream {
    match self_ty {
        Type::Path(path)
            if path.qself.is_none() && path.path.segments.iter().all(|s| s.arguments.is_none()) =>
        {
            quote!(#self_ty)
        }
        _ => quote!(<#self_ty>),
    }
}
