//! `redis`: RESP2 and RESP3. An exchange is one command (inline or multi-bulk, read by its
//! declared lengths, so binary values holding CRLF are fine) and its reply, whatever its type
//! (simple, error, integer, bulk, null, double, boolean, big number, verbatim, arrays, maps,
//! sets, attributes — nested to any depth). RESP3 pushes that arrive before a reply are passed
//! on and the reply is still awaited. Pipelined commands are one exchange each, answered in
//! order. After `(P|S)SUBSCRIBE`, `MONITOR` or a replication handshake the connection is handed
//! over to raw forwarding both ways (the server streams pushes); blocking commands (`BLPOP`,
//! `XREAD`, `WAIT`, ...) wait for their reply without `--timeout`. As the original, the client
//! connection closes after each reply unless `--stay-connected` is given.

use rand::rngs::SmallRng;

use super::framing::{complete_len, line, FrameError, Framed, FramedExchange, Framer, Progress};
use super::{CommonOptions, ErrorReply, Mode, ProtocolError};
use crate::base::{Direction, Side};
use crate::behavior::NoOptions;
use crate::link::Session;

/// Longest inline command or reply line (redis's own inline limit).
const MAX_LINE: usize = 64 * 1024;
/// Deepest nesting of aggregates accepted.
const MAX_DEPTH: usize = 1024;
/// Largest bulk payload accepted (redis's `proto-max-bulk-len` can go up to this).
const MAX_BULK: i64 = 1 << 40;
/// Bytes of the command name kept from a multi-bulk request.
const MAX_NAME: usize = 32;

pub struct Redis;

/// Incremental framer of one RESP value (a reply, or a multi-bulk command).
#[derive(Debug, Default)]
pub struct RespFramer {
    /// Elements still expected by each open aggregate, innermost last.
    stack: Vec<u64>,
    /// Bytes of a bulk payload (its CRLF included) still to come.
    bulk_left: u64,
    /// The type byte of the top-level value, once seen.
    kind: Option<u8>,
    /// Keep the first bulk of the top-level array (a command's name).
    capture: bool,
    /// Bytes of the first bulk still to copy into `first`.
    capture_left: u64,
    first: Vec<u8>,
}

impl RespFramer {
    pub fn new() -> Self {
        Self::default()
    }

    fn capturing() -> Self {
        RespFramer {
            capture: true,
            ..Self::default()
        }
    }

    /// The type byte of the top-level value (`b'>'` for a push), once seen.
    pub fn kind(&self) -> Option<u8> {
        self.kind
    }

    /// One element ended: closes the aggregates it completes. True when the value is complete.
    fn element_done(&mut self) -> bool {
        while let Some(left) = self.stack.last_mut() {
            *left -= 1;
            if *left > 0 {
                return false;
            }
            self.stack.pop();
        }
        true
    }
}

fn parse_int(text: &[u8]) -> Result<i64, FrameError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or_else(|| {
            FrameError::new(format!(
                "bad length {:?}",
                String::from_utf8_lossy(&text[..text.len().min(32)])
            ))
        })
}

impl Framer for RespFramer {
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        let mut at = 0;
        loop {
            if self.bulk_left > 0 {
                let take = self.bulk_left.min((buf.len() - at) as u64) as usize;
                if self.capture_left > 0 {
                    let n = (self.capture_left as usize).min(take);
                    let room = MAX_NAME.saturating_sub(self.first.len());
                    self.first.extend_from_slice(&buf[at..at + n.min(room)]);
                    self.capture_left -= n as u64;
                }
                at += take;
                self.bulk_left -= take as u64;
                if self.bulk_left > 0 {
                    return Ok(Progress {
                        consumed: at,
                        done: false,
                    });
                }
                if self.element_done() {
                    return Ok(Progress {
                        consumed: at,
                        done: true,
                    });
                }
                continue;
            }
            let Some((text, n)) = line(&buf[at..], MAX_LINE)? else {
                return Ok(Progress {
                    consumed: at,
                    done: false,
                });
            };
            let Some((&t, rest)) = text.split_first() else {
                return Err(FrameError::new("empty line where a value was expected"));
            };
            let top_first = self.capture && self.stack.len() == 1 && self.first.is_empty();
            if self.kind.is_none() {
                self.kind = Some(t);
            }
            at += n;
            let complete = match t {
                b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => self.element_done(),
                b'$' | b'!' | b'=' => {
                    let len = parse_int(rest)?;
                    if len == -1 && t == b'$' {
                        self.element_done()
                    } else if !(0..=MAX_BULK).contains(&len) {
                        return Err(FrameError::new(format!("bad bulk length {len}")));
                    } else {
                        if top_first {
                            self.capture_left = len as u64;
                        }
                        self.bulk_left = len as u64 + 2;
                        continue;
                    }
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let len = parse_int(rest)?;
                    if len == -1 && t == b'*' {
                        self.element_done()
                    } else if !(0..=MAX_BULK).contains(&len) {
                        return Err(FrameError::new(format!("bad aggregate length {len}")));
                    } else {
                        let len = len as u64;
                        // A map has a key and a value per entry; an attribute is a map
                        // followed by the value it describes.
                        let count = match t {
                            b'%' => len * 2,
                            b'|' => len * 2 + 1,
                            _ => len,
                        };
                        if count == 0 {
                            self.element_done()
                        } else if self.stack.len() >= MAX_DEPTH {
                            return Err(FrameError::new("aggregates nested too deep"));
                        } else {
                            self.stack.push(count);
                            false
                        }
                    }
                }
                other => {
                    return Err(FrameError::new(format!("unknown type byte 0x{other:02x}")));
                }
            };
            if complete {
                return Ok(Progress {
                    consumed: at,
                    done: true,
                });
            }
        }
    }
}

/// Incremental framer of one command: multi-bulk (`*N` then `$len` arguments) or inline (one
/// line of words). Remembers the command's name.
#[derive(Debug, Default)]
pub struct RequestFramer {
    multi: Option<RespFramer>,
    inline: Option<Vec<u8>>,
}

impl RequestFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The command's name, lower-cased (empty for an empty inline line).
    pub fn command(&self) -> String {
        let raw: &[u8] = match (&self.multi, &self.inline) {
            (Some(m), _) => &m.first,
            (None, Some(name)) => name,
            _ => &[],
        };
        String::from_utf8_lossy(raw).to_ascii_lowercase()
    }

    /// Whether the server answers this command (it ignores empty inline lines).
    pub fn expects_reply(&self) -> bool {
        !(self.multi.is_none() && self.inline.as_ref().is_some_and(|n| n.is_empty()))
    }
}

impl Framer for RequestFramer {
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        if let Some(m) = &mut self.multi {
            return m.advance(buf);
        }
        match buf.first() {
            None => Ok(Progress::MORE),
            Some(b'*') => {
                let mut m = RespFramer::capturing();
                let p = m.advance(buf)?;
                if m.kind().is_some() {
                    self.multi = Some(m);
                }
                Ok(p)
            }
            Some(_) => match line(buf, MAX_LINE)? {
                None => Ok(Progress::MORE),
                Some((text, n)) => {
                    let name = text
                        .split(|b| b.is_ascii_whitespace())
                        .find(|w| !w.is_empty())
                        .unwrap_or(b"");
                    self.inline = Some(name[..name.len().min(MAX_NAME)].to_vec());
                    Ok(Progress {
                        consumed: n,
                        done: true,
                    })
                }
            },
        }
    }
}

/// The length of the first complete command in `buf`, if any.
pub fn request_len(buf: &[u8]) -> Option<usize> {
    complete_len(RequestFramer::new(), buf)
}

/// The length of the first complete reply (any RESP value) in `buf`, if any.
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    complete_len(RespFramer::new(), buf)
}

/// Commands after which the server streams: the connection is forwarded raw from then on.
fn streams(cmd: &str) -> bool {
    matches!(
        cmd,
        "subscribe"
            | "psubscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "punsubscribe"
            | "sunsubscribe"
            | "monitor"
            | "sync"
            | "psync"
    )
}

/// Commands whose reply may rightly take longer than `--timeout`.
fn blocks(cmd: &str) -> bool {
    matches!(
        cmd,
        "blpop"
            | "brpop"
            | "brpoplpush"
            | "blmove"
            | "blmpop"
            | "bzpopmin"
            | "bzpopmax"
            | "bzmpop"
            | "xread"
            | "xreadgroup"
            | "wait"
            | "waitaof"
    )
}

impl Framed for Redis {
    const NAME: &'static str = "redis";
    const HELP: &'static str = "redis (RESP2/RESP3): one command and its reply per exchange";
    type Options = NoOptions;
    /// A push nobody asked for (client tracking), or an error before the server closes.
    type Unasked = RespFramer;

    fn new(_: &CommonOptions, _: NoOptions) -> Self {
        Redis
    }

    fn mode(&self, stay_connected: bool) -> Mode {
        // As the original (which forwarded a whole read and relayed the answer), the commands
        // of a pipeline read in one go are all answered before the connection closes.
        Mode::Exchanges {
            stay: stay_connected,
            drain: true,
        }
    }

    fn frame_len(&self, buf: &[u8], dir: Direction) -> Option<usize> {
        if dir.is_upstream() {
            request_len(buf)
        } else {
            reply_len(buf)
        }
    }

    fn error_reply(&self, _rng: &mut SmallRng, _dir: Direction) -> Option<ErrorReply> {
        Some(ErrorReply {
            bytes: b"-ERR vaurien: injected error\r\n".to_vec(),
            close: false,
        })
    }

    async fn exchange(
        &self,
        x: &FramedExchange<'_>,
        s: &mut Session<'_>,
    ) -> Result<bool, ProtocolError> {
        let mut request = RequestFramer::new();
        if let Some(keep) = x.request(s, &mut request).await? {
            return Ok(keep);
        }
        let cmd = request.command();
        if !request.expects_reply() {
            return x.after(s).await;
        }
        if streams(&cmd) {
            tracing::debug!(command = %cmd, "redis: the server streams from now on; forwarding raw");
            return x.relay(s).await;
        }
        let wait = blocks(&cmd);
        loop {
            let mut reply = RespFramer::new();
            if !x.message(s, Side::Backend, &mut reply, wait).await? {
                return Ok(false);
            }
            // A RESP3 push (an invalidation) may come before the reply: it is passed on.
            if reply.kind() != Some(b'>') {
                break;
            }
        }
        let keep = x.after(s).await?;
        Ok(keep && cmd != "quit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(buf: &[u8]) -> Option<usize> {
        reply_len(buf)
    }

    #[test]
    fn simple_replies() {
        assert_eq!(whole(b"+OK\r\n"), Some(5));
        assert_eq!(whole(b"+OK\r\n+NEXT\r\n"), Some(5));
        assert_eq!(whole(b"-ERR x\r\n"), Some(8));
        assert_eq!(whole(b":42\r\n"), Some(5));
        assert_eq!(whole(b"+OK\r"), None);
        assert_eq!(whole(b""), None);
    }

    #[test]
    fn bulk_with_crlf_inside() {
        let r = b"$6\r\na\r\nb\r\n\r\n";
        assert_eq!(whole(r), Some(r.len()));
        assert_eq!(whole(&r[..r.len() - 1]), None);
        assert_eq!(whole(b"$-1\r\n"), Some(5));
        assert_eq!(whole(b"$0\r\n\r\n"), Some(6));
    }

    #[test]
    fn nested_and_nulls() {
        let r = b"*3\r\n*2\r\n:1\r\n$-1\r\n*-1\r\n*0\r\n";
        assert_eq!(whole(r), Some(r.len()));
        assert_eq!(whole(&r[..r.len() - 2]), None);
    }

    #[test]
    fn resp3_types() {
        for r in [
            &b"_\r\n"[..],
            b",3.14\r\n",
            b"#t\r\n",
            b"(12345678901234567890\r\n",
            b"!5\r\nerror\r\n",
            b"=8\r\ntxt:abcd\r\n",
            b"%2\r\n+a\r\n:1\r\n+b\r\n%0\r\n",
            b"~2\r\n+x\r\n+y\r\n",
            b">3\r\n+message\r\n+ch\r\n$2\r\nhi\r\n",
            b"|1\r\n+ttl\r\n:3\r\n+value\r\n",
        ] {
            assert_eq!(whole(r), Some(r.len()), "{:?}", String::from_utf8_lossy(r));
            assert_eq!(whole(&r[..r.len() - 1]), None);
        }
    }

    #[test]
    fn byte_by_byte_gives_the_same() {
        let r = b"*2\r\n$3\r\nfoo\r\n%1\r\n+k\r\n*1\r\n:1\r\n";
        let mut f = RespFramer::new();
        let mut at = 0;
        let mut done = false;
        for end in 1..=r.len() {
            let p = f.advance(&r[at..end]).unwrap();
            at += p.consumed;
            if p.done {
                done = true;
                assert_eq!(end, r.len());
            }
        }
        assert!(done);
        assert_eq!(at, r.len());
    }

    #[test]
    fn requests() {
        let mut f = RequestFramer::new();
        let r = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n\r\n\r\n\r\n*1\r\n";
        let p = f.advance(r).unwrap();
        assert!(p.done);
        assert_eq!(p.consumed, r.len() - 4);
        assert_eq!(f.command(), "set");
        let mut f = RequestFramer::new();
        assert_eq!(f.advance(b"PING\r\nPING\r\n").unwrap().consumed, 6);
        assert_eq!(f.command(), "ping");
        let mut f = RequestFramer::new();
        assert_eq!(f.advance(b"\r\n").unwrap().consumed, 2);
        assert!(!f.expects_reply());
        assert_eq!(request_len(b"*1\r\n$4\r\nPI"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(RespFramer::new().advance(b"?x\r\n").is_err());
        assert!(RespFramer::new().advance(b"$-5\r\n").is_err());
        assert!(RespFramer::new().advance(b"*abc\r\n").is_err());
        assert!(RespFramer::new().advance(b"\r\n").is_err());
        let long = vec![b'+'; MAX_LINE + 10];
        assert!(RespFramer::new().advance(&long).is_err());
        // Malformed bytes count as one message for behaviors that answer themselves.
        assert_eq!(reply_len(b"?x\r\n"), Some(4));
    }
}
