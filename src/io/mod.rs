//! Socket I/O: one side of a connection ([`peer::Peer`]), the kernel pipes of the zero-copy
//! path (`splice`) and busy polling of reads. Nothing here knows faults or protocols.

pub mod busy_poll;
pub mod peer;
#[cfg(target_os = "linux")]
pub mod splice;
