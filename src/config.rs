//! Configuration: the ini file of the original (`--config`), and the one `resolve` step that
//! merges explicit flags, the file and the defaults into what the server starts with.
//!
//! Precedence (this project's choice, the original did the opposite): an explicit flag wins
//! over the file, the file wins over the defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::behavior::{self, MixSpec, Options};
use crate::protocol;
use crate::proxy::{ProxyConfig, Settings};
use crate::server::ServerConfig;
use crate::settings::{self, Ini, Owner, Values};
pub use crate::telemetry::statsd::Statsd;

/// Errors of the configuration layer.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    Read { path: String, message: String },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("config file {path}: environment variable ${{{var}}} is not set")]
    Env { path: String, var: String },
    #[error("{0}")]
    Plugin(String),
}

/// What one source gave (the flags, or the ini file).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Given {
    /// The settings given (the rows of [`settings::FLAGS`]); what is absent was not given.
    pub values: Values,
    /// `behavior name → option name → value as text`.
    pub behavior_options: BTreeMap<String, BTreeMap<String, String>>,
    /// `protocol name → option name → value as text`.
    pub protocol_options: BTreeMap<String, BTreeMap<String, String>>,
    /// `[behavior:NAME] callable = module.Class` entries (loaded by the Python module).
    pub behavior_callables: BTreeMap<String, String>,
    /// `[protocol:NAME] callable = module.Class` entries.
    pub protocol_callables: BTreeMap<String, String>,
    /// What the file has that is ignored (unknown keys and sections), to log as warnings.
    pub warnings: Vec<String>,
}

/// Everything a `vaurien` process starts with.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub server: ServerConfig,
    /// False when `--http` is given without an explicit `--proxy` or `--backend`... never: the
    /// original always started its proxy; kept for the Toxiproxy-only entry point.
    pub log_level: String,
    pub log_output: String,
    pub statsd: Option<Statsd>,
    /// What the configuration had that is ignored or replaced (unknown ini keys and sections,
    /// out-of-range values the original accepted): logged as warnings once logging is set up.
    pub warnings: Vec<String>,
}

/// Reads an ini file (following `[DEFAULT] extends = other.ini`, relative to the file).
pub fn read_ini(path: &Path) -> Result<Given, ConfigError> {
    let sections = load_sections(path, 0)?;
    from_sections(path, &sections)
}

/// [`read_ini`] of `text`, as if read from `path` (for the fuzz targets).
#[doc(hidden)]
pub fn parse_ini(path: &Path, text: &str) -> Result<Given, ConfigError> {
    let sections = text_sections(path, text, 0)?;
    from_sections(path, &sections)
}

type Sections = BTreeMap<String, BTreeMap<String, String>>;

/// The most an ini file may hold: reading stops there (`--config /dev/zero` would otherwise
/// read without end).
const MAX_INI_BYTES: u64 = 1 << 20;

/// Reads a whole ini file of at most [`MAX_INI_BYTES`], as UTF-8.
fn read_capped(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_INI_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_INI_BYTES {
        return Err(format!(
            "larger than {} KiB: not an ini file",
            MAX_INI_BYTES >> 10
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

fn load_sections(path: &Path, depth: usize) -> Result<Sections, ConfigError> {
    let shown = path.display().to_string();
    if depth > 16 {
        return Err(ConfigError::Parse {
            path: shown,
            message: "too many levels of 'extends'".into(),
        });
    }
    let text = read_capped(path).map_err(|message| ConfigError::Read {
        path: shown,
        message,
    })?;
    text_sections(path, &text, depth)
}

/// The sections of ini `text` read from `path` (at `depth` levels of `extends`), with the
/// files it extends merged in.
fn text_sections(path: &Path, text: &str, depth: usize) -> Result<Sections, ConfigError> {
    let shown = path.display().to_string();
    let mut ini = configparser::ini::Ini::new_cs();
    ini.set_multiline(true);
    ini.set_comment_symbols(&['#', ';']);
    let map = ini
        .read(text.to_string())
        .map_err(|message| ConfigError::Parse {
            path: shown.clone(),
            message,
        })?;
    let mut own: Sections = BTreeMap::new();
    for (section, values) in map {
        let entry = own.entry(section).or_default();
        for (k, v) in values {
            entry.insert(k, expand_env(&shown, v.unwrap_or_default().trim())?);
        }
    }
    // `extends` may sit in [DEFAULT] (the original) or at the top of the file.
    let extends = ["DEFAULT", "default"]
        .iter()
        .find_map(|s| own.get(*s).and_then(|m| m.get("extends")).cloned());
    let mut merged: Sections = BTreeMap::new();
    // A multi-line `extends` lists several files; the first one listed wins. Each is looked
    // for next to this file, then (as the original did) from the current directory.
    for other in extends.iter().flat_map(|e| e.lines().rev()) {
        let other = other.trim();
        if other.is_empty() {
            continue;
        }
        let near: PathBuf = path
            .parent()
            .map(|d| d.join(other))
            .unwrap_or_else(|| PathBuf::from(other));
        let base = if near.is_file() || !Path::new(other).is_file() {
            near
        } else {
            PathBuf::from(other)
        };
        for (section, values) in load_sections(&base, depth + 1)? {
            merged.entry(section).or_default().extend(values);
        }
    }
    for (section, values) in own {
        let entry = merged.entry(section).or_default();
        for (k, v) in values {
            if k != "extends" {
                entry.insert(k, v);
            }
        }
    }
    // As configparser's defaults: a `[DEFAULT]` key is a key of `[vaurien]` that does not set it.
    let defaults: Vec<(String, String)> = ["DEFAULT", "default"]
        .iter()
        .filter_map(|s| merged.get(*s))
        .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())))
        .filter(|(k, _)| k != "extends")
        .collect();
    if !defaults.is_empty() {
        if let Some(v) = merged.get_mut("vaurien") {
            for (k, val) in defaults {
                v.entry(k).or_insert(val);
            }
        }
    }
    Ok(merged)
}

/// Expands `${VAR}` from the environment; an unset variable is an error.
fn expand_env(path: &str, value: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(ConfigError::Parse {
                path: path.to_string(),
                message: format!("unclosed '${{' in {value:?}"),
            });
        };
        let var = &after[..end];
        match std::env::var(var) {
            Ok(v) => out.push_str(&v),
            Err(_) => {
                return Err(ConfigError::Env {
                    path: path.to_string(),
                    var: var.to_string(),
                })
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Removes one pair of surrounding quotes.
fn unquote(s: &str) -> String {
    let t = s.trim();
    if t.len() >= 2
        && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')))
    {
        t[1..t.len() - 1].to_string()
    } else {
        t.to_string()
    }
}

/// A multi-line value is a list; for a behavior mix its lines are joined with commas.
fn list_joined(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_end_matches(','))
        .collect::<Vec<_>>()
        .join(",")
}

fn from_sections(path: &Path, sections: &Sections) -> Result<Given, ConfigError> {
    let shown = path.display().to_string();
    let bad = |key: &str, v: &str, what: &str| ConfigError::Parse {
        path: shown.clone(),
        message: format!("[vaurien] {key} = {v:?} is not {what}"),
    };
    let mut g = Given::default();
    let vaurien = vaurien_section(&shown, sections, &mut g.warnings)?;
    if let Some(v) = vaurien.as_ref() {
        // The original ignored what it did not know: say so in the log, do not refuse.
        let known: Vec<&str> = settings::ini_keys().collect();
        for key in v.keys() {
            if !known.contains(&key.as_str()) && key != "extends" {
                g.warnings.push(format!(
                    "config file {shown}: unknown key '{key}' in [vaurien] is ignored (known: {})",
                    known.join(", ")
                ));
            }
        }
        for f in settings::settings() {
            let spec = f.spec();
            let Some(raw) = v.get(spec.name) else {
                continue;
            };
            let text = match spec.ini {
                Ini::List => unquote(&list_joined(raw)),
                _ => unquote(raw),
            };
            let value = f.read(&text).map_err(|what| bad(spec.name, raw, what))?;
            g.values.insert(spec, value);
        }
    }
    for (section, values) in sections {
        let (kind, name) = match section.split_once(':') {
            Some((k, n)) => (k.trim(), n.trim()),
            None if ["vaurien", "statsd", "DEFAULT", "default"].contains(&section.as_str()) => {
                continue
            }
            None => ("", section.as_str()),
        };
        let (options, callables) = match Owner::from_section(kind) {
            Some(Owner::Behavior) => (&mut g.behavior_options, &mut g.behavior_callables),
            Some(Owner::Protocol) => (&mut g.protocol_options, &mut g.protocol_callables),
            None => {
                g.warnings.push(format!(
                    "config file {shown}: unknown section [{section}] is ignored (expected [vaurien], [statsd], [behavior:NAME] or [protocol:NAME])"
                ));
                continue;
            }
        };
        for (k, v) in values {
            if k == "callable" {
                callables.insert(name.to_string(), unquote(v));
            } else if k != "extends" {
                options
                    .entry(name.to_string())
                    .or_default()
                    .insert(k.clone(), unquote(v));
            }
        }
    }
    Ok(g)
}

/// The `[vaurien]` settings, with the original's statsd spellings folded in: `statsd.enabled`,
/// `statsd.host`, ... in `[vaurien]`, or `enabled`, `host`, ... in a `[statsd]` section, are
/// `statsd`, `statsd_host`, ...
fn vaurien_section(
    shown: &str,
    sections: &Sections,
    warnings: &mut Vec<String>,
) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
    // The name of the setting the original spelt `statsd.OPTION`.
    let statsd_name = |option: &str| {
        settings::by_original(&format!("statsd.{option}")).map(|f| f.spec().name.to_string())
    };
    let mut out: Option<BTreeMap<String, String>> = None;
    if let Some(v) = sections.get("vaurien") {
        let map = out.get_or_insert_with(BTreeMap::new);
        for (k, val) in v {
            let key = match k.strip_prefix("statsd.") {
                // An unknown one is `statsd_OPTION`, warned about as an unknown key.
                Some(rest) => statsd_name(rest).unwrap_or_else(|| format!("statsd_{rest}")),
                None => k.clone(),
            };
            map.insert(key, val.clone());
        }
    }
    if let Some(v) = sections.get("statsd") {
        let map = out.get_or_insert_with(BTreeMap::new);
        for (k, val) in v {
            let Some(key) = statsd_name(k) else {
                let known: Vec<&str> = settings::settings()
                    .filter_map(|f| f.spec().original?.strip_prefix("statsd."))
                    .collect();
                warnings.push(format!(
                    "config file {shown}: unknown key '{k}' in [statsd] is ignored (known: {})",
                    known.join(", ")
                ));
                continue;
            };
            map.entry(key).or_insert_with(|| val.clone());
        }
    }
    Ok(out)
}

/// Merges the flags over the file over the defaults, and validates everything: addresses,
/// protocol, behavior mix and every option's name and type.
pub fn resolve(flags: &Given, file: &Given) -> Result<Resolved, ConfigError> {
    use settings::{
        Setting, BACKEND, BACKLOG, BEHAVIOR, BUFSIZE, EVENTS_FILE, HTTP, HTTP_HOST, HTTP_PORT,
        LOG_LEVEL, LOG_OUTPUT, POOL_MAX_SIZE, POOL_TIMEOUT, PROTOCOL, PROXY, SEED, STATSD,
        STATSD_HOST, STATSD_PORT, STATSD_PREFIX, STATSD_SAMPLE_RATE, STAY_CONNECTED, SYNC, TIMEOUT,
    };
    let given = flags.values.or(&file.values);
    let proxy = given.value(&PROXY);
    let backend = given.value(&BACKEND);
    for (setting, addr) in [(&PROXY, &proxy), (&BACKEND, &backend)] {
        crate::proxy::check_address(addr)
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", setting.spec.flag())))?;
    }
    let pkind = protocol::registry()
        .get(&given.value(&PROTOCOL))
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let mut warnings = file.warnings.clone();
    if crate::proxy::split_host_port(&backend).is_ok_and(|(host, _)| host.is_empty()) {
        warnings.push(format!(
            "{} {backend}: no host; connections go to this machine (give HOST:PORT)",
            BACKEND.spec.flag()
        ));
    }
    let http = given.value(&HTTP);
    let mut behavior = given.value(&BEHAVIOR);
    // The original ignored --behavior under --http: a mix it would have refused must not stop
    // a command line that worked.
    fn dummy_instead(behavior: &mut String, e: &dyn std::fmt::Display, warnings: &mut Vec<String>) {
        warnings.push(format!(
            "{} {behavior}: {e}; starting with dummy (set a behavior with the control API)",
            BEHAVIOR.spec.flag()
        ));
        *behavior = BEHAVIOR.default_value();
    }
    if let Err(e) = MixSpec::parse(&behavior, false) {
        if !http {
            return Err(ConfigError::Invalid(format!(
                "{} {behavior}: {e}",
                BEHAVIOR.spec.flag()
            )));
        }
        dummy_instead(&mut behavior, &e, &mut warnings);
    }

    // Options: file first, then flags over them. The original never refused what a
    // `[behavior:NAME]` or `[protocol:NAME]` section held (1.9 ignored behavior sections, and a
    // protocol's settings were only read when used): from the file, an unknown name, option or
    // bad value is skipped with a warning; from the flags, it is an error.
    let mut behavior_options: BTreeMap<String, Options> = BTreeMap::new();
    for (from_file, source) in [
        (true, &file.behavior_options),
        (false, &flags.behavior_options),
    ] {
        for (name, opts) in source {
            let kind = match behavior::registry().get(name) {
                Ok(k) => k,
                Err(e) if from_file => {
                    warnings.push(format!("[behavior:{name}] is ignored: {e}"));
                    continue;
                }
                Err(e) => return Err(ConfigError::Invalid(e.to_string())),
            };
            let entry = behavior_options.entry(name.clone()).or_default();
            for (k, v) in opts {
                if let Err(m) = entry.set_text(&kind.options, k, v) {
                    if !from_file {
                        return Err(ConfigError::Invalid(format!("behavior '{name}': {m}")));
                    }
                    warnings.push(format!("[behavior:{name}] {k} = {v} is ignored: {m}"));
                }
            }
        }
    }
    let mut protocol_options = Options::default();
    for (from_file, source) in [
        (true, &file.protocol_options),
        (false, &flags.protocol_options),
    ] {
        for (name, opts) in source {
            let kind = match protocol::registry().get(name) {
                Ok(k) => k,
                Err(e) if from_file => {
                    warnings.push(format!("[protocol:{name}] is ignored: {e}"));
                    continue;
                }
                Err(e) => return Err(ConfigError::Invalid(e.to_string())),
            };
            let mut scratch = Options::default();
            for (k, v) in opts {
                if let Err(m) = scratch.set_text(&kind.options, k, v) {
                    if !from_file {
                        return Err(ConfigError::Invalid(format!("protocol '{name}': {m}")));
                    }
                    warnings.push(format!("[protocol:{name}] {k} = {v} is ignored: {m}"));
                }
            }
            if *name == pkind.name {
                protocol_options.0.extend(scratch.0);
            }
        }
    }
    // Build once, so that a bad option value is reported now and not at the first exchange.
    pkind
        .build(&protocol_options)
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let spec = MixSpec::parse(&behavior, false).expect("checked above");
    if let Err(e) = behavior::Mix::build(&behavior, &spec, |n| {
        behavior_options.get(n).cloned().unwrap_or_default()
    }) {
        if !http {
            return Err(ConfigError::Invalid(e.to_string()));
        }
        dummy_instead(&mut behavior, &e, &mut warnings);
    }

    // The original took any integer for these (a zero or negative one did not stop it from
    // starting): such a value is replaced, with a warning, instead of refused.
    let mut seconds = |setting: &Setting<f64>, least: f64| -> Result<Duration, ConfigError> {
        let (name, v) = (setting.spec.flag(), given.value(setting));
        if v.is_nan() {
            return Err(ConfigError::Invalid(format!(
                "{name} must be a number of seconds, not {v}"
            )));
        }
        if v > 0.0 {
            return Ok(Duration::from_secs_f64(v.min(1e9)));
        }
        warnings.push(format!(
            "{name} {v}: not a positive number of seconds; using {least}"
        ));
        Ok(Duration::from_secs_f64(least))
    };
    let timeout = seconds(&TIMEOUT, 0.001)?;
    let pool_timeout = seconds(&POOL_TIMEOUT, 0.001)?;
    let bufsize = given.value(&BUFSIZE);
    let bufsize = if bufsize < 1 {
        let default = BUFSIZE.default_value();
        warnings.push(format!(
            "{} {bufsize}: not a positive size; using {default}",
            BUFSIZE.spec.flag()
        ));
        default
    } else {
        bufsize
    };
    let settings = Settings {
        timeout,
        stay_connected: given.value(&STAY_CONNECTED),
        pool_max_size: given.value(&POOL_MAX_SIZE).max(0) as usize,
        pool_timeout,
        // listen(2) takes a negative backlog as the largest one.
        backlog: match given.value(&BACKLOG) {
            n if n < 0 => 8192,
            n => n.min(i64::from(u32::MAX)) as u32,
        },
        bufsize: bufsize.min(16 << 20) as usize,
        sync: given.value(&SYNC),
        ..Settings::default()
    };
    let http_host = given.value(&HTTP_HOST);
    let http_port = given.value(&HTTP_PORT);
    let http_addr = if http_host.contains(':') && !http_host.starts_with('[') {
        format!("[{http_host}]:{http_port}")
    } else {
        format!("{http_host}:{http_port}")
    };
    let log_level = given.value(&LOG_LEVEL);
    parse_log_level(&log_level)?;
    let mut sample_rate = given.value(&STATSD_SAMPLE_RATE);
    if !(0.0..=1.0).contains(&sample_rate) {
        // The original sent such a rate as it was; a statsd server then scales counts wrongly.
        let used = if sample_rate < 0.0 { 0.0 } else { 1.0 };
        warnings.push(format!(
            "{} {sample_rate}: not a rate between 0 and 1; using {used}",
            STATSD_SAMPLE_RATE.spec.flag()
        ));
        sample_rate = used;
    }
    let statsd = given.value(&STATSD).then(|| Statsd {
        host: given.value(&STATSD_HOST),
        port: given.value(&STATSD_PORT),
        prefix: given.value(&STATSD_PREFIX),
        sample_rate,
    });
    Ok(Resolved {
        server: ServerConfig {
            proxy: Some(ProxyConfig {
                name: "vaurien".into(),
                listen: proxy,
                backend,
                protocol: pkind.name.clone(),
                protocol_options,
                behavior,
                behavior_options,
                settings,
                seed: given.get(&SEED),
            }),
            http: http.then_some(http_addr),
            seed: given.get(&SEED),
            events_file: given.get(&EVENTS_FILE),
            grace: Duration::from_secs(5),
        },
        log_level,
        log_output: given.value(&LOG_OUTPUT),
        statsd,
        // One line each, whatever they quote (a multi-line ini value, say).
        warnings: warnings.iter().map(|w| w.replace('\n', "\\n")).collect(),
    })
}

/// The original's level names (any case) as a tracing filter directive.
pub fn parse_log_level(level: &str) -> Result<&'static str, ConfigError> {
    settings::log_level_directive(level).map_err(ConfigError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "vaurien-config-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_typed_values_sections_extends_and_env() {
        let d = tempdir();
        write(
            &d,
            "base.ini",
            "[vaurien]\nbackend = base:1\ntimeout = 5\n[behavior:delay]\nsleep = 3\n",
        );
        // SAFETY-free: tests in this module are the only readers of this variable.
        std::env::set_var("VAURIEN_TEST_PORT", "8123");
        let p = write(
            &d,
            "main.ini",
            "[DEFAULT]\nextends = base.ini\n\n[vaurien]\nproxy = \"localhost:${VAURIEN_TEST_PORT}\"\nbehavior = 20:delay\n  10:error\nstay_connected = true\n\n[behavior:delay]\nbefore = false\n\n[protocol:tcp]\nkeep_alive = 1\n",
        );
        let g = read_ini(&p).unwrap();
        let v = &g.values;
        assert_eq!(v.get(&PROXY).as_deref(), Some("localhost:8123"));
        assert_eq!(v.get(&BACKEND).as_deref(), Some("base:1"));
        assert_eq!(v.get(&TIMEOUT), Some(5.0));
        assert_eq!(v.get(&BEHAVIOR).as_deref(), Some("20:delay,10:error"));
        assert_eq!(v.get(&STAY_CONNECTED), Some(true));
        assert_eq!(g.behavior_options["delay"]["sleep"], "3");
        assert_eq!(g.behavior_options["delay"]["before"], "false");
        assert_eq!(g.protocol_options["tcp"]["keep_alive"], "1");
        let r = resolve(&Given::default(), &g).unwrap();
        let pc = r.server.proxy.unwrap();
        assert_eq!(pc.behavior_options["delay"].float("sleep"), 3.0);
        assert!(!pc.behavior_options["delay"].bool("before"));
        assert!(pc.protocol_options.bool("keep_alive"));
    }

    #[test]
    fn the_originals_statsd_spellings_and_unknown_sections() {
        let d = tempdir();
        let p = write(
            &d,
            "dotted.ini",
            "[vaurien]\nstatsd.enabled = true\nstatsd.port = 9125\nstatsd.prefix = app\n",
        );
        let g = read_ini(&p).unwrap();
        assert_eq!(
            (
                g.values.get(&STATSD),
                g.values.get(&STATSD_PORT),
                g.values.get(&STATSD_PREFIX).as_deref()
            ),
            (Some(true), Some(9125), Some("app"))
        );
        let p = write(
            &d,
            "section.ini",
            "[statsd]\nenabled = true\nhost = 127.0.0.1\nsample_rate = 0.5\n",
        );
        let g = read_ini(&p).unwrap();
        assert_eq!(g.values.get(&STATSD), Some(true));
        assert_eq!(g.values.get(&STATSD_HOST).as_deref(), Some("127.0.0.1"));
        assert_eq!(g.values.get(&STATSD_SAMPLE_RATE), Some(0.5));
        // Unknown keys and sections are ignored, as the original did, with a warning.
        let p = write(&d, "badkey.ini", "[statsd]\ncolour = blue\n");
        let g = read_ini(&p).unwrap();
        assert!(
            g.warnings[0].contains("unknown key 'colour' in [statsd]"),
            "{:?}",
            g.warnings
        );
        let p = write(
            &d,
            "foo.ini",
            "[vaurien]\nbackend = a:1\ncolour = red\n[foo]\nx = 1\n",
        );
        let g = read_ini(&p).unwrap();
        assert_eq!(g.values.get(&BACKEND).as_deref(), Some("a:1"));
        let w = g.warnings.join("\n");
        assert!(w.contains("unknown key 'colour' in [vaurien]"), "{w}");
        assert!(w.contains("unknown section [foo]"), "{w}");
        let r = resolve(&Given::default(), &g).unwrap();
        assert_eq!(r.warnings.len(), 2);
    }

    #[test]
    fn what_the_original_did_not_refuse_is_a_warning() {
        let d = tempdir();
        let p = write(
            &d,
            "lenient.ini",
            "[DEFAULT]\ntimeout = 7\n[vaurien]\nbackend = a:1\n[behavior:delay]\nsleep = soon\nnope = 1\n[behavior:nothing]\nx = 1\n[protocol:tcp]\nbuffer = big\n",
        );
        let g = read_ini(&p).unwrap();
        assert_eq!(
            g.values.get(&TIMEOUT),
            Some(7.0),
            "a [DEFAULT] key is a [vaurien] key"
        );
        let r = resolve(&Given::default(), &g).unwrap();
        let w = r.warnings.join("\n");
        for part in [
            "sleep = soon",
            "nope = 1",
            "[behavior:nothing]",
            "buffer = big",
        ] {
            assert!(w.contains(part), "{part} not in {w}");
        }
        // The same from the flags is an error.
        let flags = Given {
            behavior_options: [(
                "delay".to_string(),
                [("sleep".to_string(), "soon".to_string())].into(),
            )]
            .into(),
            ..Given::default()
        };
        assert!(resolve(&flags, &Given::default()).is_err());
        // A bad mix under --http starts with dummy; without --http it is refused.
        let mut flags = Given {
            values: Values::default()
                .with(&BEHAVIOR, "120:delay".into())
                .with(&TIMEOUT, 0.0),
            ..Given::default()
        };
        assert!(resolve(&flags, &Given::default()).is_err());
        flags.values = flags.values.with(&HTTP, true);
        let r = resolve(&flags, &Given::default()).unwrap();
        assert_eq!(r.server.proxy.unwrap().behavior, "100:dummy");
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = Given {
            values: Values::default()
                .with(&BACKEND, "file:1".into())
                .with(&PROXY, "localhost:1".into()),
            ..Given::default()
        };
        let flags = Given {
            values: Values::default().with(&BACKEND, "flag:2".into()),
            ..Given::default()
        };
        let r = resolve(&flags, &file).unwrap();
        let pc = r.server.proxy.unwrap();
        assert_eq!(pc.backend, "flag:2");
        assert_eq!(pc.listen, "localhost:1");
    }

    #[test]
    fn errors_are_one_clear_line() {
        let d = tempdir();
        let p = write(&d, "bad.ini", "[vaurien]\ntimeout = soon\n");
        let e = read_ini(&p).unwrap_err().to_string();
        assert!(e.contains("timeout") && e.contains("not a number"), "{e}");
        let e = read_ini(&d.join("missing.ini")).unwrap_err().to_string();
        assert!(e.starts_with("cannot read config file"), "{e}");
        let p = write(
            &d,
            "env.ini",
            "[vaurien]\nbackend = ${VAURIEN_SURELY_UNSET_VAR}\n",
        );
        let e = read_ini(&p).unwrap_err().to_string();
        assert!(e.contains("VAURIEN_SURELY_UNSET_VAR"), "{e}");
        let flags = Given {
            values: Values::default().with(&BEHAVIOR, "120:delay".into()),
            ..Given::default()
        };
        let e = resolve(&flags, &Given::default()).unwrap_err().to_string();
        assert!(e.contains("100 or less"), "{e}");
        assert!(!e.contains('\n'));
    }
}
