//! `noop` (Toxiproxy): does nothing; accepted so that clients can add it.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Behavior, Kind, Origin};

pub struct Noop;

#[async_trait]
impl Behavior for Noop {
    fn is_passthrough(&self) -> bool {
        true
    }
    fn has_exchange_hooks(&self) -> bool {
        false
    }
}

pub(super) fn kind() -> Kind {
    Kind::new(
        "noop",
        "does nothing (Toxiproxy)",
        Origin::Toxic,
        vec![],
        |_| Ok(Arc::new(Noop)),
    )
}
