#![no_main]
//! SMTP framing: commands (BDAT chunks), multi-line replies, DATA bodies.
use libfuzzer_sys::fuzz_target;
use vaurien::protocol::smtp;

fuzz_target!(|data: &[u8]| {
    let _ = smtp::command_len(data);
    let _ = smtp::reply_len(data);
    let _ = smtp::data_len(data);
});
