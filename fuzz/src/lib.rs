//! What the fuzz targets share: driving a framer over bytes that arrive in pieces, the way
//! the proxy's `pump` drives it, and checking that the pieces do not change the verdict.

use vaurien::protocol::framing::{complete_len, Framer};

/// How framing a message over some bytes ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A complete message of this many bytes.
    Complete(usize),
    /// Bytes that can never be valid (the proxy closes the connection).
    Malformed,
    /// The bytes ran out: this many were consumed (forwarded) so far.
    Incomplete(usize),
}

/// Most messages framed one after the other from one input.
const MAX_MESSAGES: usize = 16;

/// The fuzzer's bytes as the targets read them: two bytes for a split point, one byte that
/// picks a variant (a reply kind, a command, a method), then the stream itself.
pub struct Input<'a> {
    pub cut: usize,
    pub pick: u8,
    pub data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn parse(raw: &'a [u8]) -> Option<Self> {
        let (head, data) = raw.split_at_checked(3)?;
        let cut = u16::from_le_bytes([head[0], head[1]]) as usize % (data.len() + 1);
        Some(Input {
            cut,
            pick: head[2],
            data,
        })
    }
}

/// Frames messages one after the other from `data`, delivered in pieces that end at `ends`
/// (ascending, the last one `data.len()`): a fresh framer per message, the bytes it consumes
/// dropped, the rest kept for the next call, more delivered only when a call consumed nothing
/// (as `framing::pump` does). Checks that no call consumes more than it was given.
pub fn frame_all<F: Framer>(make: &dyn Fn() -> F, data: &[u8], ends: &[usize]) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    let mut at = 0;
    let mut delivered = 0;
    let mut next_end = ends.iter().copied();
    'messages: while verdicts.len() < MAX_MESSAGES {
        let mut framer = make();
        let start = at;
        loop {
            let buf = &data[at..delivered.max(at)];
            let p = match framer.advance(buf) {
                Ok(p) => p,
                Err(_) => {
                    verdicts.push(Verdict::Malformed);
                    break 'messages;
                }
            };
            assert!(
                p.consumed <= buf.len(),
                "consumed {} of {} bytes",
                p.consumed,
                buf.len()
            );
            at += p.consumed;
            if p.done {
                verdicts.push(Verdict::Complete(at - start));
                if at == start || at == data.len() {
                    break 'messages;
                }
                break;
            }
            if p.consumed == 0 {
                match next_end.find(|e| *e > delivered) {
                    Some(e) => delivered = e,
                    None => {
                        verdicts.push(Verdict::Incomplete(at - start));
                        break 'messages;
                    }
                }
            }
        }
    }
    verdicts
}

/// The checks every framer must pass, over `data` split at `cut`:
/// - the same bytes give the same verdicts whole, split at `cut`, and (when short) one byte at
///   a time (up to 64 bytes);
/// - the whole-buffer length helper (`complete_len`, what the behaviors use) agrees with the
///   first verdict.
pub fn check_framer<F: Framer>(name: &str, make: &dyn Fn() -> F, data: &[u8], cut: usize) {
    let whole = check_pieces(name, make, data, cut, |v| Some(v.to_vec()));
    let expected = match whole[0] {
        Verdict::Complete(n) => Some(n),
        Verdict::Malformed => (!data.is_empty()).then_some(data.len()),
        Verdict::Incomplete(_) => None,
    };
    assert_eq!(
        complete_len(make(), data),
        expected,
        "{name}: complete_len disagrees with framing for {:?}",
        show(data)
    );
}

/// The checks for a framer whose message boundaries may depend on where reads end (mysql's
/// response to `COM_STMT_PREPARE`: without the client's capabilities, definitions followed by
/// nothing are taken as the whole response, as under `CLIENT_DEPRECATE_EOF`; a classic EOF that
/// comes in a later read is then passed on as a message of its own). However the bytes come,
/// the same bytes are framed in all, and the stream is malformed or not alike.
pub fn check_framer_bytes<F: Framer>(name: &str, make: &dyn Fn() -> F, data: &[u8], cut: usize) {
    check_pieces(name, make, data, cut, |v| {
        let framed: usize = v
            .iter()
            .map(|x| match x {
                Verdict::Complete(n) | Verdict::Incomplete(n) => *n,
                Verdict::Malformed => 0,
            })
            .sum();
        // The message cap may stop one way of framing before the other: nothing to compare.
        (v.len() < MAX_MESSAGES).then(|| (framed, v.last() == Some(&Verdict::Malformed)))
    });
}

/// Frames `data` whole, split at `cut` and (up to 64 bytes) one byte at a time, and checks
/// that `key` of the verdicts is the same each way (where it is not `None` both ways). Returns
/// the verdicts of the whole.
fn check_pieces<F: Framer, K: PartialEq + std::fmt::Debug>(
    name: &str,
    make: &dyn Fn() -> F,
    data: &[u8],
    cut: usize,
    key: impl Fn(&[Verdict]) -> Option<K>,
) -> Vec<Verdict> {
    let whole = frame_all(make, data, &[data.len()]);
    let mut others = vec![(
        "split at a point",
        frame_all(make, data, &[cut, data.len()]),
    )];
    if data.len() <= 64 {
        let ends: Vec<usize> = (1..=data.len()).collect();
        others.push(("byte by byte", frame_all(make, data, &ends)));
    }
    for (how, v) in others {
        let (Some(a), Some(b)) = (key(&whole), key(&v)) else {
            continue;
        };
        assert_eq!(
            a,
            b,
            "{name}: {how} ({cut}) differs from whole for {:?}: {v:?} vs {whole:?}",
            show(data)
        );
    }
    whole
}

/// Bytes as text for assertion messages.
pub fn show(data: &[u8]) -> String {
    data.escape_ascii().to_string()
}

/// A directory of small ini files for the targets that read ini files (`ini`, `cli`):
/// `base.ini`, `loop.ini` (which extends itself) and `fuzz.ini` (which extends `base.ini`).
pub fn scratch_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vaurien-fuzz-{}", std::process::id()));
    let files = [
        (
            "base.ini",
            "[vaurien]\nbackend = 127.0.0.1:6379\nbehavior = 100:blackout\nproxy = 127.0.0.1:1\n",
        ),
        ("loop.ini", "[DEFAULT]\nextends = loop.ini\n"),
        (
            "fuzz.ini",
            "[DEFAULT]\nextends = base.ini\n\n[vaurien]\nproxy = 127.0.0.1:8000\nprotocol = redis\n\
             [behavior:delay]\nsleep = 2\n",
        ),
    ];
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("a scratch file");
    }
    dir
}
