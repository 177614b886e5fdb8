//! `smtp`: the server speaks first (its greeting is an exchange started by the backend); then
//! an exchange is one command line and its reply (multi-line replies, `250-...` continued,
//! read whole). `DATA` takes its `354`, the message up to the `.` line and the final reply in
//! one exchange; `BDAT` carries its chunk by length. After a successful `STARTTLS` the
//! connection is forwarded raw (TLS). As the original, the connection is always kept alive.

use rand::rngs::SmallRng;

use super::framing::{complete_len, line, FrameError, Framed, FramedExchange, Framer, Progress};
use super::{CommonOptions, ErrorReply, ProtocolError};
use crate::base::{Direction, Side};
use crate::behavior::NoOptions;
use crate::link::Session;

/// Longest command or reply line accepted (RFC 5321 asks for 512 and 1000 at least).
const MAX_LINE: usize = 64 * 1024;
/// Largest `BDAT` chunk accepted.
const MAX_CHUNK: u64 = 1 << 32;

pub struct Smtp;

/// Incremental framer of one reply: lines `NNN-text` continue it, `NNN text` (or `NNN`) ends it.
#[derive(Debug, Default)]
pub struct ReplyFramer {
    code: Option<u16>,
}

impl ReplyFramer {
    pub fn new() -> Self {
        Self::default()
    }
    /// The reply's code (once its first line is read).
    pub fn code(&self) -> Option<u16> {
        self.code
    }
}

impl Framer for ReplyFramer {
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        let mut at = 0;
        loop {
            let Some((text, n)) = line(&buf[at..], MAX_LINE)? else {
                return Ok(Progress {
                    consumed: at,
                    done: false,
                });
            };
            at += n;
            let digits = text.get(..3).filter(|d| d.iter().all(u8::is_ascii_digit));
            let Some(d) = digits else {
                return Err(FrameError::new("reply line without a code"));
            };
            if self.code.is_none() {
                self.code = std::str::from_utf8(d).ok().and_then(|t| t.parse().ok());
            }
            if text.get(3) != Some(&b'-') {
                return Ok(Progress {
                    consumed: at,
                    done: true,
                });
            }
        }
    }
}

/// Incremental framer of one command line (and the chunk of a `BDAT`).
#[derive(Debug, Default)]
pub struct CommandFramer {
    verb: String,
    /// `BDAT` bytes still to come, once the line is read.
    chunk_left: Option<u64>,
}

impl CommandFramer {
    pub fn new() -> Self {
        Self::default()
    }
    /// The command's verb, upper-cased.
    pub fn verb(&self) -> &str {
        &self.verb
    }
}

impl Framer for CommandFramer {
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        let mut at = 0;
        if self.chunk_left.is_none() {
            let Some((text, n)) = line(buf, MAX_LINE)? else {
                return Ok(Progress::MORE);
            };
            at = n;
            let mut words = text.split(|b| *b == b' ').filter(|w| !w.is_empty());
            let verb = words.next().unwrap_or(b"").to_ascii_uppercase();
            self.verb = String::from_utf8_lossy(&verb).into_owned();
            let chunk = if verb == b"BDAT" {
                words
                    .next()
                    .and_then(|w| std::str::from_utf8(w).ok())
                    .and_then(|t| t.parse::<u64>().ok())
                    .filter(|n| *n <= MAX_CHUNK)
                    .ok_or_else(|| FrameError::new("BDAT without a valid size"))?
            } else {
                0
            };
            self.chunk_left = Some(chunk);
        }
        let left = self.chunk_left.unwrap_or(0);
        let take = left.min((buf.len() - at) as u64);
        self.chunk_left = Some(left - take);
        Ok(Progress {
            consumed: at + take as usize,
            done: left == take,
        })
    }
}

/// Incremental framer of a `DATA` message: up to and including the line holding a lone `.`.
#[derive(Debug)]
pub struct DataFramer {
    line_start: bool,
}

impl Default for DataFramer {
    fn default() -> Self {
        DataFramer { line_start: true }
    }
}

impl DataFramer {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Framer for DataFramer {
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            if rest.is_empty() {
                return Ok(Progress {
                    consumed: at,
                    done: false,
                });
            }
            if self.line_start && rest[0] == b'.' {
                match rest {
                    [b'.'] | [b'.', b'\r'] => {
                        return Ok(Progress {
                            consumed: at,
                            done: false,
                        })
                    }
                    [b'.', b'\r', b'\n', ..] => {
                        return Ok(Progress {
                            consumed: at + 3,
                            done: true,
                        })
                    }
                    [b'.', b'\n', ..] => {
                        return Ok(Progress {
                            consumed: at + 2,
                            done: true,
                        })
                    }
                    _ => {}
                }
            }
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    at += i + 1;
                    self.line_start = true;
                }
                None => {
                    self.line_start = false;
                    return Ok(Progress {
                        consumed: buf.len(),
                        done: false,
                    });
                }
            }
        }
    }
}

/// The length of the first complete command in `buf`, if any.
pub fn command_len(buf: &[u8]) -> Option<usize> {
    complete_len(CommandFramer::new(), buf)
}

/// The length of the first complete reply in `buf`, if any.
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    complete_len(ReplyFramer::new(), buf)
}

/// The length of a `DATA` message (its final `.` line included) at the front of `buf`.
pub fn data_len(buf: &[u8]) -> Option<usize> {
    complete_len(DataFramer::new(), buf)
}

impl Framed for Smtp {
    const NAME: &'static str = "smtp";
    const HELP: &'static str =
        "SMTP: the greeting, then one command and its reply per exchange (DATA whole)";
    type Options = NoOptions;
    /// The greeting (or a 421 before the server closes).
    type Unasked = ReplyFramer;

    fn new(_: &CommonOptions, _: NoOptions) -> Self {
        Smtp
    }

    fn frame_len(&self, buf: &[u8], dir: Direction) -> Option<usize> {
        if dir.is_upstream() {
            command_len(buf)
        } else {
            reply_len(buf)
        }
    }

    fn error_reply(&self, _rng: &mut SmallRng, _dir: Direction) -> Option<ErrorReply> {
        Some(ErrorReply {
            bytes: b"451 4.3.0 vaurien error\r\n".to_vec(),
            close: false,
        })
    }

    fn hooks_each_direction(&self) -> bool {
        true
    }

    async fn exchange(
        &self,
        x: &FramedExchange<'_>,
        s: &mut Session<'_>,
    ) -> Result<bool, ProtocolError> {
        let mut command = CommandFramer::new();
        if let Some(keep) = x.request(s, &mut command).await? {
            return Ok(keep);
        }
        let mut reply = ReplyFramer::new();
        if !x.message(s, Side::Backend, &mut reply, false).await? {
            return Ok(false);
        }
        let code = reply.code().unwrap_or(0);
        match command.verb() {
            "DATA" if code == 354 => {
                let body = x
                    .message(s, Side::Client, &mut DataFramer::new(), false)
                    .await?;
                if !body
                    || !x
                        .message(s, Side::Backend, &mut ReplyFramer::new(), false)
                        .await?
                {
                    return Ok(false);
                }
            }
            "STARTTLS" if (200..300).contains(&code) => return x.relay(s).await,
            _ => {}
        }
        let go_on = x.after(s).await?;
        Ok(go_on && !(command.verb() == "QUIT" && code == 221))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let r = b"250-mail.example\r\n250-SIZE 10\r\n250 HELP\r\n";
        assert_eq!(reply_len(r), Some(r.len()));
        assert_eq!(reply_len(&r[..r.len() - 1]), None);
        assert_eq!(reply_len(b"220 hi\r\n250 x\r\n"), Some(8));
        assert_eq!(reply_len(b"250\r\n"), Some(5));
        let mut f = ReplyFramer::new();
        f.advance(b"354 go\r\n").unwrap();
        assert_eq!(f.code(), Some(354));
        assert!(ReplyFramer::new().advance(b"hello\r\n").is_err());
    }

    #[test]
    fn commands() {
        assert_eq!(command_len(b"EHLO x\r\nMAIL FROM:<a>\r\n"), Some(8));
        assert_eq!(command_len(b"BDAT 3 LAST\r\nabcQUIT\r\n"), Some(16));
        assert_eq!(command_len(b"BDAT 3 LAST\r\nab"), None);
        assert!(CommandFramer::new().advance(b"BDAT x\r\n").is_err());
    }

    #[test]
    fn data_until_the_dot_line() {
        let m = b"Subject: x\r\n\r\n..leading dot\r\nbody.\r\n.\r\nQUIT\r\n";
        assert_eq!(data_len(m), Some(m.len() - 6));
        assert_eq!(data_len(b".\r\n"), Some(3));
        assert_eq!(data_len(b"abc\r\n.\r"), None);
        let mut f = DataFramer::new();
        let mut at = 0;
        for end in 1..=m.len() {
            let p = f.advance(&m[at..end]).unwrap();
            at += p.consumed;
            if p.done {
                assert_eq!(at, m.len() - 6);
                return;
            }
        }
        panic!("never done");
    }
}
