//! What the control plane reads off a running vaurien: Prometheus exposition (`GET /metrics`,
//! with the `prometheus-client` crate) and the statsd sender (with `cadence`). Both read the
//! engine's counters; the engine knows nothing of them.

mod prometheus;
pub mod statsd;

pub use prometheus::{prometheus, CONTENT_TYPE};
