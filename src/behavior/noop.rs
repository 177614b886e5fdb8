//! `noop` (Toxiproxy): does nothing; accepted so that clients can add it.

use super::{Fault, Kind, Origin};

pub(super) fn kind() -> Kind {
    Kind::new(
        "noop",
        "does nothing (Toxiproxy)",
        Origin::Toxic,
        vec![],
        |_| Ok(Fault::Pass),
    )
}
