#![no_main]
//! memcache text protocol framing: commands with data blocks, and each kind of reply.
use libfuzzer_sys::fuzz_target;
use vaurien::protocol::memcache::{self, Reply};

fuzz_target!(|data: &[u8]| {
    let _ = memcache::request_len(data);
    for kind in [Reply::Line, Reply::Values, Reply::Stats, Reply::Meta] {
        let _ = memcache::reply_len(data, kind);
    }
});
