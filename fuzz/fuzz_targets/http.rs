#![no_main]
//! HTTP/1.x framing: request and response heads (httparse) and bodies (length, chunked).
use libfuzzer_sys::fuzz_target;
use vaurien::protocol::framing::Framer;
use vaurien::protocol::http;

fuzz_target!(|data: &[u8]| {
    let _ = http::request_len(data);
    let _ = http::response_len(data);
    let _ = http::parse_response(data, "HEAD");
    let mut f = http::BodyFramer::new(http::BodyKind::Chunked);
    if let Ok(p) = f.advance(data) {
        assert!(p.consumed <= data.len());
    }
});
