#![no_main]
//! HTTP/1.x framing: a stream of requests, a stream of responses, a chunked body; whole, split
//! and byte by byte agree. Heads: a response head parsed as the answer to the method the pick
//! byte names gives the same result from any prefix that holds it (and no error from a prefix
//! that does not), and a request head with its Host rewritten is still the same request.
use libfuzzer_sys::fuzz_target;
use vaurien::protocol::framing::FrameError;
use vaurien::protocol::http::{
    parse_request, parse_response, rewrite_host, BodyFramer, BodyKind, Head, MessageFramer,
};
use vaurien_fuzz::{check_framer, show, Input};

const METHODS: [&str; 5] = ["GET", "HEAD", "CONNECT", "POST", "head"];

type Parse<'a> = &'a dyn Fn(&[u8]) -> Result<Option<Head>, FrameError>;

fn check_head(name: &str, parse: Parse<'_>, data: &[u8], cut: usize) {
    let whole = parse(data);
    let prefix = parse(&data[..cut]);
    match &whole {
        Ok(Some(h)) if h.len <= cut => assert_eq!(
            prefix,
            whole,
            "{name}: a prefix holding the head differs for {:?}",
            show(data)
        ),
        Ok(_) => assert_eq!(
            prefix,
            Ok(None),
            "{name}: a prefix of a good head is not 'more' for {:?}",
            show(data)
        ),
        Err(_) => {}
    }
}

fuzz_target!(|raw: &[u8]| {
    let Some(i) = Input::parse(raw) else { return };
    check_framer("http request", &MessageFramer::request, i.data, i.cut);
    check_framer("http response", &MessageFramer::response, i.data, i.cut);
    check_framer(
        "http chunked body",
        &|| BodyFramer::new(BodyKind::Chunked),
        i.data,
        i.cut,
    );
    let method = METHODS[i.pick as usize % METHODS.len()];
    check_head("http request head", &parse_request, i.data, i.cut);
    check_head(
        "http response head",
        &|b| parse_response(b, method),
        i.data,
        i.cut,
    );
    if let Ok(Some(h)) = parse_request(i.data) {
        let out = rewrite_host(&i.data[..h.len], "fuzz.example:1");
        let again = parse_request(&out);
        let same = matches!(&again, Ok(Some(g))
            if g.len == out.len() && g.method == h.method && g.body == h.body);
        assert!(
            same,
            "http: rewriting Host changed the request {:?} into {:?} ({again:?})",
            show(&i.data[..h.len]),
            show(&out)
        );
    }
});
