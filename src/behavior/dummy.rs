//! `dummy`: transparent.

use super::{Fault, Kind, NoOptions, Origin};

pub(super) fn kind() -> Kind {
    Kind::typed(
        "dummy",
        "transparent: forwards everything",
        Origin::Vaurien,
        |_: NoOptions| Ok(Fault::Pass),
    )
}
