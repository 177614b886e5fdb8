//! Behavior mixes (`--behavior 20:delay,10:error`) and the seedable generator that picks one
//! behavior per exchange.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{registry, BehaviorError, Fault, Options};

/// Why a `--behavior` spec was refused. The messages are the original Vaurien's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MixError {
    #[error("You need to use percentage:name")]
    Syntax,
    #[error("The percentage needs to be an integer, not {0:?}")]
    Percent(String),
    #[error("{name:?} is an unknown behavior. Pick one of: {known}.")]
    Unknown { name: String, known: String },
    #[error("The behavior total needs to be 100 or less")]
    Total,
    #[error("{0}")]
    Build(String),
    /// A behavior of the mix refused its options (a value out of range, a Python class whose
    /// constructor raised).
    #[error("behavior '{behavior}': {message}")]
    Option { behavior: String, message: String },
}

/// A parsed spec: `(percent, name)` pairs in the order given, dummy not yet filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixSpec {
    pub parts: Vec<(u32, String)>,
}

impl MixSpec {
    /// Parses `PERCENT:NAME[,PERCENT:NAME...]`, checking names against the registry. With
    /// `bare_name_ok`, a lone `NAME` means `100:NAME` (the HTTP API's `{"name": "delay"}`).
    pub fn parse(spec: &str, bare_name_ok: bool) -> Result<Self, MixError> {
        let known = registry().names();
        let mut parts = Vec::new();
        let mut total = 0u32;
        for item in spec.split(',') {
            let item = item.trim();
            let (percent, name) = match item.split_once(':') {
                Some((p, n)) if !n.contains(':') => (p.trim(), n.trim()),
                None if bare_name_ok && !item.is_empty() => ("100", item),
                _ => return Err(MixError::Syntax),
            };
            let percent: u32 = match percent.parse() {
                Ok(p) => p,
                _ => return Err(MixError::Percent(percent.to_string())),
            };
            if !known.iter().any(|k| k == name) {
                return Err(MixError::Unknown {
                    name: name.to_string(),
                    known: known
                        .iter()
                        .map(|k| format!("{k:?}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            total = total.saturating_add(percent);
            if total > 100 {
                return Err(MixError::Total);
            }
            parts.push((percent, name.to_string()));
        }
        Ok(MixSpec { parts })
    }

    /// The names used by the spec (dummy included when the total is under 100).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.parts.iter().map(|(_, n)| n.clone()).collect();
        if self.total() < 100 && !v.iter().any(|n| n == "dummy") {
            v.push("dummy".into());
        }
        v
    }

    pub fn total(&self) -> u32 {
        self.parts.iter().map(|(p, _)| p).sum()
    }
}

/// A mix ready to pick from: cumulative thresholds over 0..100 and one instance per behavior.
pub struct Mix {
    /// The spec as the user gave it (what `GET /behavior` answers).
    pub spec: String,
    /// `(upper bound, name, instance)`, bounds increasing; the last one is 100.
    entries: Vec<(u32, String, Fault)>,
    /// True when every entry is transparent: the engine may take the zero-copy path.
    pub passthrough: bool,
}

impl Mix {
    /// Builds a mix; `options(name)` gives the options for each behavior of the mix.
    pub fn build(
        spec_text: &str,
        spec: &MixSpec,
        options: impl Fn(&str) -> Options,
    ) -> Result<Self, MixError> {
        let mut wanted: Vec<(u32, &str)> =
            spec.parts.iter().map(|(p, n)| (*p, n.as_str())).collect();
        let rest = 100 - spec.total();
        if rest > 0 {
            wanted.push((rest, "dummy"));
        }
        if wanted.iter().all(|(p, _)| *p == 0) {
            // `0:delay` alone: everything goes to dummy.
            wanted = vec![(100, "dummy")];
        }
        let mut entries = Vec::new();
        let mut bound = 0u32;
        for (percent, name) in wanted {
            if percent == 0 {
                continue;
            }
            let kind = registry()
                .get(name)
                .map_err(|e| MixError::Build(e.to_string()))?;
            let instance = kind.build(&options(name)).map_err(|e| match e {
                BehaviorError::BadOption { behavior, message } => {
                    MixError::Option { behavior, message }
                }
                e => MixError::Build(e.to_string()),
            })?;
            bound += percent;
            entries.push((bound, name.to_string(), instance));
        }
        let passthrough = entries.iter().all(|(_, _, b)| b.is_passthrough());
        // The default mix reads as the original answered it: "dummy".
        let spec = match spec_text.trim() {
            "100:dummy" => "dummy".to_string(),
            other => other.to_string(),
        };
        Ok(Mix {
            spec,
            entries,
            passthrough,
        })
    }

    /// The plain `100:dummy` mix.
    pub fn dummy() -> Self {
        let spec = MixSpec::parse("100:dummy", false).expect("dummy is built in");
        Mix::build("dummy", &spec, |_| Options::default()).expect("dummy builds")
    }

    /// Picks the behavior of one exchange from a roll in 0..100.
    pub fn pick(&self, roll: u32) -> (&str, &Fault) {
        let i = self
            .entries
            .iter()
            .position(|(b, _, _)| roll < *b)
            .unwrap_or(self.entries.len() - 1);
        let (_, n, b) = &self.entries[i];
        (n, b)
    }

    /// Where a connection accepted under this mix runs: the first behavior's home that has
    /// one (see [`super::ExchangeHook::home`]), else the engine's runtime (`None`).
    pub fn home(&self) -> Option<tokio::runtime::Handle> {
        self.entries
            .iter()
            .find_map(|(_, _, f)| f.as_hook().and_then(|h| h.home()))
    }

    /// The single behavior when the mix has only one (it is then picked without a roll).
    pub fn single(&self) -> Option<(&str, &Fault)> {
        match self.entries.as_slice() {
            [(_, n, b)] => Some((n, b)),
            _ => None,
        }
    }
}

/// A lock-free, seedable sequence of random numbers shared by a proxy: the n-th draw depends on
/// the seed and n only, so a seeded run picks the same sequence of behaviors.
#[derive(Debug)]
pub struct Chooser {
    seed: u64,
    counter: AtomicU64,
}

impl Chooser {
    /// With `None`, a seed is taken from the OS.
    pub fn new(seed: Option<u64>) -> Self {
        Chooser {
            seed: seed.unwrap_or_else(rand::random),
            counter: AtomicU64::new(0),
        }
    }
    pub fn next_u64(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        splitmix64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
    /// A roll in 0..100 for picking from a mix.
    pub fn roll(&self) -> u32 {
        (self.next_u64() % 100) as u32
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_errors_use_the_original_messages() {
        assert_eq!(MixSpec::parse("delay", false), Err(MixError::Syntax));
        assert_eq!(
            MixSpec::parse("60:delay,50:error", false),
            Err(MixError::Total)
        );
        assert_eq!(
            MixSpec::parse("x:delay", false),
            Err(MixError::Percent("x".into()))
        );
        let e = MixSpec::parse("10:nope", false).unwrap_err().to_string();
        assert!(
            e.starts_with("\"nope\" is an unknown behavior. Pick one of: "),
            "{e}"
        );
        assert!(e.contains("\"delay\""), "{e}");
    }

    #[test]
    fn dummy_may_be_named_with_a_percentage() {
        for s in ["50:dummy", "50:delay,20:dummy", "100:dummy"] {
            let spec = MixSpec::parse(s, false).unwrap();
            let mix = Mix::build(s, &spec, |_| Options::default()).unwrap();
            assert_eq!(mix.pick(99).0, "dummy", "{s}");
        }
    }

    #[test]
    fn picks_follow_the_percentages() {
        let spec = MixSpec::parse("20:delay,30:error", false).unwrap();
        let mix = Mix::build("20:delay,30:error", &spec, |_| Options::default()).unwrap();
        assert_eq!(mix.pick(0).0, "delay");
        assert_eq!(mix.pick(19).0, "delay");
        assert_eq!(mix.pick(20).0, "error");
        assert_eq!(mix.pick(49).0, "error");
        assert_eq!(mix.pick(50).0, "dummy");
        assert!(!mix.passthrough);
        assert!(Mix::dummy().passthrough);
    }

    #[test]
    fn same_seed_same_sequence() {
        let a = Chooser::new(Some(7));
        let b = Chooser::new(Some(7));
        let c = Chooser::new(Some(8));
        let sa: Vec<u32> = (0..50).map(|_| a.roll()).collect();
        let sb: Vec<u32> = (0..50).map(|_| b.roll()).collect();
        let sc: Vec<u32> = (0..50).map(|_| c.roll()).collect();
        assert_eq!(sa, sb);
        assert_ne!(sa, sc);
        let mean = sa.iter().map(|&x| x as f64).sum::<f64>() / 50.0;
        assert!((25.0..75.0).contains(&mean), "{mean}");
    }
}
