//! placeholder
pub(crate) fn kind() -> super::ProtocolKind { super::ProtocolKind::new("memcache", "", vec![], |o| Ok(std::sync::Arc::new(super::Tcp::new(o.clone())) as std::sync::Arc<dyn super::Protocol>)) }
