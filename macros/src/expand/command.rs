//! `impl Command` for a `#[command]` type: reads the fields its options name.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use crate::model::{Command, CommandData, Field, Target, type_string, ungroup};

pub fn expand(command: &Command) -> TokenStream {
    let private = super::private(&command.krate);
    let ident = command.ident;
    let (impl_generics, ty_generics, where_clause) = command.generics.split_for_impl();
    let id_type = command.id_type().expect("checked: every command has an id");
    let (aggregate_id, expected_version, command_id) = match &command.data {
        CommandData::Struct(_, target) => {
            let target = target.as_ref().expect("checked: the id is resolved");
            struct_methods(target, &private)
        }
        CommandData::Enum(variants) => {
            let targets: Vec<_> = variants
                .iter()
                .map(|(variant, _, target)| {
                    (
                        *variant,
                        target.as_ref().expect("checked: every id is resolved"),
                    )
                })
                .collect();
            enum_methods(&targets, id_type, &private)
        }
    };
    let expected_version = expected_version.map(|body| {
        quote! {
            fn expected_version(&self) -> #private::Option<u64> {
                #body
            }
        }
    });
    let command_id = command_id.map(|body| {
        quote! {
            fn command_id(&self) -> #private::Option<&str> {
                #body
            }
        }
    });
    let field_copy = field_copy(&command.data, &private);
    quote! {
        #[automatically_derived]
        impl #impl_generics #private::Command for #ident #ty_generics #where_clause {
            type Id = #id_type;

            fn aggregate_id(&self) -> &#id_type {
                #aggregate_id
            }

            #expected_version

            #command_id

            /// A copy to run again after a lost write race: the command's own `Clone`
            /// when it has one, else a copy field by field when every field is `Clone`,
            /// else `None`.
            fn retry_copy(&self) -> #private::Option<Self> {
                use #private::{CloneCommand as _, NoCopy as _};
                if let whole @ #private::Some(_) = (&#private::RetryCopy(self)).retry_copy() {
                    return whole;
                }
                #field_copy
            }
        }
    }
}

/// `Some(copy)` built field by field, each field copied by its `Clone` (`None` as soon as
/// one is not `Clone`): for commands that do not derive `Clone` themselves.
fn field_copy(data: &CommandData, private: &TokenStream) -> TokenStream {
    let copy = |value: TokenStream| quote!((&#private::RetryCopy(#value)).retry_copy()?);
    let build = |path: TokenStream, fields: &syn::Fields, bind: bool| -> TokenStream {
        let values = fields.iter().enumerate().map(|(i, field)| {
            let member = member(i, field);
            let value = if bind {
                let binding = binding(&member);
                copy(quote!(#binding))
            } else {
                copy(quote!(&self.#member))
            };
            quote!(#member: #value)
        });
        quote!(#path { #(#values),* })
    };
    match data {
        CommandData::Struct(fields, _) => {
            let value = build(quote!(Self), fields, false);
            quote!(#private::Some(#value))
        }
        CommandData::Enum(variants) => {
            let arms = variants.iter().map(|(variant, fields, _)| {
                let bindings = fields.iter().enumerate().map(|(i, field)| {
                    let member = member(i, field);
                    let binding = binding(&member);
                    quote!(#member: #binding)
                });
                let value = build(quote!(Self::#variant), fields, true);
                quote!(Self::#variant { #(#bindings),* } => #private::Some(#value),)
            });
            quote! {
                match self {
                    #(#arms)*
                }
            }
        }
    }
}

/// How the `i`-th field is reached: by its name, or by its index in a tuple.
fn member(i: usize, field: &syn::Field) -> syn::Member {
    match &field.ident {
        Some(ident) => syn::Member::Named(ident.clone()),
        None => syn::Member::Unnamed(i.into()),
    }
}

/// The name a field is bound to in a `match` arm: `__f_<name>` or `__f_<index>`.
fn binding(member: &syn::Member) -> syn::Ident {
    match member {
        syn::Member::Named(ident) => quote::format_ident!("__f_{}", ident),
        syn::Member::Unnamed(index) => quote::format_ident!("__f_{}", index.index),
    }
}

/// `<u64 as ExpectedVersionField>::expected_version(value)`, spanned at the field's type
/// so that a field of another type is reported there.
fn expected_version(field: &Field, value: TokenStream, private: &TokenStream) -> TokenStream {
    let ty = field.ty;
    quote_spanned!(ty.span()=> <#ty as #private::ExpectedVersionField>::expected_version(#value))
}

/// The command id from a string field, or from an `Option` of one, spanned at the
/// (inner) type so that a field of another type is reported there.
fn command_id(field: &Field, value: TokenStream, private: &TokenStream) -> TokenStream {
    let ty = field.ty;
    match option_inner(ty) {
        Some(inner) => {
            quote_spanned!(inner.span()=> <#inner as #private::CommandIdField>::optional_command_id(#value))
        }
        None => quote_spanned!(ty.span()=> <#ty as #private::CommandIdField>::command_id(#value)),
    }
}

/// `T` of `Option<T>`.
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ungroup(ty) else {
        return None;
    };
    let last = path.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match (last.ident == "Option", args.args.first()) {
        (true, Some(syn::GenericArgument::Type(inner))) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}

type Methods = (TokenStream, Option<TokenStream>, Option<TokenStream>);

fn struct_methods(target: &Target, private: &TokenStream) -> Methods {
    let id = &target.id.member;
    let aggregate_id = quote!(&self.#id);
    let expected = target.expected_version.as_ref().map(|field| {
        let member = &field.member;
        expected_version(field, quote!(&self.#member), private)
    });
    let command = target.command_id.as_ref().map(|field| {
        let member = &field.member;
        command_id(field, quote!(&self.#member), private)
    });
    (aggregate_id, expected, command)
}

fn enum_methods<'a>(
    variants: &[(&syn::Ident, &'a Target<'a>)],
    id_type: &Type,
    private: &TokenStream,
) -> Methods {
    let first_id = type_string(ungroup(id_type));
    let id_arms = variants.iter().map(|(variant, target)| {
        let member = &target.id.member;
        let ty = target.id.ty;
        // Written like the first variant's id type: the same type. Else let the compiler
        // decide (type aliases), with our message if they differ.
        let value = if type_string(ungroup(ty)) == first_id {
            quote!(__id)
        } else {
            quote_spanned!(ty.span()=> <#ty as #private::SameIdType<#id_type>>::same_id(__id))
        };
        quote!(Self::#variant { #member: __id, .. } => #value,)
    });
    let aggregate_id = quote! {
        match self {
            #(#id_arms)*
        }
    };
    let expected = optional_arms(
        variants,
        private,
        |t| t.expected_version.as_ref(),
        expected_version,
    );
    let command = optional_arms(variants, private, |t| t.command_id.as_ref(), command_id);
    (aggregate_id, expected, command)
}

/// `match self { .. }` over the variants that have the field `pick` chooses; `None` when no
/// variant has it (the trait's default then applies).
fn optional_arms<'a>(
    variants: &[(&syn::Ident, &'a Target<'a>)],
    private: &TokenStream,
    pick: impl Fn(&'a Target<'a>) -> Option<&'a Field<'a>>,
    read: fn(&Field, TokenStream, &TokenStream) -> TokenStream,
) -> Option<TokenStream> {
    let arms: Vec<_> = variants
        .iter()
        .filter_map(|(variant, target)| {
            let field = pick(target)?;
            let member = &field.member;
            let value = read(field, quote!(__field), private);
            Some(quote!(Self::#variant { #member: __field, .. } => #value,))
        })
        .collect();
    if arms.is_empty() {
        return None;
    }
    let rest = (arms.len() < variants.len()).then(|| quote!(_ => #private::None,));
    Some(quote! {
        match self {
            #(#arms)*
            #rest
        }
    })
}
