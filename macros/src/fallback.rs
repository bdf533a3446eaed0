//! What a macro emits when the input has mistakes: the user's item as written (minus our
//! helper attributes), the errors, and a stand-in impl of the trait, so that each mistake
//! gives exactly one error and no follow-on errors where the type is used.

use proc_macro2::TokenStream;
use quote::quote;

use crate::expand::private;
use crate::model::{Aggregate, Command, Event};

pub fn event(event: &Event, item: TokenStream, error: &syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    if !event.generics.params.is_empty() {
        return quote!(#item #errors);
    }
    let private = private(&event.krate);
    let ident = event.ident;
    quote! {
        #item
        #errors

        #[automatically_derived]
        impl #private::Event for #ident {
            fn manifest(&self) -> &'static str {
                #private::unimplemented!()
            }
            fn version(&self) -> u32 {
                #private::unimplemented!()
            }
            fn encode(&self) -> #private::Result<#private::Vec<u8>, #private::CodecError> {
                #private::unimplemented!()
            }
            fn decode(_: &str, _: u32, _: &[u8]) -> #private::Result<Self, #private::CodecError> {
                #private::unimplemented!()
            }
        }
    }
}

pub fn command(command: &Command, item: TokenStream, error: &syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    let private = private(&command.krate);
    let ident = command.ident;
    let (impl_generics, ty_generics, where_clause) = command.generics.split_for_impl();
    let id_type = match command.id_type() {
        Some(ty) => quote!(#ty),
        None => quote!(#private::Never),
    };
    quote! {
        #item
        #errors

        #[automatically_derived]
        impl #impl_generics #private::Command for #ident #ty_generics #where_clause {
            type Id = #id_type;
            fn aggregate_id(&self) -> &Self::Id {
                #private::unimplemented!()
            }
        }
    }
}

pub fn aggregate(aggregate: &Aggregate, error: &syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    let private = private(&aggregate.krate);
    let item = aggregate.item;
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let never = quote!(#private::Never);
    let command = aggregate.handle.as_ref().map_or_else(
        || never.clone(),
        |h| {
            let ty = h.command;
            quote!(#ty)
        },
    );
    let error_ty = aggregate.handle.as_ref().map_or_else(
        || never.clone(),
        |h| {
            let ty = h.error;
            quote!(#ty)
        },
    );
    let event = match (&aggregate.apply, &aggregate.handle) {
        (Some(apply), _) => {
            let ty = apply.event;
            quote!(#ty)
        }
        (None, Some(handle)) => {
            let ty = handle.events.event;
            quote!(#ty)
        }
        (None, None) => never,
    };
    quote! {
        #item
        #errors

        #[automatically_derived]
        impl #impl_generics #private::Aggregate for #self_ty #where_clause {
            type Command = #command;
            type Event = #event;
            type Error = #error_ty;
            const NAME: &'static str = "";
            fn handle(&self, _: Self::Command) -> #private::Result<#private::Vec<Self::Event>, Self::Error> {
                #private::unimplemented!()
            }
            fn apply(&mut self, _: &Self::Event) {
                #private::unimplemented!()
            }
        }
    }
}
