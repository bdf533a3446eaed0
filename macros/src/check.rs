//! Checks of a parsed input that need more than one option at a time: versions against
//! upcasts, manifests against each other, `handle` against `apply`.

use std::collections::HashMap;

use crate::ctxt::Ctxt;
use crate::model::{Aggregate, Event, EventData, type_string, ungroup};

pub fn event(cx: &Ctxt, event: &Event) {
    if let Some(param) = event.generics.params.first() {
        cx.error_spanned_by(param, "`#[event]` does not support generic parameters: events are stored, so their types are concrete");
    }
    if let EventData::Enum(kinds) = &event.data
        && kinds.is_empty()
    {
        cx.error_spanned_by(event.ident, "an `#[event]` enum needs at least one variant");
    }
    let mut manifests: HashMap<&str, &syn::Ident> = HashMap::new();
    for kind in event.kinds() {
        // version = 0
        if let Some(lit) = &kind.version_lit
            && kind.version == 0
        {
            cx.error_spanned_by(
                lit,
                "event versions start at 1: write `version = 1` or more",
            );
        }
        // upcast(from = N) must lead to the current version, each N once.
        let mut froms: HashMap<u32, ()> = HashMap::new();
        for upcast in &kind.upcasts {
            let from = upcast.from.value;
            if from == 0 {
                cx.error_spanned_by(
                    &upcast.from.lit,
                    "event versions start at 1: `from` must be 1 or more",
                );
            } else if from >= kind.version {
                cx.error_spanned_by(
                    &upcast.from.lit,
                    format_args!(
                        "`upcast(from = {from})` must be below the current version of `{}`, which is {}; raise it with `version = {}`",
                        kind.ident,
                        kind.version,
                        from + 1
                    ),
                );
            } else if froms.insert(from, ()).is_some() {
                cx.error_spanned_by(
                    &upcast.from.lit,
                    format_args!("a second `upcast(from = {from})` for `{}`", kind.ident),
                );
            }
        }
        // Manifests are the keys of the codec: each at most once.
        if let Some(first) = manifests.insert(&kind.manifest, kind.ident) {
            cx.error_at(
                kind.manifest_span,
                format_args!(
                    "manifest `{}` is already used by variant `{first}`: every variant needs its own; pick another with `rename = \"..\"`",
                    kind.manifest
                ),
            );
        }
    }
}

pub fn aggregate(cx: &Ctxt, aggregate: &Aggregate) {
    if let (Some(handle), Some(apply)) = (&aggregate.handle, &aggregate.apply) {
        let handled = type_string(ungroup(handle.events.event));
        let applied = type_string(ungroup(apply.event));
        if handled != applied {
            cx.error_spanned_by(
                handle.events.event,
                format_args!("`handle` returns events of type `{handled}`, but `apply` takes `&{applied}`: both must name the same event type, written the same way"),
            );
        }
    }
    if let Some((_, 0, Some(lit))) = &aggregate.snapshot {
        cx.error_spanned_by(
            lit,
            "snapshot versions start at 1: write `snapshot(version = 1)` or more",
        );
    }
}
