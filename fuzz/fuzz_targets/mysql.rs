#![no_main]
//! MySQL framing: a stream of packets, and a stream of responses to the command the pick byte
//! names (any byte: the known commands and the others); whole, split and byte by byte agree
//! (for `COM_STMT_PREPARE`, whose boundaries may depend on reads, on the bytes framed).
use libfuzzer_sys::fuzz_target;
use vaurien::protocol::mysql::{PacketFramer, ResponseFramer};
use vaurien_fuzz::{check_framer, check_framer_bytes, Input};

const COM_STMT_PREPARE: u8 = 0x16;

fuzz_target!(|raw: &[u8]| {
    let Some(i) = Input::parse(raw) else { return };
    check_framer("mysql packet", &PacketFramer::new, i.data, i.cut);
    let command = i.pick;
    let make = || ResponseFramer::new(command);
    if command == COM_STMT_PREPARE {
        check_framer_bytes("mysql prepare response", &make, i.data, i.cut);
    } else {
        check_framer("mysql response", &make, i.data, i.cut);
    }
});
