//! The `toxiproxy-server` command: vaurien with Toxiproxy's server flags, for scripts and
//! images that start Toxiproxy. Flags as Go's `flag` package reads them (`-port 8474`,
//! `-port=8474`, one or two dashes): `-host` (default `localhost`), `-port` (default 8474),
//! `-config FILE` (populate at start: proxies and their inline toxics are in place before the
//! first connection is accepted; a bad file stops the command, where Toxiproxy only logs it),
//! `-seed N` (works here), `-version`, `-proxy-metrics` and `-runtime-metrics` (accepted:
//! `/metrics` is always served), plus vaurien's `-events-file FILE`. `LOG_LEVEL` sets the log
//! level (trace, debug, info, warn, error, fatal, panic). No proxy is started until the API or
//! the config file creates one.

use std::ffi::OsString;
use std::time::Duration;

use crate::server::{Server, ServerConfig};

/// The command's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opts {
    pub host: String,
    pub port: u16,
    pub config: Option<String>,
    pub seed: Option<u64>,
    pub events_file: Option<String>,
    pub version: bool,
    pub help: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            host: "localhost".into(),
            port: 8474,
            config: None,
            seed: None,
            events_file: None,
            version: false,
            help: false,
        }
    }
}

const USAGE: &str = "Usage of toxiproxy-server (vaurien):
  -config string
        JSON file containing proxies to create on startup (toxics may be declared inline)
  -events-file string
        append every fault applied to this file, one JSON object a line
  -host string
        Host for toxiproxy's API to listen on (default \"localhost\")
  -port string
        Port for toxiproxy's API to listen on (default \"8474\")
  -proxy-metrics
        accepted; /metrics is always served
  -runtime-metrics
        accepted; /metrics is always served
  -seed int
        Seed for randomizing toxics with (reproducible here)
  -version
        print the version
Environment: LOG_LEVEL (trace, debug, info, warn, error, fatal, panic)";

/// Writes the usage on stderr, one flag a line, as Go's `flag` package does (a stderr that
/// cannot be written is ignored, as in [`crate::cli::eprint_line`]).
fn eprint_usage() {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{USAGE}");
}

/// Parses the flags the way Go's `flag` package does.
pub fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            return Err(format!("unexpected argument: {a}"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("flag needs an argument: -{name}")),
            }
        };
        match name {
            "host" => o.host = value(name)?,
            "port" => {
                let v = value(name)?;
                o.port = v
                    .parse()
                    .map_err(|_| format!("invalid value {v:?} for flag -port: not a port"))?;
            }
            "config" => o.config = Some(value(name)?),
            "events-file" => o.events_file = Some(value(name)?),
            "seed" => {
                let v = value(name)?;
                let n: i64 = v
                    .parse()
                    .map_err(|_| format!("invalid value {v:?} for flag -seed: parse error"))?;
                o.seed = Some(n as u64);
            }
            "version" => o.version = inline.as_deref() != Some("false"),
            "proxy-metrics" | "runtime-metrics" => {}
            "h" | "help" => o.help = true,
            other => return Err(format!("flag provided but not defined: -{other}")),
        }
    }
    Ok(o)
}

fn log_filter() -> String {
    let level = std::env::var("LOG_LEVEL")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let d = match level.as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "warn" | "warning" => "warn",
        "error" | "fatal" | "panic" => "error",
        _ => "info",
    };
    format!("vaurien={d},actix_server=warn,{d}")
}

/// Runs the command; returns the exit status (2 for bad flags or a bad config file).
pub fn main<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<String> = args
        .into_iter()
        .skip(1)
        .map(|a| a.into().to_string_lossy().into_owned())
        .collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            crate::cli::eprint_line(format_args!("{e}"));
            eprint_usage();
            return 2;
        }
    };
    if opts.help {
        eprint_usage();
        return 0;
    }
    if opts.version {
        crate::cli::print_line(format_args!("toxiproxy-server version {}", crate::VERSION));
        return 0;
    }
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter()))
        .with_target(false)
        // A log line that cannot be written is dropped: tracing's own report of it would go
        // to the same broken stderr through eprintln!, which panics.
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vaurien")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::cli::eprint_line(format_args!(
                "toxiproxy-server: cannot start the runtime: {e}"
            ));
            return 1;
        }
    };
    rt.block_on(async {
        let server = match start(&opts).await {
            Ok(s) => s,
            Err(e) => {
                crate::cli::eprint_line(format_args!("toxiproxy-server: error: {e}"));
                return 2;
            }
        };
        crate::cli::wait_for_signal().await;
        server.shutdown().await;
        0
    })
}

/// Starts the API and applies `-config`. Used by the command and the tests.
pub async fn start(opts: &Opts) -> Result<std::sync::Arc<Server>, String> {
    let host = if opts.host.contains(':') && !opts.host.starts_with('[') {
        format!("[{}]", opts.host)
    } else {
        opts.host.clone()
    };
    let server = crate::api::launch(ServerConfig {
        proxy: None,
        http: Some(format!("{host}:{}", opts.port)),
        seed: opts.seed,
        events_file: opts.events_file.clone(),
        grace: Duration::ZERO,
    })
    .await
    .map_err(|e| e.to_string())?;
    if let Some(path) = &opts.config {
        if let Err(e) = populate_file(&server, path).await {
            server.shutdown().await;
            return Err(e);
        }
    }
    if let Some(a) = server.api_addr() {
        tracing::info!(addr = %a, "API HTTP server starting");
    }
    Ok(server)
}

/// `-config FILE`: a JSON array of proxies (each may list its toxics), as `POST /populate`.
pub async fn populate_file(server: &Server, path: &str) -> Result<(), String> {
    let body = std::fs::read(path).map_err(|e| format!("-config {path}: {e}"))?;
    let specs = match crate::api::toxiproxy::populate_specs(&body) {
        Ok(s) => s,
        Err(resp) => {
            let msg = crate::api::toxiproxy::error_text(resp).await;
            return Err(format!("-config {path}: {msg}"));
        }
    };
    match server.populate(&specs).await {
        Ok(done) => {
            tracing::info!(
                config = path,
                proxies = done.len(),
                "populated proxies from the config file"
            );
            Ok(())
        }
        Err((e, _)) => Err(format!("-config {path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Opts, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn go_flag_spellings() {
        let o = p(&[
            "-host",
            "0.0.0.0",
            "--port=9000",
            "-seed",
            "42",
            "-proxy-metrics",
        ])
        .unwrap();
        assert_eq!(o.host, "0.0.0.0");
        assert_eq!(o.port, 9000);
        assert_eq!(o.seed, Some(42));
        assert_eq!(p(&[]).unwrap(), Opts::default());
        assert!(p(&["-nope"])
            .unwrap_err()
            .contains("flag provided but not defined: -nope"));
        assert!(p(&["-port"])
            .unwrap_err()
            .contains("flag needs an argument"));
        assert!(p(&["-version"]).unwrap().version);
    }
}
