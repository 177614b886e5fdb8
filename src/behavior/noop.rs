//! `noop` (Toxiproxy): does nothing; accepted so that clients can add it.

use super::{Fault, Kind, NoOptions, Origin};

pub(super) fn kind() -> Kind {
    Kind::typed(
        "noop",
        "does nothing (Toxiproxy)",
        Origin::Toxic,
        |_: NoOptions| Ok(Fault::Pass),
    )
}
