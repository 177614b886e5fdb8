//! The exchange link: what every forwarded, injected or replaced byte goes through on its way
//! to a socket.
//!
//! - `toxic`: the faults attached to a proxy (toxics with their limits) and the active set;
//! - `chain`: the toxic chain of one direction of one connection, and [`chain::Link::send`],
//!   the one writer (toxics, then the sent-bytes counter);
//! - `session`: what a protocol drives during an exchange, and the [`crate::behavior::Wire`]
//!   that faults see of it;
//! - `fast`: the zero-copy path of a link whose chain is empty (nothing can touch the bytes):
//!   `splice(2)` or a plain copy, with the same counters.

pub mod chain;
pub mod fast;
pub mod session;
pub mod toxic;

pub use chain::{Link, Links};
pub use session::Session;
pub use toxic::{Budget, Faults, Limits, Toxic};
