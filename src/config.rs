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

/// Settings as given by one source (the flags, or the ini file): every field optional, so that
/// "given" and "default" differ.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Given {
    pub proxy: Option<String>,
    pub backend: Option<String>,
    pub protocol: Option<String>,
    pub behavior: Option<String>,
    pub http: Option<bool>,
    pub http_host: Option<String>,
    pub http_port: Option<u16>,
    pub timeout: Option<f64>,
    pub stay_connected: Option<bool>,
    pub pool_max_size: Option<i64>,
    pub pool_timeout: Option<f64>,
    pub sync: Option<bool>,
    pub backlog: Option<i64>,
    pub bufsize: Option<i64>,
    pub log_level: Option<String>,
    pub log_output: Option<String>,
    pub seed: Option<u64>,
    pub events_file: Option<String>,
    pub statsd: Option<bool>,
    pub statsd_host: Option<String>,
    pub statsd_port: Option<u16>,
    pub statsd_prefix: Option<String>,
    pub statsd_sample_rate: Option<f64>,
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

/// Values of `[vaurien]` keys, by their ini name.
const KEYS: &[&str] = &[
    "proxy",
    "backend",
    "protocol",
    "behavior",
    "http",
    "http_host",
    "http_port",
    "timeout",
    "stay_connected",
    "pool_max_size",
    "pool_timeout",
    "sync",
    "backlog",
    "bufsize",
    "log_level",
    "log_output",
    "seed",
    "events_file",
    "statsd",
    "statsd_host",
    "statsd_port",
    "statsd_prefix",
    "statsd_sample_rate",
];

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
        for key in v.keys() {
            if !KEYS.contains(&key.as_str()) && key != "extends" {
                g.warnings.push(format!(
                    "config file {shown}: unknown key '{key}' in [vaurien] is ignored (known: {})",
                    KEYS.join(", ")
                ));
            }
        }
        let s = |k: &str| v.get(k).map(|x| unquote(x));
        let b = |k: &str| -> Result<Option<bool>, ConfigError> {
            match v.get(k) {
                None => Ok(None),
                Some(x) => match behavior::OptionKind::Bool.parse(&unquote(x)) {
                    Ok(val) => Ok(Some(val.as_bool())),
                    Err(_) => Err(bad(k, x, "a boolean")),
                },
            }
        };
        fn num<T: std::str::FromStr>(
            v: &BTreeMap<String, String>,
            k: &str,
            bad: &dyn Fn(&str, &str, &str) -> ConfigError,
        ) -> Result<Option<T>, ConfigError> {
            match v.get(k) {
                None => Ok(None),
                Some(x) => unquote(x)
                    .parse::<T>()
                    .map(Some)
                    .map_err(|_| bad(k, x, "a number")),
            }
        }
        g.proxy = s("proxy");
        g.backend = s("backend");
        g.protocol = s("protocol");
        g.behavior = v.get("behavior").map(|x| unquote(&list_joined(x)));
        g.http = b("http")?;
        g.http_host = s("http_host");
        g.http_port = num(v, "http_port", &bad)?;
        g.timeout = num(v, "timeout", &bad)?;
        g.stay_connected = b("stay_connected")?;
        g.pool_max_size = num(v, "pool_max_size", &bad)?;
        g.pool_timeout = num(v, "pool_timeout", &bad)?;
        g.sync = b("sync")?;
        g.backlog = num(v, "backlog", &bad)?;
        g.bufsize = num(v, "bufsize", &bad)?;
        g.log_level = s("log_level");
        g.log_output = s("log_output");
        g.seed = num(v, "seed", &bad)?;
        g.events_file = s("events_file");
        g.statsd = b("statsd")?;
        g.statsd_host = s("statsd_host");
        g.statsd_port = num(v, "statsd_port", &bad)?;
        g.statsd_prefix = s("statsd_prefix");
        g.statsd_sample_rate = num(v, "statsd_sample_rate", &bad)?;
    }
    for (section, values) in sections {
        let (kind, name) = match section.split_once(':') {
            Some((k, n)) => (k.trim(), n.trim()),
            None if ["vaurien", "statsd", "DEFAULT", "default"].contains(&section.as_str()) => {
                continue
            }
            None => ("", section.as_str()),
        };
        let (options, callables) = match kind {
            "behavior" => (&mut g.behavior_options, &mut g.behavior_callables),
            "protocol" => (&mut g.protocol_options, &mut g.protocol_callables),
            _ => {
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
    let statsd_key = |k: &str| match k {
        "enabled" => "statsd".to_string(),
        other => format!("statsd_{other}"),
    };
    let mut out: Option<BTreeMap<String, String>> = None;
    if let Some(v) = sections.get("vaurien") {
        let map = out.get_or_insert_with(BTreeMap::new);
        for (k, val) in v {
            let key = match k.strip_prefix("statsd.") {
                Some(rest) => statsd_key(rest),
                None => k.clone(),
            };
            map.insert(key, val.clone());
        }
    }
    if let Some(v) = sections.get("statsd") {
        let map = out.get_or_insert_with(BTreeMap::new);
        for (k, val) in v {
            let key = statsd_key(k);
            if !KEYS.contains(&key.as_str()) {
                warnings.push(format!(
                    "config file {shown}: unknown key '{k}' in [statsd] is ignored (known: enabled, host, port, prefix, sample_rate)"
                ));
                continue;
            }
            map.entry(key).or_insert_with(|| val.clone());
        }
    }
    Ok(out)
}

/// `a` where given, else `b`.
fn pick<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
    a.clone().or_else(|| b.clone())
}

/// Merges the flags over the file over the defaults, and validates everything: addresses,
/// protocol, behavior mix and every option's name and type.
pub fn resolve(flags: &Given, file: &Given) -> Result<Resolved, ConfigError> {
    let proxy = pick(&flags.proxy, &file.proxy).unwrap_or_else(|| "localhost:8000".into());
    let backend = pick(&flags.backend, &file.backend).unwrap_or_else(|| "localhost:80".into());
    for (what, addr) in [("--proxy", &proxy), ("--backend", &backend)] {
        crate::proxy::check_address(addr)
            .map_err(|e| ConfigError::Invalid(format!("{what}: {e}")))?;
    }
    let protocol = pick(&flags.protocol, &file.protocol).unwrap_or_else(|| "tcp".into());
    let pkind = protocol::registry()
        .get(&protocol)
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let mut warnings = file.warnings.clone();
    let http = pick(&flags.http, &file.http).unwrap_or(false);
    let mut behavior = pick(&flags.behavior, &file.behavior).unwrap_or_else(|| "100:dummy".into());
    if let Err(e) = MixSpec::parse(&behavior, false) {
        if !http {
            return Err(ConfigError::Invalid(format!("--behavior {behavior}: {e}")));
        }
        // The original ignored --behavior under --http: a mix it would have refused must
        // not stop a command line that worked.
        warnings.push(format!(
            "--behavior {behavior}: {e}; starting with dummy (set a behavior with the control API)"
        ));
        behavior = "100:dummy".into();
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
        warnings.push(format!(
            "--behavior {behavior}: {e}; starting with dummy (set a behavior with the control API)"
        ));
        behavior = "100:dummy".into();
    }

    // The original took any integer for these (a zero or negative one did not stop it from
    // starting): such a value is replaced, with a warning, instead of refused.
    let mut seconds =
        |name: &str, v: f64, default: f64, least: f64| -> Result<Duration, ConfigError> {
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
            let _ = default;
            Ok(Duration::from_secs_f64(least))
        };
    let timeout = seconds(
        "--timeout",
        pick(&flags.timeout, &file.timeout).unwrap_or(30.0),
        30.0,
        0.001,
    )?;
    let pool_timeout = seconds(
        "--pool-timeout",
        pick(&flags.pool_timeout, &file.pool_timeout).unwrap_or(30.0),
        30.0,
        0.001,
    )?;
    let defaults = Settings::default();
    let pool_max_size = pick(&flags.pool_max_size, &file.pool_max_size).unwrap_or(100);
    let bufsize = pick(&flags.bufsize, &file.bufsize).unwrap_or(8192);
    if bufsize < 1 {
        warnings.push(format!(
            "--bufsize {bufsize}: not a positive size; using 8192"
        ));
    }
    let settings = Settings {
        timeout,
        stay_connected: pick(&flags.stay_connected, &file.stay_connected).unwrap_or(false),
        pool_max_size: pool_max_size.max(0) as usize,
        pool_timeout,
        // listen(2) takes a negative backlog as the largest one.
        backlog: match pick(&flags.backlog, &file.backlog).unwrap_or(8192) {
            n if n < 0 => 8192,
            n => n.min(i64::from(u32::MAX)) as u32,
        },
        bufsize: if bufsize < 1 {
            8192
        } else {
            bufsize.min(16 << 20) as usize
        },
        sync: pick(&flags.sync, &file.sync).unwrap_or(false),
        ..defaults
    };
    let http_host = pick(&flags.http_host, &file.http_host).unwrap_or_else(|| "localhost".into());
    let http_port = pick(&flags.http_port, &file.http_port).unwrap_or(8080);
    let http_addr = if http_host.contains(':') && !http_host.starts_with('[') {
        format!("[{http_host}]:{http_port}")
    } else {
        format!("{http_host}:{http_port}")
    };
    let log_level = pick(&flags.log_level, &file.log_level).unwrap_or_else(|| "info".into());
    parse_log_level(&log_level)?;
    let statsd = if pick(&flags.statsd, &file.statsd).unwrap_or(false) {
        Some(Statsd {
            host: pick(&flags.statsd_host, &file.statsd_host).unwrap_or_else(|| "127.0.0.1".into()),
            port: pick(&flags.statsd_port, &file.statsd_port).unwrap_or(8125),
            prefix: pick(&flags.statsd_prefix, &file.statsd_prefix)
                .unwrap_or_else(|| "vaurien".into()),
            sample_rate: pick(&flags.statsd_sample_rate, &file.statsd_sample_rate).unwrap_or(1.0),
        })
    } else {
        None
    };
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
                seed: pick(&flags.seed, &file.seed),
            }),
            http: http.then_some(http_addr),
            seed: pick(&flags.seed, &file.seed),
            events_file: pick(&flags.events_file, &file.events_file),
            grace: Duration::from_secs(5),
        },
        log_level,
        log_output: pick(&flags.log_output, &file.log_output).unwrap_or_else(|| "-".into()),
        statsd,
        warnings,
    })
}

/// The original's level names (any case) as a tracing filter directive.
pub fn parse_log_level(level: &str) -> Result<&'static str, ConfigError> {
    Ok(match level.to_ascii_lowercase().as_str() {
        "critical" | "error" => "error",
        "warning" | "warn" => "warn",
        "info" => "info",
        "debug" => "debug",
        "trace" => "trace",
        _ => {
            return Err(ConfigError::Invalid(format!(
                "--log-level: '{level}' is not one of critical, error, warning, info, debug"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(g.proxy.as_deref(), Some("localhost:8123"));
        assert_eq!(g.backend.as_deref(), Some("base:1"));
        assert_eq!(g.timeout, Some(5.0));
        assert_eq!(g.behavior.as_deref(), Some("20:delay,10:error"));
        assert_eq!(g.stay_connected, Some(true));
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
            (g.statsd, g.statsd_port, g.statsd_prefix.as_deref()),
            (Some(true), Some(9125), Some("app"))
        );
        let p = write(
            &d,
            "section.ini",
            "[statsd]\nenabled = true\nhost = 127.0.0.1\nsample_rate = 0.5\n",
        );
        let g = read_ini(&p).unwrap();
        assert_eq!(g.statsd, Some(true));
        assert_eq!(g.statsd_host.as_deref(), Some("127.0.0.1"));
        assert_eq!(g.statsd_sample_rate, Some(0.5));
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
        assert_eq!(g.backend.as_deref(), Some("a:1"));
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
        assert_eq!(g.timeout, Some(7.0), "a [DEFAULT] key is a [vaurien] key");
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
            behavior: Some("120:delay".into()),
            timeout: Some(0.0),
            ..Given::default()
        };
        assert!(resolve(&flags, &Given::default()).is_err());
        flags.http = Some(true);
        let r = resolve(&flags, &Given::default()).unwrap();
        assert_eq!(r.server.proxy.unwrap().behavior, "100:dummy");
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = Given {
            backend: Some("file:1".into()),
            proxy: Some("localhost:1".into()),
            ..Given::default()
        };
        let flags = Given {
            backend: Some("flag:2".into()),
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
            behavior: Some("120:delay".into()),
            ..Given::default()
        };
        let e = resolve(&flags, &Given::default()).unwrap_err().to_string();
        assert!(e.contains("100 or less"), "{e}");
        assert!(!e.contains('\n'));
    }
}
