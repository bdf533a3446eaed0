//! Procedural macros of factum. Use them through the `factum` crate.
