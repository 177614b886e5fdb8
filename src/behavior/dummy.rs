//! `dummy`: transparent.

use std::sync::Arc;

use super::{Behavior, Kind, Origin};

pub struct Dummy;

impl Behavior for Dummy {
    fn is_passthrough(&self) -> bool {
        true
    }
    fn has_exchange_hooks(&self) -> bool {
        false
    }
}

pub(super) fn kind() -> Kind {
    Kind::new(
        "dummy",
        "transparent: forwards everything",
        Origin::Vaurien,
        vec![],
        |_| Ok(Arc::new(Dummy)),
    )
}
