#![no_main]
//! memcache text protocol framing: a stream of commands (with data blocks), and a stream of
//! replies of the kind the pick byte chooses; whole, split and byte by byte agree.
use libfuzzer_sys::fuzz_target;
use vaurien::protocol::memcache::{Reply, ReplyFramer, RequestFramer};
use vaurien_fuzz::{check_framer, Input};

const KINDS: [Reply; 6] = [
    Reply::Line,
    Reply::Values,
    Reply::Stats,
    Reply::Meta,
    Reply::Nothing,
    Reply::Stream,
];

fuzz_target!(|raw: &[u8]| {
    let Some(i) = Input::parse(raw) else { return };
    check_framer("memcache request", &RequestFramer::new, i.data, i.cut);
    let kind = KINDS[i.pick as usize % KINDS.len()];
    check_framer("memcache reply", &|| ReplyFramer::new(kind), i.data, i.cut);
});
