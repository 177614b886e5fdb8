#![no_main]
//! The command line: `cli::parse` over an argument vector made of the input split at NUL
//! bytes (`vaurien` in front). It returns a configuration or a parse outcome (help, version,
//! one error line), never panics.
//!
//! It runs in a scratch directory holding small ini files (`base.ini`, `loop.ini`, and
//! `fuzz.ini` which extends `base.ini`) for `--config`; arguments with a `/` are skipped, so
//! that no input makes `--config` read a device.
use libfuzzer_sys::fuzz_target;
use vaurien_fuzz::scratch_dir;

fuzz_target!(|raw: &[u8]| {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        std::env::set_current_dir(scratch_dir()).expect("the scratch directory");
    });
    if raw.contains(&b'/') {
        return;
    }
    let mut args = vec![std::ffi::OsString::from("vaurien")];
    if !raw.is_empty() {
        args.extend(raw.split(|b| *b == 0).map(|a| {
            use std::os::unix::ffi::OsStrExt;
            std::ffi::OsStr::from_bytes(a).to_os_string()
        }));
    }
    let _ = vaurien::cli::parse(args);
});
