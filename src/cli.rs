//! The `vaurien` command: the original's flags (clap), one `--behavior-NAME-OPTION` and
//! `--protocol-NAME-OPTION` flag per option of every registered behavior and protocol
//! (generated from the registries, so a new behavior gets its flags for free), the ini file,
//! logging, signals and the exit status.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use clap::{Arg, ArgGroup, ArgMatches, Command};

use crate::behavior::{self, OptionKind, OptionSpec};
use crate::config::{self, ConfigError, Given, Resolved};
use crate::protocol;
use crate::settings::{self, Owner, Values};

/// Loads `callable = module.Class` plugins named in an ini file (set by the Python module;
/// without it such a file is refused with a clear message).
/// `dir` is the ini file's directory: a module next to the file is found there.
pub type PluginLoader = fn(
    owner: Owner,
    name: &str,
    callable: &str,
    dir: Option<&std::path::Path>,
) -> Result<(), String>;

static PLUGIN_LOADER: OnceLock<PluginLoader> = OnceLock::new();

/// Installs the plugin loader (the Python module does, once).
pub fn set_plugin_loader(f: PluginLoader) {
    let _ = PLUGIN_LOADER.set(f);
}

/// One generated option flag: which registry entry and option it sets.
struct OptionFlag {
    id: String,
    owner: Owner,
    /// The behavior or protocol.
    name: String,
    option: String,
}

fn option_arg(owner: Owner, name: &str, spec: &OptionSpec, flags: &mut Vec<OptionFlag>) -> Arg {
    let long = spec.flag(&format!("{}-{}", owner.as_str(), name.replace('_', "-")));
    let id = long.clone();
    flags.push(OptionFlag {
        id: id.clone(),
        owner,
        name: name.to_string(),
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
        .help_heading(owner.heading());
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
    let mut cmd = Command::new("vaurien")
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
        )
        .args(settings::FLAGS.iter().map(|f| f.arg()))
        // The group `#[derive(Args)]` made of these flags: clap's usage line after some errors
        // (`--http=1`) lists it, and that line stays as it was.
        .group(
            ArgGroup::new("Flags")
                .multiple(true)
                .args(settings::FLAGS.iter().map(|f| f.spec().name)),
        );
    let mut flags = Vec::new();
    for k in behavior::registry().kinds() {
        for spec in &k.options {
            cmd = cmd.arg(option_arg(Owner::Behavior, &k.name, spec, &mut flags));
        }
    }
    for k in protocol::registry().kinds() {
        for spec in &k.options {
            cmd = cmd.arg(option_arg(Owner::Protocol, &k.name, spec, &mut flags));
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
        cmd = cmd.mut_arg(settings::PROTOCOL.spec.name, |a| {
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
            if m.get_flag(settings::SHOW_VERSION.spec.name) {
                return Err(ParseOutcome::Version);
            }
            early_protocol = m.get_one::<String>(settings::PROTOCOL.spec.name).cloned();
            m.get_one::<PathBuf>(settings::CONFIG.spec.name).cloned()
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
        .map(|(n, c)| (Owner::Behavior, n, c))
        .chain(
            g.protocol_callables
                .iter()
                .map(|(n, c)| (Owner::Protocol, n, c)),
        );
    for (owner, name, callable) in all {
        match PLUGIN_LOADER.get() {
            Some(load) => load(owner, name, callable, dir).map_err(CliError::Other)?,
            None => {
                return Err(CliError::Other(format!(
                    "[{}:{name}] callable = {callable}: Python plugins need the Python package \
                     (pip install vaurien, then run its `vaurien` command)",
                    owner.as_str()
                )))
            }
        }
    }
    Ok(())
}

fn given_from_matches(m: &ArgMatches, option_flags: &[OptionFlag]) -> Result<Given, String> {
    let mut values = Values::default();
    for f in settings::settings() {
        if let Some(v) = f.given(m)? {
            values.insert(f.spec(), v);
        }
    }
    let mut given = Given {
        values,
        ..Given::default()
    };
    for of in option_flags {
        if let Some(v) = m.get_one::<String>(&of.id) {
            let target = match of.owner {
                Owner::Behavior => &mut given.behavior_options,
                Owner::Protocol => &mut given.protocol_options,
            };
            target
                .entry(of.name.clone())
                .or_default()
                .insert(of.option.clone(), v.clone());
        }
    }
    Ok(given)
}

/// Writes a line to stderr. A stderr that cannot be written (`2>/dev/full`, a pipe closed by
/// `head`) is ignored: `eprintln!` would panic (exit 101) there.
pub(crate) fn eprint_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    // One line, whatever the message quotes (a multi-line ini value, say).
    let text = line.to_string().trim_end().replace('\n', "\\n");
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Reports a clap outcome: `--help` as clap renders it (exit 0); a usage error as one line on
/// stderr naming the flag, the value and what is allowed (exit 2), where clap writes 3 to 19
/// lines.
pub fn report_clap(e: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return e.exit_code();
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprint_line(format_args!("vaurien: error: {first} (see --help)"));
    2
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
        Err(ParseOutcome::Clap(e)) => return report_clap(&e),
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
