#![no_main]
//! RESP framing: commands and replies, whole and split in two at every byte-derived point.
use libfuzzer_sys::fuzz_target;
use vaurien::protocol::framing::Framer;
use vaurien::protocol::redis;

fuzz_target!(|data: &[u8]| {
    let _ = redis::request_len(data);
    let _ = redis::reply_len(data);
    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut f = redis::RespFramer::new();
    if let Ok(p) = f.advance(&data[..cut]) {
        assert!(p.consumed <= cut);
        let _ = f.advance(&data[p.consumed..]);
    }
});
