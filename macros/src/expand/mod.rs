//! Code generation, one module per macro. Everything generated reaches the runtime through
//! `<crate>::__private`.

pub mod aggregate;
pub mod command;
pub mod event;

use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// `::factum::__private`, or `<crate = ..>::__private`.
pub fn private(krate: &TokenStream) -> TokenStream {
    quote!(#krate::__private)
}

/// `2`, not `2u32`.
pub fn number(value: u32) -> Literal {
    Literal::u32_unsuffixed(value)
}
