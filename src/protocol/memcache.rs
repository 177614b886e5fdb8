//! `memcache`: the text protocol. An exchange is one command line (with its data block for
//! `set`/`add`/`replace`/`append`/`prepend`/`cas` and meta `ms`, read by its declared length so
//! it may arrive in pieces and hold CRLF) and its reply: `VALUE ... END` for
//! `get`/`gets`/`gat`/`gats` with any number of keys, `STAT`/`ITEM` lines until `END` for
//! `stats`, a `VA` line and its data for meta `mg`, one line otherwise. A command with
//! `noreply` gets no answer: the exchange ends once it is forwarded; so does `quit`. As the
//! original, the client connection closes after each reply unless `--stay-connected` is given.

use rand::rngs::SmallRng;

use super::framing::{
    complete_len, line, Chunk, FrameError, Framed, FramedExchange, Framer, Progress,
};
use super::{CommonOptions, ErrorReply, ProtocolError};
use crate::base::{Direction, Side};
use crate::behavior::NoOptions;
use crate::link::Session;

/// Longest command or reply line accepted (keys are at most 250 bytes).
const MAX_LINE: usize = 8 * 1024;
/// Largest data block accepted (memcached's item size limit can be raised up to 1 GiB).
const MAX_DATA: u64 = 1 << 30;

pub struct Memcache;

/// What answer a command gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// None (`noreply`, `quit`, a meta command's quiet mode is not handled: see the docs).
    Nothing,
    /// One line.
    Line,
    /// `VALUE` lines each with a data block, until `END` (or an error line).
    Values,
    /// `STAT`/`ITEM`/... lines until `END` (or any other line).
    Stats,
    /// A meta `mg` reply: one line, with a data block when it is `VA <size> ...`.
    Meta,
    /// The server streams from now on (`watch`).
    Stream,
}

/// The data block size of a storage command (`None` when the command has none).
fn data_size(cmd: &[u8], words: &[&[u8]]) -> Result<Option<u64>, FrameError> {
    let at = match cmd {
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => 4,
        b"ms" => 2,
        _ => return Ok(None),
    };
    let Some(w) = words.get(at) else {
        return Err(FrameError::new("storage command without a size"));
    };
    let n = std::str::from_utf8(w)
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|n| *n <= MAX_DATA)
        .ok_or_else(|| FrameError::new("bad data block size"))?;
    Ok(Some(n))
}

fn reply_kind(cmd: &[u8], words: &[&[u8]]) -> Reply {
    if words.last().is_some_and(|w| *w == b"noreply") {
        return Reply::Nothing;
    }
    match cmd {
        b"get" | b"gets" | b"gat" | b"gats" => Reply::Values,
        b"stats" => Reply::Stats,
        b"mg" => Reply::Meta,
        b"quit" => Reply::Nothing,
        b"watch" => Reply::Stream,
        _ => Reply::Line,
    }
}

/// Incremental framer of one command: its line, then its data block if it has one.
#[derive(Debug, Default)]
pub struct RequestFramer {
    /// Data block bytes (its CRLF included) still to come, once the line is read.
    data_left: Option<u64>,
    reply: Option<Reply>,
    command: String,
}

impl RequestFramer {
    pub fn new() -> Self {
        Self::default()
    }
    /// The answer this command gets (once its line is read).
    pub fn reply(&self) -> Reply {
        self.reply.unwrap_or(Reply::Line)
    }
    /// The command's name, lower-cased.
    pub fn command(&self) -> &str {
        &self.command
    }
}

impl Framer for RequestFramer {
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        let mut at = 0;
        if self.data_left.is_none() {
            let Some((text, n)) = line(buf, MAX_LINE)? else {
                return Ok(Progress::MORE);
            };
            let words: Vec<&[u8]> = text
                .split(|b| *b == b' ' || *b == b'\t')
                .filter(|w| !w.is_empty())
                .collect();
            let cmd = words
                .first()
                .map(|w| w.to_ascii_lowercase())
                .unwrap_or_default();
            self.data_left = Some(data_size(&cmd, &words)?.map_or(0, |n| n + 2));
            self.reply = Some(reply_kind(&cmd, &words));
            self.command = String::from_utf8_lossy(&cmd).into_owned();
            at = n;
        }
        let left = self.data_left.unwrap_or(0);
        let take = left.min((buf.len() - at) as u64);
        self.data_left = Some(left - take);
        Ok(Progress {
            consumed: at + take as usize,
            done: left == take,
        })
    }
}

/// Incremental framer of one reply of a given kind.
#[derive(Debug)]
pub struct ReplyFramer {
    kind: Reply,
    /// Data block bytes (CRLF included) still to come.
    data_left: u64,
}

impl ReplyFramer {
    pub fn new(kind: Reply) -> Self {
        ReplyFramer { kind, data_left: 0 }
    }
}

fn size_word(words: &[&[u8]], at: usize) -> Result<u64, FrameError> {
    words
        .get(at)
        .and_then(|w| std::str::from_utf8(w).ok())
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|n| *n <= MAX_DATA)
        .ok_or_else(|| FrameError::new("bad VALUE size"))
}

impl Framer for ReplyFramer {
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        let mut at = 0;
        loop {
            if self.data_left > 0 {
                let take = self.data_left.min((buf.len() - at) as u64);
                at += take as usize;
                self.data_left -= take;
                if self.data_left > 0 {
                    return Ok(Progress {
                        consumed: at,
                        done: false,
                    });
                }
                if self.kind == Reply::Meta {
                    return Ok(Progress {
                        consumed: at,
                        done: true,
                    });
                }
            }
            let Some((text, n)) = line(&buf[at..], MAX_LINE)? else {
                return Ok(Progress {
                    consumed: at,
                    done: false,
                });
            };
            at += n;
            let words: Vec<&[u8]> = text
                .split(|b| *b == b' ')
                .filter(|w| !w.is_empty())
                .collect();
            let first = words.first().copied().unwrap_or(b"");
            let done = Progress {
                consumed: at,
                done: true,
            };
            match self.kind {
                Reply::Nothing | Reply::Line | Reply::Stream => return Ok(done),
                Reply::Values => {
                    if first == b"VALUE" {
                        self.data_left = size_word(&words, 3)? + 2;
                    } else {
                        // END, or an error line.
                        return Ok(done);
                    }
                }
                Reply::Stats => {
                    if !matches!(first, b"STAT" | b"ITEM" | b"PREFIX") {
                        return Ok(done);
                    }
                }
                Reply::Meta => {
                    if first == b"VA" {
                        self.data_left = size_word(&words, 1)? + 2;
                    } else {
                        return Ok(done);
                    }
                }
            }
        }
    }
}

/// The length of the first complete command in `buf`, if any.
pub fn request_len(buf: &[u8]) -> Option<usize> {
    complete_len(RequestFramer::new(), buf)
}

/// The length of the first complete reply of kind `kind` in `buf`, if any.
pub fn reply_len(buf: &[u8], kind: Reply) -> Option<usize> {
    complete_len(ReplyFramer::new(kind), buf)
}

impl Framed for Memcache {
    const NAME: &'static str = "memcache";
    const HELP: &'static str = "memcached text protocol: one command and its reply per exchange";
    type Options = NoOptions;
    type Unasked = Chunk;

    fn new(_: &CommonOptions, _: NoOptions) -> Self {
        Memcache
    }

    fn frame_len(&self, buf: &[u8], dir: Direction) -> Option<usize> {
        if dir.is_upstream() {
            request_len(buf)
        } else {
            reply_len(buf, Reply::Line)
        }
    }

    fn error_reply(&self, _rng: &mut SmallRng, _dir: Direction) -> Option<ErrorReply> {
        Some(ErrorReply {
            bytes: b"SERVER_ERROR vaurien\r\n".to_vec(),
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
        let kind = request.reply();
        match kind {
            Reply::Nothing => {
                let go_on = x.after(s).await?;
                return Ok(go_on && request.command() != "quit");
            }
            Reply::Stream => return x.relay(s).await,
            _ => {}
        }
        if !x
            .message(s, Side::Backend, &mut ReplyFramer::new(kind), false)
            .await?
        {
            return Ok(false);
        }
        x.after(s).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_commands_carry_data() {
        let r = b"set k 0 0 5\r\na\r\nbc\r\nget k\r\n";
        assert_eq!(request_len(r), Some(r.len() - 7));
        assert_eq!(request_len(&r[..15]), None);
        let r = b"cas k 0 0 1 99 noreply\r\nx\r\n";
        let mut f = RequestFramer::new();
        let p = f.advance(r).unwrap();
        assert!(p.done && p.consumed == r.len());
        assert_eq!(f.reply(), Reply::Nothing);
        assert_eq!(request_len(b"ms key 2 T0\r\nhi\r\n"), Some(17));
    }

    #[test]
    fn data_in_pieces() {
        let r = b"append k 0 0 10\r\n0123456789\r\n";
        let mut f = RequestFramer::new();
        let mut at = 0;
        for end in 1..=r.len() {
            let p = f.advance(&r[at..end]).unwrap();
            at += p.consumed;
            if p.done {
                assert_eq!(end, r.len());
                return;
            }
        }
        panic!("never done");
    }

    #[test]
    fn replies() {
        let r = b"VALUE a 0 3\r\nEND\r\nVALUE b 1 2 77\r\nhi\r\nEND\r\n";
        assert_eq!(reply_len(r, Reply::Values), Some(r.len()));
        assert_eq!(reply_len(&r[..r.len() - 1], Reply::Values), None);
        assert_eq!(reply_len(b"END\r\n", Reply::Values), Some(5));
        assert_eq!(reply_len(b"SERVER_ERROR x\r\n", Reply::Values), Some(16));
        let r = b"STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n";
        assert_eq!(reply_len(r, Reply::Stats), Some(r.len()));
        assert_eq!(reply_len(b"RESET\r\n", Reply::Stats), Some(7));
        assert_eq!(reply_len(b"STORED\r\nEND\r\n", Reply::Line), Some(8));
        assert_eq!(reply_len(b"VA 2 t\r\nhi\r\n", Reply::Meta), Some(12));
        assert_eq!(reply_len(b"EN\r\n", Reply::Meta), Some(4));
    }

    #[test]
    fn kinds() {
        let kind = |r: &[u8]| {
            let mut f = RequestFramer::new();
            f.advance(r).unwrap();
            f.reply()
        };
        assert_eq!(kind(b"gets a b c\r\n"), Reply::Values);
        assert_eq!(kind(b"GAT 10 a\r\n"), Reply::Values);
        assert_eq!(kind(b"stats items\r\n"), Reply::Stats);
        assert_eq!(kind(b"incr a 1\r\n"), Reply::Line);
        assert_eq!(kind(b"delete a noreply\r\n"), Reply::Nothing);
        assert_eq!(kind(b"quit\r\n"), Reply::Nothing);
        assert_eq!(kind(b"\r\n"), Reply::Line);
    }

    #[test]
    fn malformed() {
        assert!(RequestFramer::new().advance(b"set k 0 0 zz\r\n").is_err());
        assert!(RequestFramer::new().advance(b"set k\r\n").is_err());
        assert!(ReplyFramer::new(Reply::Values)
            .advance(b"VALUE a 0 x\r\n")
            .is_err());
        assert!(RequestFramer::new()
            .advance(&vec![b'a'; MAX_LINE + 1])
            .is_err());
    }
}
