#![no_main]
//! SMTP framing: commands (and BDAT chunks), multi-line replies and DATA bodies, each as a
//! stream; whole, split and byte by byte agree.
use libfuzzer_sys::fuzz_target;
use vaurien::protocol::smtp::{CommandFramer, DataFramer, ReplyFramer};
use vaurien_fuzz::{check_framer, Input};

fuzz_target!(|raw: &[u8]| {
    let Some(i) = Input::parse(raw) else { return };
    check_framer("smtp command", &CommandFramer::new, i.data, i.cut);
    check_framer("smtp reply", &ReplyFramer::new, i.data, i.cut);
    check_framer("smtp data", &DataFramer::new, i.data, i.cut);
});
