//! `http`: HTTP/1.x. An exchange is one request (head parsed with `httparse`, then its body by
//! `Content-Length` or chunked, trailers included) and its response (interim `1xx` responses
//! are passed on first; no body after `HEAD`, `1xx`, `204` and `304`; a response with neither
//! length nor chunking runs until the backend closes). Bodies stream through as they arrive.
//! `Expect: 100-continue` works both ways (the backend's `100` reaches the client, then the
//! body goes up). Pipelined requests are one exchange each. A `101 Switching Protocols` (or a
//! `CONNECT` tunnel) hands the connection over to raw forwarding both ways.
//!
//! As the original, the client connection is closed after each response unless both the
//! `keep_alive` and `reuse_socket` options are given (the response goes as the backend sent
//! it: no `Connection: close` is added). `overwrite_host_header` (on by default, as the
//! original) rewrites the `Host:` header to the backend as given.

use std::sync::{Arc, RwLock};

use bytes::BytesMut;
use rand::rngs::SmallRng;
use rand::Rng;

use super::framing::{
    complete_len, gather, line, malformed, pump, relay, Chunk, FrameError, Framed, FramedExchange,
    Framer, Progress, Pumped, MAX_LINE,
};
use super::{CommonOptions, ErrorReply, Mode, ProtocolError};
use crate::base::{Direction, Side};
use crate::behavior::options;
use crate::link::Session;

/// Largest request or response head accepted.
pub const MAX_HEAD: usize = 256 * 1024;
/// Most headers in one head.
const MAX_HEADERS: usize = 256;

pub struct Http {
    buffer: usize,
    /// Keep the client connection between exchanges (`keep_alive` and `reuse_socket`).
    stay: bool,
    overwrite_host: bool,
}

options! {
    /// `http`'s own options.
    pub struct HttpOptions {
        /// rewrite the Host header to the backend as given (--backend), as the original did by
        /// default
        overwrite_host_header: bool = true,
    }
}

/// How the body of a message is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Empty,
    Length(u64),
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

/// What the proxy needs to know of a request or response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Length of the head, its blank line included.
    pub len: usize,
    /// The request's method (empty for a response).
    pub method: String,
    /// The response's status (0 for a request).
    pub status: u16,
    pub body: BodyKind,
    /// The sender allows another message on the connection after this one.
    pub keep_alive: bool,
    /// `Connection: close` is already there.
    pub says_close: bool,
    /// `Expect: 100-continue` (requests).
    pub expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` header (requests).
    pub upgrade: bool,
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The facts of a head from its headers.
struct Facts {
    length: Option<u64>,
    chunked: bool,
    other_coding: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    upgrade_header: bool,
    connection_upgrade: bool,
}

fn facts(headers: &[httparse::Header<'_>]) -> Result<Facts, FrameError> {
    let mut f = Facts {
        length: None,
        chunked: false,
        other_coding: false,
        close: false,
        keep_alive: false,
        expect_continue: false,
        upgrade_header: false,
        connection_upgrade: false,
    };
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let text =
                std::str::from_utf8(h.value).map_err(|_| FrameError::new("bad Content-Length"))?;
            let n: u64 = text
                .trim()
                .parse()
                .map_err(|_| FrameError::new(format!("bad Content-Length {text:?}")))?;
            if f.length.is_some_and(|m| m != n) {
                return Err(FrameError::new("conflicting Content-Length headers"));
            }
            f.length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding decides: chunked must come last.
            for coding in h.value.split(|&b| b == b',') {
                let coding = coding.trim_ascii();
                if coding.is_empty() {
                    continue;
                }
                let chunked = coding.eq_ignore_ascii_case(b"chunked");
                f.chunked = chunked;
                f.other_coding = !chunked;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            f.close |= has_token(h.value, "close");
            f.keep_alive |= has_token(h.value, "keep-alive");
            f.connection_upgrade |= has_token(h.value, "upgrade");
        } else if name.eq_ignore_ascii_case("expect") {
            f.expect_continue |= h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("upgrade") {
            f.upgrade_header = true;
        }
    }
    Ok(f)
}

fn keep_alive(minor: u8, f: &Facts) -> bool {
    if f.close {
        false
    } else {
        minor >= 1 || f.keep_alive
    }
}

fn parse_error(e: httparse::Error) -> FrameError {
    FrameError::new(format!("bad head: {e}"))
}

fn too_long(buf: &[u8]) -> Result<Option<Head>, FrameError> {
    if buf.len() > MAX_HEAD {
        Err(FrameError::new(format!(
            "head longer than {MAX_HEAD} bytes"
        )))
    } else {
        Ok(None)
    }
}

/// Parses the request head at the front of `buf`; `None` until it is complete.
pub fn parse_request(buf: &[u8]) -> Result<Option<Head>, FrameError> {
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf).map_err(parse_error)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return too_long(buf),
    };
    let f = facts(req.headers)?;
    let method = req.method.unwrap_or("").to_string();
    let minor = req.version.unwrap_or(1);
    let body = if f.chunked {
        BodyKind::Chunked
    } else if f.other_coding {
        return Err(FrameError::new(
            "request body with an unknown transfer coding",
        ));
    } else {
        match f.length {
            Some(0) | None => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
        }
    };
    Ok(Some(Head {
        len,
        method,
        status: 0,
        body,
        keep_alive: keep_alive(minor, &f),
        says_close: f.close,
        expect_continue: f.expect_continue,
        upgrade: f.upgrade_header && f.connection_upgrade,
    }))
}

/// Parses the response head at the front of `buf` (an answer to `method`); `None` until it is
/// complete.
pub fn parse_response(buf: &[u8], method: &str) -> Result<Option<Head>, FrameError> {
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf).map_err(parse_error)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return too_long(buf),
    };
    let f = facts(resp.headers)?;
    let status = resp.code.unwrap_or(0);
    let minor = resp.version.unwrap_or(1);
    let body = if (100..200).contains(&status)
        || status == 204
        || status == 304
        || method.eq_ignore_ascii_case("HEAD")
        || (method.eq_ignore_ascii_case("CONNECT") && (200..300).contains(&status))
    {
        BodyKind::Empty
    } else if f.chunked {
        BodyKind::Chunked
    } else if f.other_coding {
        BodyKind::UntilClose
    } else {
        match f.length {
            Some(0) => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
            None => BodyKind::UntilClose,
        }
    };
    Ok(Some(Head {
        len,
        method: String::new(),
        status,
        body,
        keep_alive: keep_alive(minor, &f) && body != BodyKind::UntilClose,
        says_close: f.close,
        expect_continue: false,
        upgrade: false,
    }))
}

/// Where a chunked body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data: bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until a blank one.
    Trailer,
}

/// Incremental framer of a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyFramer {
    kind: BodyKind,
    left: u64,
    chunk: ChunkState,
}

impl BodyFramer {
    pub fn new(kind: BodyKind) -> Self {
        BodyFramer {
            kind,
            left: match kind {
                BodyKind::Length(n) => n,
                _ => 0,
            },
            chunk: ChunkState::Size,
        }
    }

    fn chunked(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            let more = Progress {
                consumed: at,
                done: false,
            };
            match self.chunk {
                ChunkState::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        at += n;
                        self.chunk = if size == 0 {
                            ChunkState::Trailer
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if rest.len() > MAX_LINE => {
                        return Err(FrameError::new("chunk size line too long"))
                    }
                    Ok(httparse::Status::Partial) => return Ok(more),
                    Err(_) => return Err(FrameError::new("bad chunk size")),
                },
                ChunkState::Data(left) => {
                    if rest.is_empty() {
                        return Ok(more);
                    }
                    let take = left.min(rest.len() as u64);
                    at += take as usize;
                    self.chunk = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd => match rest {
                    [] | [b'\r'] => return Ok(more),
                    [b'\r', b'\n', ..] => {
                        at += 2;
                        self.chunk = ChunkState::Size;
                    }
                    [b'\n', ..] => {
                        at += 1;
                        self.chunk = ChunkState::Size;
                    }
                    _ => return Err(FrameError::new("chunk data not followed by CRLF")),
                },
                ChunkState::Trailer => match line(rest, MAX_LINE)? {
                    None => return Ok(more),
                    Some((text, n)) => {
                        at += n;
                        if text.is_empty() {
                            return Ok(Progress {
                                consumed: at,
                                done: true,
                            });
                        }
                    }
                },
            }
        }
    }
}

impl Framer for BodyFramer {
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        match self.kind {
            BodyKind::Empty => Ok(Progress {
                consumed: 0,
                done: true,
            }),
            BodyKind::Length(_) => {
                let take = self.left.min(buf.len() as u64);
                self.left -= take;
                Ok(Progress {
                    consumed: take as usize,
                    done: self.left == 0,
                })
            }
            BodyKind::Chunked => self.chunked(buf),
            BodyKind::UntilClose => Ok(Progress {
                consumed: buf.len(),
                done: false,
            }),
        }
    }
}

/// Incremental framer of a whole message: the head (waited for whole), then its body.
pub struct MessageFramer {
    request: bool,
    body: Option<BodyFramer>,
}

impl MessageFramer {
    pub fn request() -> Self {
        MessageFramer {
            request: true,
            body: None,
        }
    }
    /// A response to a `GET`.
    pub fn response() -> Self {
        MessageFramer {
            request: false,
            body: None,
        }
    }
}

impl Framer for MessageFramer {
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        if let Some(body) = &mut self.body {
            return body.advance(buf);
        }
        let head = if self.request {
            parse_request(buf)?
        } else {
            parse_response(buf, "GET")?
        };
        let Some(head) = head else {
            return Ok(Progress::MORE);
        };
        let mut body = BodyFramer::new(head.body);
        let p = body.advance(&buf[head.len..])?;
        self.body = Some(body);
        Ok(Progress {
            consumed: head.len + p.consumed,
            done: p.done,
        })
    }
}

/// The length of the first complete request in `buf`, if any.
pub fn request_len(buf: &[u8]) -> Option<usize> {
    complete_len(MessageFramer::request(), buf)
}

/// The length of the first complete response (to a `GET`) in `buf`, if any.
pub fn response_len(buf: &[u8]) -> Option<usize> {
    complete_len(MessageFramer::response(), buf)
}

/// The name of a header line (`None` for the start line and the blank line).
fn header_name(l: &[u8]) -> Option<&[u8]> {
    let colon = l.iter().position(|&b| b == b':')?;
    Some(l[..colon].trim_ascii())
}

/// The lines of a head, each with its line ending.
fn head_lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split_inclusive(|&b| b == b'\n')
}

/// `head` with the value of `Host` replaced by `host` (added when missing).
pub fn rewrite_host(head: &[u8], host: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + host.len());
    let mut done = false;
    let mut first = true;
    for l in head_lines(head) {
        let blank = l == b"\r\n" || l == b"\n";
        if !first && !blank && header_name(l).is_some_and(|n| n.eq_ignore_ascii_case(b"host")) {
            if !done {
                out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
                done = true;
            }
            continue;
        }
        if blank && !first && !done {
            out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
            done = true;
        }
        // Empty lines before the request line are kept as they are.
        if !blank {
            first = false;
        }
        out.extend_from_slice(l);
    }
    out
}

/// How reading a head from one side ended.
enum HeadRead {
    Head(Head),
    /// The side closed (or timed out) before a whole head.
    Eof,
}

impl Http {
    /// Reads a whole head from the client (a request) or the backend (a response to `method`)
    /// into its buffer; nothing is consumed.
    async fn read_head(
        &self,
        s: &mut Session<'_>,
        from: Side,
        method: &str,
    ) -> Result<HeadRead, ProtocolError> {
        loop {
            let buf = &s.buf(from)[..];
            let parsed = match from {
                Side::Client => parse_request(buf),
                Side::Backend => parse_response(buf, method),
            }
            .map_err(|e| malformed("http", from, e))?;
            if let Some(head) = parsed {
                return Ok(HeadRead::Head(head));
            }
            match s.fill(from, self.buffer).await {
                Ok(0) => return Ok(HeadRead::Eof),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut && from == Side::Backend => {
                    tracing::debug!("http: no response within --timeout");
                    return Ok(HeadRead::Eof);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Relays the response(s) to `req`: interim `1xx` ones, then the final one and its body.
    /// `first` is a head already read. Returns whether both sides allow another exchange.
    async fn response(
        &self,
        x: &FramedExchange<'_>,
        s: &mut Session<'_>,
        req: &Head,
        mut first: Option<Head>,
    ) -> Result<bool, ProtocolError> {
        let down = Direction::Downstream;
        loop {
            let head = match first.take() {
                Some(h) => h,
                None => match self.read_head(s, Side::Backend, &req.method).await? {
                    HeadRead::Head(h) => h,
                    HeadRead::Eof => return Ok(false),
                },
            };
            let tunnel = head.status == 101
                || (req.method.eq_ignore_ascii_case("CONNECT")
                    && (200..300).contains(&head.status));
            let last = !tunnel && !(100..200).contains(&head.status);
            if last && x.transforms.down {
                return self.whole_response(x, s, req, &head).await;
            }
            let raw = s.backend_buf.split_to(head.len);
            if tunnel {
                // The 101 and the first frames may have come in one read: they follow it.
                if !x.forward(s, down, &raw).await? {
                    return Ok(false);
                }
                tracing::debug!(status = head.status, "http: switching to raw forwarding");
                relay(s, self.buffer).await?;
                return Ok(false);
            }
            if (100..200).contains(&head.status) {
                if !x.forward(s, down, &raw).await? {
                    return Ok(false);
                }
                continue;
            }
            let keep = req.keep_alive && head.keep_alive;
            // As the original, the head goes as the backend sent it, even when the proxy is
            // going to close the client connection after this response.
            let mut head_bytes = raw.to_vec();
            // A body already read whole goes out with its head, in one write.
            let whole = match head.body {
                BodyKind::Empty => Some(0),
                BodyKind::Length(n) if (s.backend_buf.len() as u64) >= n => Some(n as usize),
                _ => None,
            };
            if let Some(n) = whole {
                head_bytes.extend_from_slice(&s.backend_buf.split_to(n));
                return Ok(s.forward(down, &head_bytes).await? && keep);
            }
            if !s.forward(down, &head_bytes).await? {
                return Ok(false);
            }
            let mut body = BodyFramer::new(head.body);
            return Ok(
                match pump(s, "http", Side::Backend, &mut body, self.buffer, false).await? {
                    Pumped::Done => keep,
                    // A body that runs until the backend closes ends here.
                    Pumped::Eof { .. } => false,
                    Pumped::Closed => false,
                },
            );
        }
    }
}

impl Http {
    /// The final response (`head` read, still in the buffer) read whole, head and body, then
    /// forwarded through the hook's transform. A body that runs until the backend closes is
    /// whole at the close. Returns whether both sides allow another exchange.
    async fn whole_response(
        &self,
        x: &FramedExchange<'_>,
        s: &mut Session<'_>,
        req: &Head,
        head: &Head,
    ) -> Result<bool, ProtocolError> {
        let down = Direction::Downstream;
        let until_close = head.body == BodyKind::UntilClose;
        let (msg, complete) = self.take_whole(s, Side::Backend, head).await?;
        if !complete && !until_close {
            s.forward(down, &msg).await?;
            return Ok(false);
        }
        let keep = req.keep_alive && head.keep_alive && !until_close;
        Ok(x.forward(s, down, &msg).await? && keep)
    }

    /// Reads the body of the message whose `head` is at the front of `from`'s buffer, and takes
    /// the message out of the buffer, head and body; false when `from` closed first.
    async fn take_whole(
        &self,
        s: &mut Session<'_>,
        from: Side,
        head: &Head,
    ) -> Result<(BytesMut, bool), ProtocolError> {
        let mut body = BodyFramer::new(head.body);
        let g = gather(s, "http", from, &mut body, head.len, self.buffer, false).await?;
        Ok((s.buf(from).split_to(g.len), g.complete))
    }

    /// The whole request (`req` read, still in the buffer: its head and its body) through the
    /// hook's transform: what the hook returns goes to the backend, and its head, when it
    /// parses, is the request the response is read for. `None` when the client closed first
    /// (what it sent is forwarded as it is) or a toxic closed the connection.
    async fn whole_request(
        &self,
        x: &FramedExchange<'_>,
        s: &mut Session<'_>,
        req: Head,
    ) -> Result<Option<Head>, ProtocolError> {
        let up = Direction::Upstream;
        if req.expect_continue && req.body != BodyKind::Empty && s.client_buf.len() == req.len {
            // The hook needs the body: the client is asked for it now, as by a proxy that reads
            // bodies (the backend's own `100` follows; clients take several).
            let proceed = b"HTTP/1.1 100 Continue\r\n\r\n";
            if !s.send(Direction::Downstream, proceed).await? {
                return Ok(None);
            }
        }
        let (raw, complete) = self.take_whole(s, Side::Client, &req).await?;
        if !complete {
            s.forward(up, &raw).await?;
            return Ok(None);
        }
        let with_host;
        let msg: &[u8] = if self.overwrite_host {
            let host = s.conn.backend.clone();
            with_host = [&rewrite_host(&raw[..req.len], &host)[..], &raw[req.len..]].concat();
            &with_host
        } else {
            &raw
        };
        let out = x.transform(s, up, msg).await?;
        let head = match out.as_deref().map(parse_request) {
            Some(Ok(Some(h))) => h,
            _ => req,
        };
        Ok(s.forward_or(up, msg, out.as_deref()).await?.then_some(head))
    }

    /// After the request: the `between` hook, the response, the `after` hook. Returns whether
    /// the connection may go on.
    async fn answer(
        &self,
        x: &FramedExchange<'_>,
        s: &mut Session<'_>,
        req: &Head,
    ) -> Result<bool, ProtocolError> {
        if !x.between(s).await? {
            x.after(s).await?;
            return Ok(false);
        }
        let keep = self.response(x, s, req, None).await?;
        let go_on = x.after(s).await?;
        Ok(keep && go_on)
    }
}

/// The 50x answers of the `error` behavior, as the original's `_ERRORS` table had them.
const ERRORS: [(u16, &str, &str); 4] = [
    (
        500,
        "Internal Server Error",
        "<p>The server encountered an internal error and was unable to complete your request.  \
         Either the server is overloaded or there is an error in the application.</p>",
    ),
    (
        501,
        "Not Implemented",
        "<p>The server does not support the action requested by the browser.</p>",
    ),
    (
        502,
        "Bad Gateway",
        "<p>The proxy server received an invalid response from an upstream server.</p>",
    ),
    (
        503,
        "Service Unavailable",
        "<p>The server is temporarily unable to service your request due to maintenance \
         downtime or capacity problems.  Please try again later.</p>",
    ),
];

/// Answers set by the embedding program (Python's `vaurien.behaviors.error._ERRORS` table),
/// used instead of [`ERRORS`]; an empty table makes `error` close without answering.
static CUSTOM_ERRORS: RwLock<Option<Arc<[Vec<u8>]>>> = RwLock::new(None);

/// Replaces the answers of the `error` behavior (process-wide); `None` restores the built-in
/// ones.
pub fn set_error_responses(responses: Option<Vec<Vec<u8>>>) {
    *CUSTOM_ERRORS.write().unwrap_or_else(|e| e.into_inner()) = responses.map(Arc::from);
}

/// The 50x answer of the `error` behavior: the original's page (with `\r\n` line ends and a
/// `Content-Length`), or one of the answers set by [`set_error_responses`].
pub fn error_response(rng: &mut SmallRng) -> Vec<u8> {
    let custom = CUSTOM_ERRORS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(table) = custom {
        return match table.len() {
            0 => Vec::new(),
            n => table[rng.random_range(0..n)].clone(),
        };
    }
    let (code, reason, description) = ERRORS[rng.random_range(0..ERRORS.len())];
    let body = format!(
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\r\n\
         <title>{code} {reason}</title>\r\n<h1>{reason}</h1>\r\n{description}\r\n"
    );
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/html; charset=UTF-8\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl Framed for Http {
    const NAME: &'static str = "http";
    const HELP: &'static str = "HTTP/1.1: one request and its response per exchange";
    type Options = HttpOptions;
    /// Bytes nobody asked for (a 408 before the backend closes): passed on as they are.
    type Unasked = Chunk;

    fn new(common: &CommonOptions, own: HttpOptions) -> Self {
        Http {
            buffer: common.read_size(),
            stay: common.keep_alive && common.reuse_socket,
            overwrite_host: own.overwrite_host_header,
        }
    }

    fn mode(&self, _stay_connected: bool) -> Mode {
        Mode::Exchanges {
            stay: self.stay,
            drain: false,
        }
    }

    fn frame_len(&self, buf: &[u8], dir: Direction) -> Option<usize> {
        if dir.is_upstream() {
            request_len(buf)
        } else {
            response_len(buf)
        }
    }

    fn error_reply(&self, rng: &mut SmallRng, _dir: Direction) -> Option<ErrorReply> {
        Some(ErrorReply {
            bytes: error_response(rng),
            close: true,
        })
    }

    /// `error` always answers with a 50x here, as the original did.
    fn errors_in_kind(&self) -> bool {
        true
    }

    async fn exchange(
        &self,
        x: &FramedExchange<'_>,
        s: &mut Session<'_>,
    ) -> Result<bool, ProtocolError> {
        let up = Direction::Upstream;
        if let Some(keep) = x.before(s).await? {
            return Ok(keep);
        }
        let req = match self.read_head(s, Side::Client, "").await? {
            HeadRead::Head(h) => h,
            HeadRead::Eof => {
                x.after(s).await?;
                return Ok(false);
            }
        };
        if x.transforms.up {
            return match self.whole_request(x, s, req).await? {
                Some(req) => self.answer(x, s, &req).await,
                None => {
                    x.after(s).await?;
                    Ok(false)
                }
            };
        }
        let raw = s.client_buf.split_to(req.len);
        let sent = if self.overwrite_host {
            // The backend as configured (a name, for name-based virtual hosts), as the original.
            let host = s.conn.backend.clone();
            s.forward(up, &rewrite_host(&raw, &host)).await?
        } else {
            s.forward(up, &raw).await?
        };
        if !sent {
            return Ok(false);
        }
        let mut early = None;
        if req.expect_continue && req.body != BodyKind::Empty && s.client_buf.is_empty() {
            // The client waits for a 100 before its body (or sends it anyway after a while);
            // the backend may also answer at once with a final status.
            let (client, backend) = (s.client, s.backend);
            let max = self.buffer;
            let backend_first = tokio::select! {
                r = client.read_buf(s.client_buf, max) => { r?; false }
                r = backend.read_buf(s.backend_buf, max) => { r?; true }
                _ = tokio::time::sleep(s.conn.timeout) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no body nor answer").into());
                }
            };
            if backend_first {
                match self.read_head(s, Side::Backend, &req.method).await? {
                    HeadRead::Eof => {
                        x.after(s).await?;
                        return Ok(false);
                    }
                    HeadRead::Head(h) if (100..200).contains(&h.status) && h.status != 101 => {
                        let interim = s.backend_buf.split_to(h.len);
                        if !s.forward(Direction::Downstream, &interim).await? {
                            return Ok(false);
                        }
                    }
                    HeadRead::Head(h) => early = Some(h),
                }
            }
        }
        if let Some(head) = early {
            // A final answer before the body: the body is not sent, so the connection ends.
            self.response(x, s, &req, Some(head)).await?;
            x.after(s).await?;
            return Ok(false);
        }
        let mut body = BodyFramer::new(req.body);
        if pump(s, "http", Side::Client, &mut body, self.buffer, false).await? != Pumped::Done {
            x.after(s).await?;
            return Ok(false);
        }
        self.answer(x, s, &req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_by_length_and_chunks() {
        let r = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET";
        assert_eq!(request_len(r), Some(r.len() - 3));
        let r = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(request_len(r), Some(r.len()));
        for cut in 0..r.len() {
            assert_eq!(request_len(&r[..cut]), None, "cut at {cut}");
        }
        assert_eq!(request_len(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
        assert_eq!(request_len(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn chunk_extensions_and_byte_by_byte() {
        let body = b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\nNEXT";
        let mut f = BodyFramer::new(BodyKind::Chunked);
        let mut at = 0;
        for end in 1..=body.len() {
            let p = f.advance(&body[at..end]).unwrap();
            at += p.consumed;
            if p.done {
                assert_eq!(at, body.len() - 4);
                return;
            }
        }
        panic!("never done");
    }

    #[test]
    fn bodiless_responses() {
        let h = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, BodyKind::Empty);
        for code in ["100 Continue", "204 No Content", "304 Not Modified"] {
            let r = format!("HTTP/1.1 {code}\r\nContent-Length: 10\r\n\r\n");
            let h = parse_response(r.as_bytes(), "GET").unwrap().unwrap();
            assert_eq!(h.body, BodyKind::Empty, "{code}");
        }
        let h = parse_response(b"HTTP/1.0 200 OK\r\n\r\n", "GET")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, BodyKind::UntilClose);
        assert!(!h.keep_alive);
        let h = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "GET",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.body, BodyKind::Chunked);
    }

    #[test]
    fn keep_alive_rules() {
        let h = parse_request(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = parse_request(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = parse_request(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive && h.says_close);
        let h = parse_request(
            b"GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(h.upgrade);
        let h =
            parse_request(b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(h.expect_continue);
    }

    #[test]
    fn rewrites() {
        let head = b"GET / HTTP/1.1\r\nhost: a:1\r\nAccept: */*\r\n\r\n";
        assert_eq!(
            rewrite_host(head, "127.0.0.1:9"),
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1:9\r\nAccept: */*\r\n\r\n".to_vec()
        );
        assert_eq!(
            rewrite_host(b"GET / HTTP/1.0\r\n\r\n", "h:1"),
            b"GET / HTTP/1.0\r\nHost: h:1\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(parse_request(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(
            parse_request(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .is_err()
        );
        assert!(parse_request(b"\x00\x01garbage\r\n\r\n").is_err());
        let mut f = BodyFramer::new(BodyKind::Chunked);
        assert!(f.advance(b"zz\r\n").is_err());
        let mut f = BodyFramer::new(BodyKind::Chunked);
        assert!(f.advance(b"1\r\naXX").is_err());
    }

    #[test]
    fn error_response_is_well_formed() {
        use rand::SeedableRng;
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..8 {
            let r = error_response(&mut rng);
            let h = parse_response(&r, "GET").unwrap().unwrap();
            assert!((500..=503).contains(&h.status));
            assert!(h.says_close);
            assert_eq!(response_len(&r), Some(r.len()));
        }
    }
}
