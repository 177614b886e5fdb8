#![no_main]
//! MySQL framing: packets and whole responses to each kind of command.
use libfuzzer_sys::fuzz_target;
use vaurien::protocol::mysql;

fuzz_target!(|data: &[u8]| {
    let _ = mysql::packet_len(data);
    for command in [0x03u8, 0x04, 0x09, 0x16, 0x17, 0x1c, 0x0e] {
        let _ = mysql::response_len(data, command);
    }
});
