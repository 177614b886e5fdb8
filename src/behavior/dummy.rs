//! `dummy`: transparent.

use super::{Fault, Kind, Origin};

pub(super) fn kind() -> Kind {
    Kind::new(
        "dummy",
        "transparent: forwards everything",
        Origin::Vaurien,
        vec![],
        |_| Ok(Fault::Pass),
    )
}
