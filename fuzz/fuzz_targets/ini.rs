#![no_main]
//! ini files: the text read as `--config` reads a file (sections, `[DEFAULT]`, `extends`,
//! `${VAR}`, multi-line values), then merged over the defaults and checked as the command
//! line does (`config::resolve`). Either a configuration or an error, never a panic.
//!
//! `extends` names files next to the one read: the text is read as `fuzz.ini` in a scratch
//! directory that holds two small files to extend (`base.ini`, and `loop.ini`, which extends
//! itself). Inputs that name a path with a `/` in an `extends` are skipped, so that no input
//! reads a device (`/dev/kmsg` would block).
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vaurien::config::{parse_ini, resolve, Given};
use vaurien_fuzz::scratch_dir;

fn ini_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| scratch_dir().join("fuzz.ini"))
}

fuzz_target!(|raw: &[u8]| {
    let Ok(text) = std::str::from_utf8(raw) else {
        return;
    };
    if text.contains("extends") && text.contains('/') {
        return;
    }
    if let Ok(file) = parse_ini(ini_path(), text) {
        let _ = resolve(&Given::default(), &file);
    }
});
