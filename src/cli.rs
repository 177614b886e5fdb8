//! The `vaurien` command: the original's flags (clap), one `--behavior-NAME-OPTION` and
//! `--protocol-NAME-OPTION` flag per option of every registered behavior and protocol
//! (generated from the registries, so a new behavior gets its flags for free), the ini file,
//! logging, signals and the exit status.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use crate::behavior::{self, OptionKind, OptionSpec};
use crate::config::{self, ConfigError, Given, Resolved};
use crate::protocol;

// The flags that exist whatever is registered. All optional: "given" and "default" differ.
#[derive(Args, Debug, Default)]
pub struct Flags {
    /// Where the proxy listens [default: localhost:8000]
    #[arg(long, value_name = "HOST:PORT")]
    pub proxy: Option<String>,
    /// Where it forwards [default: localhost:80]
    #[arg(long, value_name = "HOST:PORT")]
    pub backend: Option<String>,
    /// One of the registered protocols [default: tcp]
    #[arg(long, value_name = "NAME")]
    pub protocol: Option<String>,
    /// Comma list of PERCENT:NAME; the rest goes to dummy [default: 100:dummy]
    #[arg(long, value_name = "SPEC")]
    pub behavior: Option<String>,
    /// An ini file; explicit flags win over it
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Start the HTTP control API (vaurien's and Toxiproxy's routes)
    #[arg(long, action = ArgAction::SetTrue)]
    pub http: bool,
    /// Where the control API listens [default: localhost]
    #[arg(long, value_name = "HOST")]
    pub http_host: Option<String>,
    /// Port of the control API [default: 8080]
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// Socket timeout, in seconds [default: 30]
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub timeout: Option<f64>,
    /// Keep the client connection open between exchanges
    #[arg(long, action = ArgAction::SetTrue)]
    pub stay_connected: bool,
    /// Most idle backend connections kept for reuse [default: 100]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pool_max_size: Option<i64>,
    /// Seconds a pooled backend connection stays usable [default: 30]
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub pool_timeout: Option<f64>,
    /// Accepted for compatibility: backend sockets are always asynchronous here
    #[arg(long, action = ArgAction::SetTrue)]
    pub sync: bool,
    /// Listen backlog [default: 8192]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub backlog: Option<i64>,
    /// Read size, in bytes [default: 8192]
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub bufsize: Option<i64>,
    /// critical, error, warning, info or debug (any case) [default: info]
    #[arg(long, value_name = "LEVEL", value_parser = log_level_value)]
    pub log_level: Option<String>,
    /// '-' for stderr, else a file path [default: -]
    #[arg(long, value_name = "FILE")]
    pub log_output: Option<String>,
    /// Seed of every random choice: the same seed gives the same sequence
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Append every fault applied to this file, one JSON object a line
    #[arg(long, value_name = "FILE")]
    pub events_file: Option<String>,
    /// Send statsd counters
    #[arg(long, action = ArgAction::SetTrue, visible_alias = "statsd.enabled")]
    pub statsd: bool,
    /// statsd host [default: 127.0.0.1]
    #[arg(long, value_name = "HOST", visible_alias = "statsd.host")]
    pub statsd_host: Option<String>,
    /// statsd port [default: 8125]
    #[arg(long, value_name = "PORT", visible_alias = "statsd.port")]
    pub statsd_port: Option<u16>,
    /// Prefix of the statsd counters [default: vaurien]
    #[arg(long, value_name = "PREFIX", visible_alias = "statsd.prefix")]
    pub statsd_prefix: Option<String>,
    /// statsd sample rate [default: 1.0]
    #[arg(long, value_name = "RATE", visible_alias = "statsd.sample-rate")]
    pub statsd_sample_rate: Option<f64>,
    /// Print the version and exit
    #[arg(short = 'V', long, action = ArgAction::SetTrue)]
    pub version: bool,
}

/// `--log-level` is checked where it is given (argparse checked each occurrence).
fn log_level_value(s: &str) -> Result<String, String> {
    config::parse_log_level(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// Loads `callable = module.Class` plugins named in an ini file (set by the Python module;
/// without it such a file is refused with a clear message).
/// `dir` is the ini file's directory: a module next to the file is found there.
pub type PluginLoader =
    fn(kind: &str, name: &str, callable: &str, dir: Option<&std::path::Path>) -> Result<(), String>;

static PLUGIN_LOADER: OnceLock<PluginLoader> = OnceLock::new();

/// Installs the plugin loader (the Python module does, once).
pub fn set_plugin_loader(f: PluginLoader) {
    let _ = PLUGIN_LOADER.set(f);
}

/// One generated option flag: which registry entry and option it sets.
struct OptionFlag {
    id: String,
    kind: &'static str,
    owner: String,
    option: String,
}

fn option_arg(
    prefix: &str,
    owner: &str,
    spec: &OptionSpec,
    flags: &mut Vec<OptionFlag>,
    kind: &'static str,
) -> Arg {
    let long = spec.flag(&format!("{prefix}-{}", owner.replace('_', "-")));
    let id = long.clone();
    flags.push(OptionFlag {
        id: id.clone(),
        kind,
        owner: owner.to_string(),
        option: spec.name.clone(),
    });
    let help = format!(
        "{} ({}, default: {})",
        spec.help,
        spec.kind.as_str(),
        spec.default
    );
    let arg = Arg::new(id)
        .long(long)
        .help(help)
        .help_heading(if kind == "behavior" {
            "Behavior options"
        } else {
            "Protocol options"
        });
    if spec.kind == OptionKind::Bool {
        // A bare switch sets true; `--flag false` is also accepted.
        arg.num_args(0..=1)
            .default_missing_value("true")
            .value_name("BOOL")
    } else {
        arg.value_name(spec.kind.as_str().to_uppercase())
            .allow_negative_numbers(true)
    }
}

/// The whole command, with the generated flags of everything registered now.
fn command() -> (Command, Vec<OptionFlag>) {
    let mut cmd = Flags::augment_args(
        Command::new("vaurien")
            .version(crate::VERSION)
            // As the original's argparse: `--version` is a flag read after the whole command
            // line parsed, unambiguous prefixes of long flags work, and a flag given twice
            // takes its last value.
            .disable_version_flag(true)
            .infer_long_args(true)
            .args_override_self(true)
            .term_width(100)
            .about("A chaos TCP proxy: forwards traffic and, on demand, misbehaves.")
            .after_help(
                "Explicit flags win over the --config file, which wins over the defaults.\n\
                 Each option of each registered behavior and protocol has its flag above.",
            ),
    );
    let mut flags = Vec::new();
    for k in behavior::registry().kinds() {
        for spec in &k.options {
            cmd = cmd.arg(option_arg(
                "behavior", &k.name, spec, &mut flags, "behavior",
            ));
        }
    }
    for k in protocol::registry().kinds() {
        for spec in &k.options {
            cmd = cmd.arg(option_arg(
                "protocol", &k.name, spec, &mut flags, "protocol",
            ));
        }
    }
    (cmd, flags)
}

/// The `--help` text (docs/cli.md's CLI reference is checked against it).
pub fn help() -> String {
    command().0.render_help().to_string()
}

/// Why the command stopped before serving.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    #[error("{0}")]
    Other(String),
}

/// Finds `--config FILE` (or an unambiguous prefix of it, as argparse took) before the full
/// parse, when the first pass could not read it (a plugin's flag is not known yet).
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let is_config = |s: &str| s.len() >= 3 && "--config".starts_with(s);
    let mut it = args.iter().skip(1);
    let mut found = None;
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if is_config(&s) {
            found = it.next().map(PathBuf::from);
        } else if let Some((k, v)) = s.split_once('=') {
            if is_config(k) {
                found = Some(PathBuf::from(v));
            }
        }
    }
    found
}

/// Parses the command line in the original's order: first the flags and their values as
/// argparse checked them (a bad value, an unknown or ambiguous flag), then `--version`, then
/// the ini file (whose plugins may add flags: the command line is parsed again with them),
/// then everything else.
pub fn parse<I, T>(args: I) -> Result<Resolved, ParseOutcome>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let (mut cmd, _) = command();
    if config_path(&args).is_none() {
        // Without an ini file no plugin can add a protocol: check --protocol where it is
        // given, as argparse's `choices` did.
        cmd = cmd.mut_arg("protocol", |a| {
            a.value_parser(|s: &str| -> Result<String, String> {
                protocol::registry()
                    .get(s)
                    .map(|_| s.to_string())
                    .map_err(|e| e.to_string())
            })
        });
    }
    let mut early_protocol: Option<String> = None;
    let config = match cmd.try_get_matches_from(&args) {
        Ok(m) => {
            if m.get_flag("version") {
                return Err(ParseOutcome::Version);
            }
            early_protocol = m.get_one::<String>("protocol").cloned();
            m.get_one::<PathBuf>("config").cloned()
        }
        // Maybe a flag of a plugin that the ini file loads: known after the file is read.
        Err(e)
            if e.kind() == clap::error::ErrorKind::UnknownArgument
                && config_path(&args).is_some() =>
        {
            config_path(&args)
        }
        Err(e) => {
            // An unknown --protocol or --log-level: our own one-line message.
            let on_protocol = e.kind() == clap::error::ErrorKind::ValueValidation
                && matches!(
                    e.get(clap::error::ContextKind::InvalidArg),
                    Some(clap::error::ContextValue::String(a))
                        if a.starts_with("--protocol ") || a.starts_with("--log-level ")
                );
            if on_protocol {
                if let Some(src) = std::error::Error::source(&e) {
                    return Err(ParseOutcome::Error(src.to_string()));
                }
            }
            return Err(ParseOutcome::Clap(e));
        }
    };
    let file = match config {
        Some(p) => match config::read_ini(&p) {
            Ok(g) => {
                load_plugins(&g, p.parent()).map_err(|e| ParseOutcome::Error(e.to_string()))?;
                g
            }
            Err(e) => {
                // argparse refused an unknown --protocol before the file was read.
                if let Some(proto) = &early_protocol {
                    if let Err(pe) = protocol::registry().get(proto) {
                        return Err(ParseOutcome::Error(pe.to_string()));
                    }
                }
                return Err(ParseOutcome::Error(e.to_string()));
            }
        },
        None => Given::default(),
    };
    let (cmd, option_flags) = command();
    let m = cmd
        .try_get_matches_from(&args)
        .map_err(ParseOutcome::Clap)?;
    let flags = given_from_matches(&m, &option_flags).map_err(ParseOutcome::Error)?;
    config::resolve(&flags, &file).map_err(|e| ParseOutcome::Error(e.to_string()))
}

/// What stops a parse.
#[derive(Debug)]
pub enum ParseOutcome {
    /// clap's own (help, or a usage error).
    Clap(clap::Error),
    /// `--version`: print `crate::VERSION` alone on stdout (as the original printed its
    /// version) and exit 0.
    Version,
    /// One line for stderr.
    Error(String),
}

fn load_plugins(g: &Given, dir: Option<&std::path::Path>) -> Result<(), CliError> {
    let all = g
        .behavior_callables
        .iter()
        .map(|(n, c)| ("behavior", n, c))
        .chain(g.protocol_callables.iter().map(|(n, c)| ("protocol", n, c)));
    for (kind, name, callable) in all {
        match PLUGIN_LOADER.get() {
            Some(load) => load(kind, name, callable, dir).map_err(CliError::Other)?,
            None => {
                return Err(CliError::Other(format!(
                    "[{kind}:{name}] callable = {callable}: Python plugins need the Python package \
                     (pip install vaurien, then run its `vaurien` command)"
                )))
            }
        }
    }
    Ok(())
}

fn given_from_matches(m: &ArgMatches, option_flags: &[OptionFlag]) -> Result<Given, String> {
    let f = Flags::from_arg_matches(m).map_err(|e| e.to_string())?;
    let mut behavior_options: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut protocol_options: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for of in option_flags {
        if let Some(v) = m.get_one::<String>(&of.id) {
            let target = if of.kind == "behavior" {
                &mut behavior_options
            } else {
                &mut protocol_options
            };
            target
                .entry(of.owner.clone())
                .or_default()
                .insert(of.option.clone(), v.clone());
        }
    }
    Ok(Given {
        proxy: f.proxy,
        backend: f.backend,
        protocol: f.protocol,
        behavior: f.behavior,
        http: f.http.then_some(true),
        http_host: f.http_host,
        http_port: f.http_port,
        timeout: f.timeout,
        stay_connected: f.stay_connected.then_some(true),
        pool_max_size: f.pool_max_size,
        pool_timeout: f.pool_timeout,
        sync: f.sync.then_some(true),
        backlog: f.backlog,
        bufsize: f.bufsize,
        log_level: f.log_level,
        log_output: f.log_output,
        seed: f.seed,
        events_file: f.events_file,
        statsd: f.statsd.then_some(true),
        statsd_host: f.statsd_host,
        statsd_port: f.statsd_port,
        statsd_prefix: f.statsd_prefix,
        statsd_sample_rate: f.statsd_sample_rate,
        behavior_options,
        protocol_options,
        behavior_callables: BTreeMap::new(),
        protocol_callables: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// Writes a line to stderr. A stderr that cannot be written (`2>/dev/full`, a pipe closed by
/// `head`) is ignored: `eprintln!` would panic (exit 101) there.
pub(crate) fn eprint_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Writes a line to stdout, ignoring a stdout that cannot be written (as [`eprint_line`]).
pub(crate) fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

/// Sets up `tracing` for the CLI: level from `--log-level`, output to stderr or a file.
pub fn init_logging(level: &str, output: &str) -> Result<(), String> {
    let directive = config::parse_log_level(level).map_err(|e| e.to_string())?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VAURIEN_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "vaurien={directive},actix_server=warn,{directive}"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // A log line that cannot be written is dropped: tracing's own report of it would go
        // to the same broken stderr through eprintln!, which panics.
        .log_internal_errors(false);
    let r = if output == "-" {
        // Colours only for a person at a terminal: not in a pipe or a redirected file.
        use std::io::IsTerminal;
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init()
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(output)
            .map_err(|e| format!("--log-output {output}: {e}"))?;
        builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init()
    };
    // Already initialised (in-process under Python or tests): keep the existing subscriber.
    let _ = r;
    Ok(())
}

/// Runs the command; returns the exit status. Bad input: one line on stderr and status 2.
pub fn main<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let resolved = match parse(args) {
        Ok(r) => r,
        Err(ParseOutcome::Clap(e)) => {
            let code = e.exit_code();
            let _ = e.print();
            return code;
        }
        Err(ParseOutcome::Version) => {
            crate::cli::print_line(format_args!("{}", crate::VERSION));
            return 0;
        }
        Err(ParseOutcome::Error(msg)) => {
            crate::cli::eprint_line(format_args!("vaurien: error: {msg}"));
            return 2;
        }
    };
    if let Err(msg) = init_logging(&resolved.log_level, &resolved.log_output) {
        crate::cli::eprint_line(format_args!("vaurien: error: {msg}"));
        return 2;
    }
    for w in &resolved.warnings {
        tracing::warn!("{w}");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // VAURIEN_WORKERS sizes the runtime (default: one worker per core).
    if let Some(n) = std::env::var("VAURIEN_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        builder.worker_threads(n);
    }
    let rt = match builder.enable_all().thread_name("vaurien").build() {
        Ok(rt) => rt,
        Err(e) => {
            crate::cli::eprint_line(format_args!(
                "vaurien: error: cannot start the runtime: {e}"
            ));
            return 1;
        }
    };
    rt.block_on(run(resolved))
}

/// Serves until SIGINT or SIGTERM, then shuts down in order.
pub async fn run(resolved: Resolved) -> i32 {
    if let Some(p) = &resolved.server.proxy {
        if p.settings.sync {
            tracing::info!(
                "--sync: backend sockets are asynchronous in this engine; the flag only \
                 keeps old command lines working"
            );
        }
    }
    let server = match crate::api::launch(resolved.server.clone()).await {
        Ok(s) => s,
        Err(e) => {
            crate::cli::eprint_line(format_args!("vaurien: error: {e}"));
            return 2;
        }
    };
    if let Some(st) = &resolved.statsd {
        crate::telemetry::statsd::spawn(server.clone(), st.clone());
    }
    if let Some(p) = server.main_proxy() {
        tracing::info!(
            proxy = %p.local_addr().await.map(|a| a.to_string()).unwrap_or_default(),
            backend = %p.shared.backend(),
            protocol = p.shared.protocol.name(),
            behavior = %p.shared.behavior(),
            "vaurien is running"
        );
    }
    if let Some(a) = server.api_addr() {
        tracing::info!(addr = %a, "control API listening");
    }
    wait_for_signal().await;
    tracing::info!("stopping: no new connections; exchanges in flight may finish");
    server.shutdown().await;
    0
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
