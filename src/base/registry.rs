//! The name → kind map behind both registries (faults in `behavior`, protocols in
//! `protocol`). Built-ins are registered at first use; Python registers more at run time.

use std::collections::BTreeMap;
use std::sync::RwLock;

/// What a registry holds: a named kind, and the error for a name it does not know.
pub trait Entry: Clone {
    type Error;
    fn name(&self) -> &str;
    /// `known` lists the registered names, comma-separated.
    fn unknown(name: &str, known: String) -> Self::Error;
}

pub struct Registry<K> {
    kinds: RwLock<BTreeMap<String, K>>,
}

impl<K: Entry> Registry<K> {
    pub fn new(builtins: impl IntoIterator<Item = K>) -> Self {
        let r = Registry {
            kinds: RwLock::new(BTreeMap::new()),
        };
        for k in builtins {
            r.register(k);
        }
        r
    }

    /// Adds or replaces a kind.
    pub fn register(&self, kind: K) {
        self.kinds
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kind.name().to_string(), kind);
    }

    pub fn get(&self, name: &str) -> Result<K, K::Error> {
        let found = self
            .kinds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        found.ok_or_else(|| K::unknown(name, self.names().join(", ")))
    }

    /// All names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.kinds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// All kinds, sorted by name.
    pub fn kinds(&self) -> Vec<K> {
        self.kinds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
