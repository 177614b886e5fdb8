//! The flags of the `vaurien` command and the `[vaurien]` keys of its ini file, each declared
//! once, in the manner of ripgrep's flag definitions: one row of [`FLAGS`] per setting gives its
//! name, value type, value name, default, help and the original's spelling of it.
//!
//! That row is all there is: clap's arguments and `--help` ([`Flag::arg`]), what the command
//! line gave ([`Flag::given`]), the ini file's keys, their types and the warning that lists the
//! known ones ([`Flag::read`], [`ini_keys`]), the defaults of the merge ([`Values::value`]), the
//! original's dotted statsd spellings ([`by_original`]) and the Python API (`_vaurien.settings()`:
//! `start_proxy`'s defaults, `vaurien.config.DEFAULT_SETTINGS`) all read it.
//!
//! The name of a setting is its ini key and its Python keyword; its long flag is the name with
//! dashes. Options of behaviors and protocols (`--behavior-NAME-OPTION`) are not here: they come
//! from the registries' schemas.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::PathBuf;

use clap::builder::ValueParser;
use clap::{Arg, ArgAction, ArgMatches};

use crate::behavior::OptionKind;

/// Where an option of a `--behavior-NAME-OPTION` / `--protocol-NAME-OPTION` flag, of a
/// `[behavior:NAME]` / `[protocol:NAME]` section or of a `callable` plugin belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    Behavior,
    Protocol,
}

impl Owner {
    /// The word of the flags (`--behavior-...`), of the ini sections and of the Python API.
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::Behavior => "behavior",
            Owner::Protocol => "protocol",
        }
    }

    /// The owner an ini section's prefix names (`behavior` in `[behavior:delay]`).
    pub fn from_section(prefix: &str) -> Option<Owner> {
        [Owner::Behavior, Owner::Protocol]
            .into_iter()
            .find(|o| o.as_str() == prefix)
    }

    /// The heading of its flags in `--help`.
    pub fn heading(self) -> &'static str {
        match self {
            Owner::Behavior => "Behavior options",
            Owner::Protocol => "Protocol options",
        }
    }
}

/// A setting's value, as one source (the command line or the ini file) gave it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Text(String),
    Path(PathBuf),
    Int(i64),
    Float(f64),
    Port(u16),
    Seed(u64),
}

/// The Rust type of a setting: how clap parses it, how an ini value reads, how it is kept.
pub trait Type: Sized + Clone + Default + Send + Sync + 'static {
    /// What a bad ini value is not, for the error line ("a number").
    const WHAT: &'static str;
    /// clap's parser (the very one `#[derive(Args)]` picks for the type: same messages).
    fn parser() -> ValueParser;
    /// An ini value (unquoted) or a default as written in [`FLAGS`].
    fn from_text(text: &str) -> Option<Self>;
    fn into_value(self) -> Value;
    fn from_value(v: &Value) -> Option<Self>;
}

/// `impl Type`: the type, its [`Value`] variant, what a bad ini value is not, how text reads.
macro_rules! setting_type {
    ($t:ty, $variant:ident, $what:literal, |$text:ident| $from_text:expr) => {
        impl Type for $t {
            const WHAT: &'static str = $what;
            fn parser() -> ValueParser {
                clap::value_parser!($t).into()
            }
            fn from_text($text: &str) -> Option<Self> {
                $from_text
            }
            fn into_value(self) -> Value {
                Value::$variant(self)
            }
            fn from_value(v: &Value) -> Option<Self> {
                match v {
                    Value::$variant(x) => Some(x.clone()),
                    _ => None,
                }
            }
        }
    };
}
setting_type!(i64, Int, "a number", |text| text.parse().ok());
setting_type!(f64, Float, "a number", |text| text.parse().ok());
setting_type!(u16, Port, "a number", |text| text.parse().ok());
setting_type!(u64, Seed, "a number", |text| text.parse().ok());
setting_type!(bool, Bool, "a boolean", |text| OptionKind::Bool
    .parse(text)
    .ok()
    .map(|v| v.as_bool()));
setting_type!(String, Text, "text", |text| Some(text.to_string()));
setting_type!(PathBuf, Path, "a path", |text| Some(PathBuf::from(text)));

/// How the ini file holds a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ini {
    /// Not at all: a flag of the command line only (`--config`, `--version`).
    No,
    /// `[vaurien] NAME = value`.
    Key,
    /// `[vaurien] NAME = value`, a multi-line value being a list joined with commas (a mix).
    List,
}

/// A check of a value where it is given: `Err` is the message.
pub type Check = fn(&str) -> Result<(), String>;

/// What a row says, whatever its value type.
#[derive(Debug)]
pub struct Spec {
    /// The ini key and the Python keyword; the long flag is it with dashes.
    pub name: &'static str,
    pub short: Option<char>,
    /// `None` for a switch (a flag without a value).
    pub value_name: Option<&'static str>,
    /// As `--help` shows it, and as the type reads it.
    pub default: Option<&'static str>,
    pub help: &'static str,
    pub ini: Ini,
    /// Negative numbers are values (`--timeout -1`), as argparse took them.
    pub negative_numbers: bool,
    /// Checked where it is given (argparse's `choices`), before the type's parser.
    pub check: Option<Check>,
    /// The key of the original's `DEFAULT_SETTINGS` (`vaurien.timeout`, `statsd.host`): a
    /// `statsd.*` one is also the original's flag (`--statsd.host`, a visible alias), its
    /// `[vaurien] statsd.host` and `[statsd] host` ini spellings, and a key of the Python
    /// `DEFAULT_SETTINGS`.
    pub original: Option<&'static str>,
    /// The original's default where it differs from ours (Python's `DEFAULT_SETTINGS` keeps it).
    pub original_default: Option<&'static str>,
}

/// One setting, typed.
#[derive(Debug)]
pub struct Setting<T> {
    pub spec: Spec,
    ty: PhantomData<fn() -> T>,
}

impl<T> Setting<T> {
    /// A setting with a value.
    const fn new(name: &'static str, value_name: &'static str, help: &'static str) -> Self {
        Setting {
            spec: Spec {
                name,
                short: None,
                value_name: Some(value_name),
                default: None,
                help,
                ini: Ini::Key,
                negative_numbers: false,
                check: None,
                original: None,
                original_default: None,
            },
            ty: PhantomData,
        }
    }
    const fn default(mut self, default: &'static str) -> Self {
        self.spec.default = Some(default);
        self
    }
    const fn negative_numbers(mut self) -> Self {
        self.spec.negative_numbers = true;
        self
    }
    const fn ini(mut self, ini: Ini) -> Self {
        self.spec.ini = ini;
        self
    }
    const fn original(mut self, key: &'static str) -> Self {
        self.spec.original = Some(key);
        self
    }
    const fn original_default(mut self, default: &'static str) -> Self {
        self.spec.original_default = Some(default);
        self
    }
    const fn short(mut self, c: char) -> Self {
        self.spec.short = Some(c);
        self
    }
}

impl Setting<bool> {
    /// A switch: a bare flag sets it; in the ini file a boolean.
    const fn switch(name: &'static str, help: &'static str) -> Self {
        let mut s = Setting::new(name, "", help);
        s.spec.value_name = None;
        s
    }
}

impl Setting<String> {
    const fn check(mut self, check: Check) -> Self {
        self.spec.check = Some(check);
        self
    }
}

impl<T: Type> Setting<T> {
    /// The default, typed (`T::default()` for none: false for a switch).
    pub fn default_value(&self) -> T {
        self.spec.default.and_then(T::from_text).unwrap_or_default()
    }
}

impl Spec {
    /// The long flag, without dashes in front: `pool-max-size`.
    pub fn long(&self) -> String {
        self.name.replace('_', "-")
    }

    /// The flag as messages name it: `--pool-max-size`.
    pub fn flag(&self) -> String {
        format!("--{}", self.long())
    }

    /// The original's spelling of the flag, where it is not ours (`statsd.sample-rate`).
    pub fn alias(&self) -> Option<String> {
        self.original
            .filter(|k| !k.starts_with("vaurien."))
            .map(|k| k.replace('_', "-"))
    }

    /// The help line of `--help`.
    pub fn help_line(&self) -> String {
        match self.default {
            Some(d) => format!("{} [default: {d}]", self.help),
            None => self.help.to_string(),
        }
    }

    /// A setting (it has an ini key and a place in [`Values`]), not a flag of the command line
    /// only.
    pub fn is_setting(&self) -> bool {
        self.ini != Ini::No
    }

    /// The default as Python reads it written (`30` an int, `1.0` a float); false for a switch.
    pub fn python_default(&self) -> Option<Literal> {
        match self.value_name {
            None => Some(Literal::Bool(false)),
            Some(_) => self.default.map(Literal::read),
        }
    }

    /// The default of the original's `DEFAULT_SETTINGS` key, for Python.
    pub fn python_original_default(&self) -> Option<Literal> {
        self.original_default
            .map(Literal::read)
            .or_else(|| self.python_default())
    }
}

/// A default as a Python value.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Literal {
    fn read(text: &str) -> Literal {
        if let Ok(i) = text.parse() {
            Literal::Int(i)
        } else if let Ok(f) = text.parse() {
            Literal::Float(f)
        } else {
            Literal::Text(text.to_string())
        }
    }
}

/// What every row of [`FLAGS`] answers, whatever its type.
pub trait Flag: Sync {
    fn spec(&self) -> &Spec;
    /// clap's argument.
    fn arg(&self) -> Arg;
    /// What the command line gave (a switch: only when set).
    fn given(&self, m: &ArgMatches) -> Result<Option<Value>, String>;
    /// An ini value, unquoted; `Err` says what it is not.
    fn read(&self, text: &str) -> Result<Value, &'static str>;
}

impl<T: Type> Flag for Setting<T> {
    fn spec(&self) -> &Spec {
        &self.spec
    }

    fn arg(&self) -> Arg {
        let s = &self.spec;
        let mut arg = Arg::new(s.name).long(s.long()).help(s.help_line());
        if let Some(c) = s.short {
            arg = arg.short(c);
        }
        if let Some(alias) = s.alias() {
            arg = arg.visible_alias(alias);
        }
        let Some(value_name) = s.value_name else {
            return arg.action(ArgAction::SetTrue);
        };
        arg = arg
            .action(ArgAction::Set)
            .value_name(value_name)
            .allow_negative_numbers(s.negative_numbers);
        match s.check {
            Some(check) => arg.value_parser(move |v: &str| check(v).map(|()| v.to_string())),
            None => arg.value_parser(T::parser()),
        }
    }

    fn given(&self, m: &ArgMatches) -> Result<Option<Value>, String> {
        let v = m
            .try_get_one::<T>(self.spec.name)
            .map_err(|e| format!("{}: {e}", self.spec.flag()))?;
        // A switch reads false when it is not given: that is "not given".
        Ok(v.cloned()
            .map(T::into_value)
            .filter(|v| *v != Value::Bool(false)))
    }

    fn read(&self, text: &str) -> Result<Value, &'static str> {
        T::from_text(text).map(T::into_value).ok_or(T::WHAT)
    }
}

/// The `--log-level` names (any case), as a tracing filter directive.
pub fn log_level_directive(level: &str) -> Result<&'static str, String> {
    Ok(match level.to_ascii_lowercase().as_str() {
        "critical" | "error" => "error",
        "warning" | "warn" => "warn",
        "info" => "info",
        "debug" => "debug",
        "trace" => "trace",
        _ => {
            return Err(format!(
                "{}: '{level}' is not one of critical, error, warning, info, debug",
                LOG_LEVEL.spec.flag()
            ))
        }
    })
}

pub static PROXY: Setting<String> = Setting::new("proxy", "HOST:PORT", "Where the proxy listens")
    .default("localhost:8000")
    .original("vaurien.proxy");
pub static BACKEND: Setting<String> = Setting::new("backend", "HOST:PORT", "Where it forwards")
    .default("localhost:80")
    .original("vaurien.backend");
pub static PROTOCOL: Setting<String> =
    Setting::new("protocol", "NAME", "One of the registered protocols").default("tcp");
pub static BEHAVIOR: Setting<String> = Setting::new(
    "behavior",
    "SPEC",
    "Comma list of PERCENT:NAME; the rest goes to dummy",
)
.default("100:dummy")
.ini(Ini::List)
.original("vaurien.behavior");
pub static CONFIG: Setting<PathBuf> =
    Setting::new("config", "FILE", "An ini file; explicit flags win over it").ini(Ini::No);
pub static HTTP: Setting<bool> = Setting::switch(
    "http",
    "Start the HTTP control API (vaurien's and Toxiproxy's routes)",
);
pub static HTTP_HOST: Setting<String> =
    Setting::new("http_host", "HOST", "Where the control API listens").default("localhost");
pub static HTTP_PORT: Setting<u16> =
    Setting::new("http_port", "PORT", "Port of the control API").default("8080");
pub static TIMEOUT: Setting<f64> = Setting::new("timeout", "SECONDS", "Socket timeout, in seconds")
    .default("30")
    .negative_numbers()
    .original("vaurien.timeout");
pub static STAY_CONNECTED: Setting<bool> = Setting::switch(
    "stay_connected",
    "Keep the client connection open between exchanges",
)
.original("vaurien.stay_connected");
pub static POOL_MAX_SIZE: Setting<i64> = Setting::new(
    "pool_max_size",
    "N",
    "Most idle backend connections kept for reuse",
)
.default("100")
.negative_numbers()
.original("vaurien.pool_max_size");
pub static POOL_TIMEOUT: Setting<f64> = Setting::new(
    "pool_timeout",
    "SECONDS",
    "Seconds a pooled backend connection stays usable",
)
.default("30")
.negative_numbers()
.original("vaurien.pool_timeout");
pub static SYNC: Setting<bool> = Setting::switch(
    "sync",
    "Accepted for compatibility: backend sockets are always asynchronous here",
)
.original("vaurien.sync");
pub static BACKLOG: Setting<i64> = Setting::new("backlog", "N", "Listen backlog")
    .default("8192")
    .negative_numbers()
    .original("vaurien.backlog");
pub static BUFSIZE: Setting<i64> = Setting::new("bufsize", "BYTES", "Read size, in bytes")
    .default("8192")
    .negative_numbers()
    .original("vaurien.bufsize");
pub static LOG_LEVEL: Setting<String> = Setting::new(
    "log_level",
    "LEVEL",
    "critical, error, warning, info or debug (any case)",
)
.default("info")
.check(|level| log_level_directive(level).map(|_| ()));
pub static LOG_OUTPUT: Setting<String> =
    Setting::new("log_output", "FILE", "'-' for stderr, else a file path").default("-");
pub static SEED: Setting<u64> = Setting::new(
    "seed",
    "N",
    "Seed of every random choice: the same seed gives the same sequence",
);
pub static EVENTS_FILE: Setting<String> = Setting::new(
    "events_file",
    "FILE",
    "Append every fault applied to this file, one JSON object a line",
);
pub static STATSD: Setting<bool> =
    Setting::switch("statsd", "Send statsd counters").original("statsd.enabled");
pub static STATSD_HOST: Setting<String> = Setting::new("statsd_host", "HOST", "statsd host")
    .default("127.0.0.1")
    .original("statsd.host")
    .original_default("localhost");
pub static STATSD_PORT: Setting<u16> = Setting::new("statsd_port", "PORT", "statsd port")
    .default("8125")
    .original("statsd.port");
pub static STATSD_PREFIX: Setting<String> =
    Setting::new("statsd_prefix", "PREFIX", "Prefix of the statsd counters")
        .default("vaurien")
        .original("statsd.prefix");
pub static STATSD_SAMPLE_RATE: Setting<f64> =
    Setting::new("statsd_sample_rate", "RATE", "statsd sample rate")
        .default("1.0")
        .original("statsd.sample_rate");
pub static SHOW_VERSION: Setting<bool> = Setting::switch("version", "Print the version and exit")
    .short('V')
    .ini(Ini::No);

/// Every flag of the command (but the generated option flags), in the order of `--help`.
pub static FLAGS: &[&dyn Flag] = &[
    &PROXY,
    &BACKEND,
    &PROTOCOL,
    &BEHAVIOR,
    &CONFIG,
    &HTTP,
    &HTTP_HOST,
    &HTTP_PORT,
    &TIMEOUT,
    &STAY_CONNECTED,
    &POOL_MAX_SIZE,
    &POOL_TIMEOUT,
    &SYNC,
    &BACKLOG,
    &BUFSIZE,
    &LOG_LEVEL,
    &LOG_OUTPUT,
    &SEED,
    &EVENTS_FILE,
    &STATSD,
    &STATSD_HOST,
    &STATSD_PORT,
    &STATSD_PREFIX,
    &STATSD_SAMPLE_RATE,
    &SHOW_VERSION,
];

/// The settings (rows with an ini key), in order.
pub fn settings() -> impl Iterator<Item = &'static dyn Flag> {
    FLAGS.iter().copied().filter(|f| f.spec().is_setting())
}

/// The `[vaurien]` keys, in order.
pub fn ini_keys() -> impl Iterator<Item = &'static str> {
    settings().map(|f| f.spec().name)
}

/// The setting the original's settings key names (`statsd.host`).
pub fn by_original(key: &str) -> Option<&'static dyn Flag> {
    settings().find(|f| f.spec().original == Some(key))
}

/// Settings as one source gave them (the command line, or the ini file), by name: what is
/// absent was not given, so that "given" and "default" differ.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Values(BTreeMap<&'static str, Value>);

impl Values {
    pub fn insert(&mut self, spec: &Spec, v: Value) {
        self.0.insert(spec.name, v);
    }

    /// `s` with its value: the same as [`Values::insert`], for building by hand.
    pub fn with<T: Type>(mut self, s: &Setting<T>, v: T) -> Self {
        self.insert(&s.spec, v.into_value());
        self
    }

    /// What was given for `s`.
    pub fn get<T: Type>(&self, s: &Setting<T>) -> Option<T> {
        self.0.get(s.spec.name).and_then(T::from_value)
    }

    /// What was given for `s`, else its default.
    pub fn value<T: Type>(&self, s: &Setting<T>) -> T {
        self.get(s).unwrap_or_else(|| s.default_value())
    }

    /// These values, and `other`'s where these have none.
    pub fn or(&self, other: &Values) -> Values {
        let mut out = other.clone();
        out.0.extend(self.0.iter().map(|(k, v)| (*k, v.clone())));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_reads_as_its_type_and_names_are_unique() {
        let mut names = std::collections::BTreeSet::new();
        for f in FLAGS {
            let s = f.spec();
            assert!(names.insert(s.name), "{} twice", s.name);
            if let Some(d) = s.default {
                assert!(f.read(d).is_ok(), "{}: default {d:?}", s.name);
            }
            assert!(
                s.value_name.is_some() || s.default.is_none(),
                "a switch has no default"
            );
        }
        assert_eq!(TIMEOUT.default_value(), 30.0);
        assert!(!HTTP.default_value());
    }

    #[test]
    fn the_originals_spellings() {
        assert_eq!(
            STATSD_SAMPLE_RATE.spec.alias().unwrap(),
            "statsd.sample-rate"
        );
        assert_eq!(TIMEOUT.spec.alias(), None);
        assert_eq!(by_original("statsd.enabled").unwrap().spec().name, "statsd");
        assert_eq!(
            STATSD_HOST.spec.python_original_default(),
            Some(Literal::Text("localhost".into()))
        );
        assert_eq!(TIMEOUT.spec.python_default(), Some(Literal::Int(30)));
        assert_eq!(
            STATSD_SAMPLE_RATE.spec.python_default(),
            Some(Literal::Float(1.0))
        );
        assert_eq!(SYNC.spec.python_default(), Some(Literal::Bool(false)));
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let flags = Values::default().with(&BACKEND, "flag:1".to_string());
        let file = Values::default()
            .with(&BACKEND, "file:1".to_string())
            .with(&TIMEOUT, 5.0);
        let merged = flags.or(&file);
        assert_eq!(merged.value(&BACKEND), "flag:1");
        assert_eq!(merged.value(&TIMEOUT), 5.0);
        assert_eq!(merged.value(&PROXY), "localhost:8000");
        assert_eq!(merged.get(&SEED), None);
    }
}
