//! The faults attached to a proxy: its toxics (with their limits in count and time) and the
//! active set a connection loads per exchange.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::base::options::Options;
use crate::base::Direction;
use crate::behavior::{Fault, Mix};

/// A toxic attached to a proxy (Toxiproxy's toxic, or any fault added through that API).
pub struct Toxic {
    /// Unique in the process: keys per-link state.
    pub id: u64,
    pub name: String,
    pub kind: String,
    pub stream: Direction,
    /// The stream exactly as given at creation (Toxiproxy echoes it back).
    pub stream_text: String,
    pub toxicity: f32,
    pub attributes: Options,
    pub fault: Fault,
    /// Optional limits in count and time (vaurien extras; fixed at creation).
    pub limits: Limits,
    /// What a count-limited toxic has handed out: shared by its versions (survives updates).
    pub budget: Arc<Budget>,
}

/// Limits of a toxic in time and count, outside its `attributes` (vaurien extras:
/// `expires_ms` and `count` in the Toxiproxy API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// The toxic removes itself this long after it was added (as a DELETE would).
    pub expires: Option<Duration>,
    /// It applies to the first N connections that see it (exchanges, for behaviors that act
    /// per exchange); later ones pass untouched.
    pub count: Option<u64>,
}

/// The connections and exchanges a count-limited toxic was handed to.
#[derive(Default)]
pub struct Budget {
    conns: Mutex<std::collections::HashSet<u64>>,
    exchanges: AtomicU64,
}

impl Toxic {
    /// Whether the toxic may apply to connection `conn`: always without a `count`; else to the
    /// first `count` connections that ask (a connection gets the same answer every time).
    /// Asked before toxicity is rolled, off the data path (when a link's chain changes).
    pub fn admits(&self, conn: u64) -> bool {
        let Some(n) = self.limits.count else {
            return true;
        };
        let mut conns = self.budget.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.contains(&conn) {
            return true;
        }
        if (conns.len() as u64) < n {
            conns.insert(conn);
            true
        } else {
            false
        }
    }

    /// Takes one exchange from the budget of a per-exchange toxic: false once `count`
    /// exchanges were handed out.
    pub fn take_exchange(&self) -> bool {
        let Some(n) = self.limits.count else {
            return true;
        };
        self.budget
            .exchanges
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u < n).then_some(u + 1)
            })
            .is_ok()
    }
}

/// The active faults of a proxy: swapped whole by the control plane.
pub struct Faults {
    pub mix: Arc<Mix>,
    /// Toxics, upstream ones first, each direction in insertion order.
    pub toxics: Vec<Arc<Toxic>>,
    /// Changes with every swap; links re-roll toxicity when it changes.
    pub generation: u64,
    /// Nothing can touch the bytes: the zero-copy path may be taken.
    pub passthrough: bool,
}

impl Faults {
    pub fn new(mix: Arc<Mix>, toxics: Vec<Arc<Toxic>>, generation: u64) -> Self {
        let passthrough = mix.passthrough && toxics.iter().all(|t| t.fault.is_passthrough());
        Faults {
            mix,
            toxics,
            generation,
            passthrough,
        }
    }
}
