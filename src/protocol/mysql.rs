//! `mysql`: packets of a 3-byte length and a sequence id (payloads of 16 MiB - 1 continue in
//! the next packet). The server speaks first: its greeting, and any packet it sends that no
//! command asked for (the steps of authentication), is an exchange started by the backend.
//! A command from the client (a packet with sequence id 0) and its whole response are one
//! exchange: OK/ERR, result sets (column count, column definitions, rows, with the classic EOF
//! packets or `CLIENT_DEPRECATE_EOF`'s closing OK, and further results while the server says
//! `SERVER_MORE_RESULTS_EXISTS`), prepared statements, field lists; commands that get no answer
//! (`COM_QUIT`, `COM_STMT_CLOSE`, `COM_STMT_SEND_LONG_DATA`) end once forwarded. Other client
//! packets (the handshake response, authentication data, `LOAD DATA LOCAL` contents) are
//! forwarded alone; the server's answer is then its own exchange. After an SSL request the
//! connection is forwarded raw (TLS). As the original, the connection is always kept alive.
//! Whether EOF packets close a prepared statement's definitions is learned from the client's
//! handshake response (`CLIENT_DEPRECATE_EOF`), so the answer ends where it ends wherever the
//! reads end; a connection whose handshake was not seen guesses from what a read holds.

use rand::rngs::SmallRng;

use super::framing::{complete_len, FrameError, Framed, FramedExchange, Framer, Progress};
use super::{CommonOptions, ErrorReply, ProtocolError};
use crate::base::{Direction, Side};
use crate::behavior::NoOptions;
use crate::link::Session;

/// A payload of this length continues in the next packet.
const MAX_PAYLOAD: usize = 0xff_ffff;
/// Packets up to this size are read whole and looked at; bigger ones are rows (streamed).
const INSPECT: usize = 16 * 1024;

const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const COM_FIELD_LIST: u8 = 0x04;
const COM_STATISTICS: u8 = 0x09;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
const COM_STMT_CLOSE: u8 = 0x19;
const COM_STMT_FETCH: u8 = 0x1c;
const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;
const CLIENT_SSL: u32 = 0x0800;
const CLIENT_PROTOCOL_41: u32 = 0x0200;
const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;

/// What a connection's [`Session::memory`] holds: 0 when nothing is known yet, or whether the client's
/// handshake response asked for `CLIENT_DEPRECATE_EOF` (a client asks only for what the
/// server's greeting offers).
const EOF_CLASSIC: u64 = 1;
const EOF_DEPRECATED: u64 = 2;

pub struct Mysql;

/// The header of the packet at the front of `buf`: (payload length, sequence id).
pub fn header(buf: &[u8]) -> Option<(usize, u8)> {
    let h = buf.get(..4)?;
    Some((
        h[0] as usize | (h[1] as usize) << 8 | (h[2] as usize) << 16,
        h[3],
    ))
}

/// Incremental framer of one logical packet (a payload of 16 MiB - 1 continues in the next
/// packet). Remembers the first packet's sequence id and payload start.
#[derive(Debug, Default)]
pub struct PacketFramer {
    /// Bytes of the current packet's payload still to come.
    left: usize,
    /// The current packet is full size: another one follows.
    more: bool,
    started: bool,
    /// Reading the first packet (continuations are not looked at).
    in_first: bool,
    seq: u8,
    /// The first bytes of the payload (a command byte, capability flags).
    first: Vec<u8>,
    len: usize,
}

impl PacketFramer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn seq(&self) -> u8 {
        self.seq
    }
    /// The first payload byte (the command of a command packet).
    pub fn command(&self) -> Option<u8> {
        self.first.first().copied()
    }
    /// The capability flags of a handshake response (or SSL request): a client packet with
    /// a non-zero sequence id, long enough, that speaks protocol 4.1.
    pub fn capabilities(&self) -> Option<u32> {
        if self.seq == 0 || self.len < 32 || self.first.len() < 4 {
            return None;
        }
        let caps = u32::from_le_bytes([self.first[0], self.first[1], self.first[2], self.first[3]]);
        (caps & CLIENT_PROTOCOL_41 != 0).then_some(caps)
    }
    /// An SSL request: the TLS handshake follows it.
    pub fn is_ssl_request(&self) -> bool {
        self.seq != 0
            && self.len == 32
            && self.first.len() >= 4
            && u32::from_le_bytes([self.first[0], self.first[1], self.first[2], self.first[3]])
                & CLIENT_SSL
                != 0
    }
}

impl Framer for PacketFramer {
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        let mut at = 0;
        loop {
            if self.left > 0 {
                let take = self.left.min(buf.len() - at);
                if self.in_first && self.first.len() < 8 {
                    let want = (8 - self.first.len()).min(take);
                    self.first.extend_from_slice(&buf[at..at + want]);
                }
                at += take;
                self.left -= take;
                if self.left > 0 {
                    return Ok(Progress {
                        consumed: at,
                        done: false,
                    });
                }
                if !self.more {
                    return Ok(Progress {
                        consumed: at,
                        done: true,
                    });
                }
                continue;
            }
            let Some((len, seq)) = header(&buf[at..]) else {
                return Ok(Progress {
                    consumed: at,
                    done: false,
                });
            };
            self.in_first = !self.started;
            if !self.started {
                self.started = true;
                self.seq = seq;
                self.len = len;
            }
            at += 4;
            self.left = len;
            self.more = len == MAX_PAYLOAD;
            if len == 0 && !self.more {
                return Ok(Progress {
                    consumed: at,
                    done: true,
                });
            }
        }
    }
}

/// Where a response is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The first packet of a result (OK, ERR, LOCAL INFILE request, column count).
    First,
    /// Column definitions still to come.
    Columns(u64),
    /// After the column definitions: a classic EOF, or the first row.
    AfterColumns,
    /// Rows, until EOF/OK (0xfe) or ERR.
    Rows,
    /// Field list (`COM_FIELD_LIST`): definitions until EOF.
    FieldList,
    /// A prepared statement's parameter definitions, then `cols` column definitions.
    Params {
        left: u64,
        cols: u64,
    },
    /// Column definitions of a prepared statement.
    PrepColumns(u64),
    /// After the definitions of a prepared statement: an EOF may follow (classic), or not.
    /// Only when the connection's handshake was not seen; otherwise [`State::PrepEofThen`].
    PrepEof {
        cols: u64,
    },
    /// The classic EOF that ends a prepared statement's definitions, then `cols` column
    /// definitions (or the end).
    PrepEofThen {
        cols: u64,
    },
    Done,
}

/// Incremental framer of the whole response to a command.
#[derive(Debug)]
pub struct ResponseFramer {
    command: u8,
    /// Whether EOF packets close definitions: `Some(true)` classic, `Some(false)` with
    /// `CLIENT_DEPRECATE_EOF`, `None` when the handshake was not seen.
    classic_eof: Option<bool>,
    state: State,
    /// Bytes of a big (streamed) packet's payload still to come.
    left: usize,
    /// The streamed packet is full size: a continuation follows.
    more: bool,
}

fn lenenc(p: &[u8]) -> Option<(u64, usize)> {
    match *p.first()? {
        n @ 0..=0xfa => Some((n as u64, 1)),
        0xfc => Some((u16::from_le_bytes(p.get(1..3)?.try_into().ok()?) as u64, 3)),
        0xfd => {
            let b = p.get(1..4)?;
            Some((b[0] as u64 | (b[1] as u64) << 8 | (b[2] as u64) << 16, 4))
        }
        0xfe => Some((u64::from_le_bytes(p.get(1..9)?.try_into().ok()?), 9)),
        _ => None,
    }
}

/// The status flags of an OK packet (header byte 0x00 or 0xfe) or of an EOF packet.
fn status_flags(p: &[u8]) -> u16 {
    if p.len() < 9 && p.first() == Some(&0xfe) {
        // EOF: header, warnings (2), status (2).
        return p.get(3..5).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    }
    let rest = &p[1.min(p.len())..];
    let Some((_, a)) = lenenc(rest) else { return 0 };
    let Some((_, b)) = lenenc(&rest[a..]) else {
        return 0;
    };
    rest.get(a + b..a + b + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xfe) && p.len() < 9
}

fn end_of_result(p: &[u8]) -> State {
    if status_flags(p) & SERVER_MORE_RESULTS_EXISTS != 0 {
        State::First
    } else {
        State::Done
    }
}

impl ResponseFramer {
    pub fn new(command: u8) -> Self {
        Self::with_eof(command, None)
    }

    /// A framer that knows whether the connection uses classic EOF packets.
    pub fn with_eof(command: u8, classic_eof: Option<bool>) -> Self {
        ResponseFramer {
            command,
            classic_eof,
            state: if command == COM_STMT_FETCH {
                State::Rows
            } else {
                State::First
            },
            left: 0,
            more: false,
        }
    }

    /// The next state after a whole (small) packet with payload `p`.
    fn step(&self, p: &[u8]) -> Result<State, FrameError> {
        let head = p.first().copied();
        Ok(match self.state {
            State::First => match head {
                _ if self.command == COM_STATISTICS => State::Done,
                Some(0xff) | None => State::Done,
                Some(0x00) if self.command == COM_STMT_PREPARE => {
                    let word = |i: usize| {
                        p.get(i..i + 2)
                            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as u64)
                    };
                    let (cols, params) = (word(5), word(7));
                    if params > 0 {
                        State::Params { left: params, cols }
                    } else if cols > 0 {
                        State::PrepColumns(cols)
                    } else {
                        State::Done
                    }
                }
                Some(0x00) | Some(0xfe) => end_of_result(p),
                // LOAD DATA LOCAL: the client sends the file next, as its own exchanges.
                Some(0xfb) => State::Done,
                _ if self.command == COM_FIELD_LIST => State::FieldList,
                _ if matches!(self.command, COM_QUERY | COM_STMT_EXECUTE) => {
                    let (n, _) = lenenc(p).ok_or_else(|| FrameError::new("bad column count"))?;
                    if n == 0 {
                        State::Done
                    } else {
                        State::Columns(n)
                    }
                }
                _ => State::Done,
            },
            State::Columns(n) => {
                if head == Some(0xff) {
                    State::Done
                } else if n <= 1 {
                    State::AfterColumns
                } else {
                    State::Columns(n - 1)
                }
            }
            State::AfterColumns => {
                if is_eof(p) {
                    State::Rows
                } else {
                    self.row(p)
                }
            }
            State::Rows => self.row(p),
            State::FieldList => {
                if head == Some(0xff) || is_eof(p) {
                    State::Done
                } else {
                    State::FieldList
                }
            }
            State::Params { left, cols } => {
                if left > 1 {
                    State::Params {
                        left: left - 1,
                        cols,
                    }
                } else {
                    self.after_definitions(cols)
                }
            }
            State::PrepColumns(n) => {
                if n > 1 {
                    State::PrepColumns(n - 1)
                } else {
                    self.after_definitions(0)
                }
            }
            State::PrepEofThen { cols } => {
                if cols > 0 {
                    State::PrepColumns(cols)
                } else {
                    State::Done
                }
            }
            State::PrepEof { cols } => {
                // Only reached with a packet in hand: an EOF, or a column definition.
                if is_eof(p) {
                    if cols > 0 {
                        State::PrepColumns(cols)
                    } else {
                        State::Done
                    }
                } else if cols > 1 {
                    State::PrepColumns(cols - 1)
                } else {
                    State::PrepEof { cols: 0 }
                }
            }
            State::Done => State::Done,
        })
    }

    /// After the last parameter or column definition of a prepared statement (`cols` column
    /// definitions still to come).
    fn after_definitions(&self, cols: u64) -> State {
        match self.classic_eof {
            Some(true) => State::PrepEofThen { cols },
            Some(false) if cols > 0 => State::PrepColumns(cols),
            Some(false) => State::Done,
            None => State::PrepEof { cols },
        }
    }

    /// A packet among rows: ERR and EOF/OK end the result, anything else is a row.
    fn row(&self, p: &[u8]) -> State {
        match p.first() {
            Some(0xff) => State::Done,
            Some(0xfe) if p.len() < MAX_PAYLOAD => end_of_result(p),
            _ => State::Rows,
        }
    }
}

impl Framer for ResponseFramer {
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        let mut at = 0;
        loop {
            let more = Progress {
                consumed: at,
                done: false,
            };
            if self.left > 0 {
                let take = self.left.min(buf.len() - at);
                at += take;
                self.left -= take;
                if self.left > 0 {
                    return Ok(Progress {
                        consumed: at,
                        done: false,
                    });
                }
                continue;
            }
            if self.state == State::Done && !self.more {
                return Ok(Progress {
                    consumed: at,
                    done: true,
                });
            }
            let rest = &buf[at..];
            let Some((len, _)) = header(rest) else {
                if rest.is_empty() {
                    if let State::PrepEof { cols: 0 } = self.state {
                        // Nothing more may come (CLIENT_DEPRECATE_EOF): the response is whole.
                        self.state = State::Done;
                        continue;
                    }
                }
                return Ok(more);
            };
            if self.more || len > INSPECT {
                // A continuation, or a big packet: a row or a definition, streamed through.
                if !self.more && matches!(self.state, State::First) {
                    // A big first packet (a long message): it is the whole response.
                    self.state = State::Done;
                } else if !self.more {
                    self.state = match self.state {
                        State::Columns(n) if n <= 1 => State::AfterColumns,
                        State::Columns(n) => State::Columns(n - 1),
                        State::AfterColumns => State::Rows,
                        s => s,
                    };
                }
                self.more = len == MAX_PAYLOAD;
                self.left = len;
                at += 4;
                continue;
            }
            if rest.len() < 4 + len {
                return Ok(more);
            }
            self.state = self.step(&rest[4..4 + len])?;
            at += 4 + len;
        }
    }
}

/// The length of the first complete packet (with its continuations) in `buf`, if any.
pub fn packet_len(buf: &[u8]) -> Option<usize> {
    complete_len(PacketFramer::new(), buf)
}

/// The length of the whole response to `command` at the front of `buf`, if complete.
pub fn response_len(buf: &[u8], command: u8) -> Option<usize> {
    complete_len(ResponseFramer::new(command), buf)
}

/// A MySQL ERR packet with sequence id `seq`.
pub fn err_packet(seq: u8, code: u16, state: &str, message: &str) -> Vec<u8> {
    let mut payload = vec![0xff];
    payload.extend_from_slice(&code.to_le_bytes());
    payload.push(b'#');
    payload.extend_from_slice(&state.as_bytes()[..5.min(state.len())]);
    payload.extend_from_slice(message.as_bytes());
    let len = payload.len();
    let mut out = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
    out.extend_from_slice(&payload);
    out
}

impl Framed for Mysql {
    const NAME: &'static str = "mysql";
    const HELP: &'static str = "MySQL/MariaDB: one command and its whole response per exchange";
    type Options = NoOptions;
    /// The greeting, and the server's steps of authentication.
    type Unasked = PacketFramer;

    fn new(_: &CommonOptions, _: NoOptions) -> Self {
        Mysql
    }

    fn frame_len(&self, buf: &[u8], _dir: Direction) -> Option<usize> {
        packet_len(buf)
    }

    fn error_reply(&self, _rng: &mut SmallRng, dir: Direction) -> Option<ErrorReply> {
        // Commands have sequence id 0, so their answer has 1; in place of the server's greeting
        // (an exchange the backend starts) the ERR packet is the first packet: 0.
        let seq = if dir.is_upstream() { 1 } else { 0 };
        Some(ErrorReply {
            bytes: err_packet(seq, 1105, "HY000", "vaurien: injected error"),
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
        let mut packet = PacketFramer::new();
        if let Some(keep) = x.request(s, &mut packet).await? {
            return Ok(keep);
        }
        if packet.seq() != 0 {
            if let Some(caps) = packet.capabilities() {
                *s.memory = if caps & CLIENT_DEPRECATE_EOF != 0 {
                    EOF_DEPRECATED
                } else {
                    EOF_CLASSIC
                };
            }
            if packet.is_ssl_request() {
                tracing::debug!("mysql: SSL request; forwarding raw");
                return x.relay(s).await;
            }
            // Part of a conversation the server leads: its answer is its own exchange.
            return x.after(s).await;
        }
        let command = packet.command().unwrap_or(0);
        if command == COM_QUIT {
            // The server closes after COM_QUIT. What it still sends first (the answer to a
            // packet that came in the same write, such as the handshake response's OK) reaches
            // the client before the connection ends.
            loop {
                let pending = s.backend_buf.split();
                if !pending.is_empty() && !s.forward(Direction::Downstream, &pending).await? {
                    break;
                }
                match s.fill(Side::Backend, x.max).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                    Err(e) => return Err(e.into()),
                }
            }
            x.after(s).await?;
            return Ok(false);
        }
        if matches!(command, COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA) {
            return x.after(s).await;
        }
        let classic_eof = match *s.memory {
            EOF_CLASSIC => Some(true),
            EOF_DEPRECATED => Some(false),
            _ => None,
        };
        let mut response = ResponseFramer::with_eof(command, classic_eof);
        if !x.message(s, Side::Backend, &mut response, false).await? {
            return Ok(false);
        }
        x.after(s).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
        out.extend_from_slice(payload);
        out
    }

    fn eof(status: u16) -> Vec<u8> {
        let s = status.to_le_bytes();
        vec![0xfe, 0, 0, s[0], s[1]]
    }

    #[test]
    fn packets() {
        let p = packet(0, b"\x03SELECT 1");
        assert_eq!(packet_len(&p), Some(p.len()));
        assert_eq!(packet_len(&p[..p.len() - 1]), None);
        assert_eq!(packet_len(&[0, 0, 0, 3]), Some(4));
        let mut f = PacketFramer::new();
        f.advance(&p).unwrap();
        assert_eq!(f.command(), Some(COM_QUERY));
        assert_eq!(f.seq(), 0);
    }

    #[test]
    fn ok_and_err() {
        let ok = packet(1, &[0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(response_len(&ok, COM_QUERY), Some(ok.len()));
        let err = err_packet(1, 1105, "HY000", "x");
        assert_eq!(response_len(&err, COM_QUERY), Some(err.len()));
    }

    fn result_set(deprecate_eof: bool, more: bool) -> Vec<u8> {
        let mut r = packet(1, &[2]);
        r.extend(packet(2, b"\x03def\x00\x00\x00\x01a\x00\x0c"));
        r.extend(packet(3, b"\x03def\x00\x00\x00\x01b\x00\x0c"));
        let status = if more { SERVER_MORE_RESULTS_EXISTS } else { 2 };
        if !deprecate_eof {
            r.extend(packet(4, &eof(2)));
        }
        r.extend(packet(5, b"\x011\x012"));
        r.extend(packet(6, b"\xfb\x012"));
        if deprecate_eof {
            let s = status.to_le_bytes();
            r.extend(packet(7, &[0xfe, 0, 0, s[0], s[1], 0, 0]));
        } else {
            r.extend(packet(7, &eof(status)));
        }
        r
    }

    #[test]
    fn result_sets_both_ways() {
        for deprecate in [false, true] {
            let r = result_set(deprecate, false);
            assert_eq!(response_len(&r, COM_QUERY), Some(r.len()), "{deprecate}");
            for cut in 0..r.len() {
                assert_eq!(response_len(&r[..cut], COM_QUERY), None);
            }
            let mut two = result_set(deprecate, true);
            two.extend(packet(8, &[0, 0, 0, 2, 0, 0, 0]));
            assert_eq!(response_len(&two, COM_QUERY), Some(two.len()));
        }
    }

    #[test]
    fn big_rows_stream() {
        let mut r = packet(1, &[1]);
        r.extend(packet(2, b"\x03def\x00\x00\x00\x01a\x00\x0c"));
        r.extend(packet(3, &eof(2)));
        let big = vec![7u8; 100_000];
        r.extend(packet(4, &big));
        r.extend(packet(5, &eof(2)));
        assert_eq!(response_len(&r, COM_QUERY), Some(r.len()));
        let ends = (1..=r.len()).step_by(997).chain([r.len()]);
        assert_eq!(done_at(ResponseFramer::new(COM_QUERY), &r, ends), r.len());
    }

    #[test]
    fn prepare() {
        let mut r = packet(1, &[0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
        r.extend(packet(2, b"\x03def\x00\x00\x00\x01?\x00\x0c"));
        r.extend(packet(3, &eof(2)));
        r.extend(packet(4, b"\x03def\x00\x00\x00\x01a\x00\x0c"));
        r.extend(packet(5, &eof(2)));
        assert_eq!(response_len(&r, COM_STMT_PREPARE), Some(r.len()));
    }

    /// A prepared statement's answer (1 parameter, 1 column), with the classic EOFs or not.
    fn prepare_answer(classic: bool) -> Vec<u8> {
        let mut r = packet(1, &[0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
        r.extend(packet(2, b"\x03def\x00\x00\x00\x01?\x00\x0c"));
        if classic {
            r.extend(packet(3, &eof(2)));
        }
        r.extend(packet(4, b"\x03def\x00\x00\x00\x01a\x00\x0c"));
        if classic {
            r.extend(packet(5, &eof(2)));
        }
        r
    }

    /// Where a framer fed `r` in pieces ending at each of `ends` says the answer is whole.
    fn done_at(mut f: ResponseFramer, r: &[u8], ends: impl Iterator<Item = usize>) -> usize {
        let mut at = 0;
        for end in ends {
            let p = f.advance(&r[at..end]).unwrap();
            at += p.consumed;
            if p.done {
                return at;
            }
        }
        panic!("never done");
    }

    #[test]
    fn prepare_ends_where_it_ends_wherever_the_reads_end() {
        // Once the handshake said which EOFs the connection uses, a read that ends right after
        // the last definition does not end a classic answer before its EOF.
        for classic in [true, false] {
            let r = prepare_answer(classic);
            for cut in 1..r.len() {
                let f = ResponseFramer::with_eof(COM_STMT_PREPARE, Some(classic));
                assert_eq!(
                    done_at(f, &r, [cut, r.len()].into_iter()),
                    r.len(),
                    "{classic} {cut}"
                );
            }
            let f = ResponseFramer::with_eof(COM_STMT_PREPARE, Some(classic));
            assert_eq!(
                done_at(f, &r, 1..=r.len()),
                r.len(),
                "{classic} byte by byte"
            );
        }
        // Without the handshake, a read that ends after the last definition is taken as the
        // end (as before): only a whole classic answer in one read is framed whole.
        let r = prepare_answer(true);
        assert_eq!(response_len(&r, COM_STMT_PREPARE), Some(r.len()));
    }

    #[test]
    fn handshake_response_capabilities() {
        let mut f = PacketFramer::new();
        let mut payload = (CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF)
            .to_le_bytes()
            .to_vec();
        payload.extend([0u8; 40]);
        let p = packet(1, &payload);
        assert!(f.advance(&p).unwrap().done);
        assert_eq!(
            f.capabilities().map(|c| c & CLIENT_DEPRECATE_EOF != 0),
            Some(true)
        );
        // A command (sequence id 0) has none.
        let mut f = PacketFramer::new();
        assert!(f.advance(&packet(0, &payload)).unwrap().done);
        assert_eq!(f.capabilities(), None);
    }

    #[test]
    fn ssl_request() {
        let mut payload = (CLIENT_SSL | 0x200).to_le_bytes().to_vec();
        payload.resize(32, 0);
        let mut f = PacketFramer::new();
        f.advance(&packet(1, &payload)).unwrap();
        assert!(f.is_ssl_request());
    }

    #[test]
    fn err_packet_shape() {
        let e = err_packet(1, 1105, "HY000", "boom");
        assert_eq!(&e[..4], &[13, 0, 0, 1]);
        assert_eq!(e[4], 0xff);
        assert_eq!(&e[5..7], &1105u16.to_le_bytes());
        assert_eq!(&e[7..13], b"#HY000");
        assert_eq!(&e[13..], b"boom");
    }
}
