//! The core every other layer builds on: directions and sides of a connection, what a
//! connection knows about itself, fault options, the name → kind registry, counters, the fault
//! event log and the precise timer. Nothing here knows sockets, faults or protocols.

pub mod events;
pub mod metrics;
pub mod options;
pub mod registry;
pub mod timer;

use std::fmt;
use std::time::Duration;

/// Direction of traffic. Toxiproxy calls client→backend "upstream".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Upstream,
    Downstream,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "upstream" => Some(Direction::Upstream),
            "downstream" => Some(Direction::Downstream),
            _ => None,
        }
    }
    /// The side the bytes of this direction come from.
    pub fn source(self) -> Side {
        match self {
            Direction::Upstream => Side::Client,
            Direction::Downstream => Side::Backend,
        }
    }
    /// The side the bytes of this direction go to.
    pub fn dest(self) -> Side {
        match self {
            Direction::Upstream => Side::Backend,
            Direction::Downstream => Side::Client,
        }
    }
    /// The other direction.
    pub fn reverse(self) -> Self {
        match self {
            Direction::Upstream => Direction::Downstream,
            Direction::Downstream => Direction::Upstream,
        }
    }
    /// True for client → backend (the original's `to_backend`).
    pub fn is_upstream(self) -> bool {
        self == Direction::Upstream
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One side of a proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Backend,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Backend => "backend",
        }
    }
    /// The direction of bytes read from this side.
    pub fn outgoing(self) -> Direction {
        match self {
            Side::Client => Direction::Upstream,
            Side::Backend => Direction::Downstream,
        }
    }
    /// The direction of bytes written to this side.
    pub fn incoming(self) -> Direction {
        match self {
            Side::Client => Direction::Downstream,
            Side::Backend => Direction::Upstream,
        }
    }
    /// The other side.
    pub fn other(self) -> Self {
        match self {
            Side::Client => Side::Backend,
            Side::Backend => Side::Client,
        }
    }
}

/// What a socket hook may know of the peer on one side.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    /// The descriptor (for `fileno()`), -1 where there is none.
    pub fd: i64,
    pub addr: Option<std::net::SocketAddr>,
}

/// What a connection knows about itself; shared by every hook of that connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// Unique per process.
    pub id: u64,
    /// The proxy's name (Toxiproxy's proxy name; `vaurien` for the CLI's proxy).
    pub proxy: String,
    /// The backend as configured (`host:port`), e.g. for http's `overwrite_host_header`.
    pub backend: String,
    /// `--timeout`: how long a read may wait.
    pub timeout: Duration,
    /// `--bufsize`: the size of one read.
    pub bufsize: usize,
}

/// Who asks for a change of the active faults or of the proxies (the control API with the
/// client's address, Python, the command line), for the info line each change logs.
pub mod changes {
    tokio::task_local! {
        static BY: String;
    }

    /// Runs `f` (a request of the control API) as a change asked for `by`.
    pub async fn by<F: std::future::Future>(by: String, f: F) -> F::Output {
        BY.scope(by, f).await
    }

    /// Runs `f` (a synchronous call, from Python) as a change asked for `by`.
    #[cfg(feature = "python")]
    pub fn by_sync<R>(by: &str, f: impl FnOnce() -> R) -> R {
        BY.sync_scope(by.to_string(), f)
    }

    /// Who asks for the change being made now.
    pub fn who() -> String {
        BY.try_with(|b| b.clone())
            .unwrap_or_else(|_| "the configuration".to_string())
    }
}
