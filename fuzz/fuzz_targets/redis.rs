#![no_main]
//! RESP framing: a stream of commands and a stream of replies, each framed whole, split at a
//! fuzzer-chosen point and byte by byte (same verdicts), and the whole-buffer helpers.
use libfuzzer_sys::fuzz_target;
use vaurien::protocol::redis::{RequestFramer, RespFramer};
use vaurien_fuzz::{check_framer, Input};

fuzz_target!(|raw: &[u8]| {
    let Some(i) = Input::parse(raw) else { return };
    check_framer("redis request", &RequestFramer::new, i.data, i.cut);
    check_framer("redis reply", &RespFramer::new, i.data, i.cut);
});
