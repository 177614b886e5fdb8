//! The `vaurien` command as users meet it: flags, errors (one line, exit status 2), the ini
//! file and its precedence, signals, and docs/cli.md's CLI reference kept in step with --help.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn vaurien() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vaurien"))
}

/// Runs to completion (with a time limit) and returns (status, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let mut child = vaurien()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), out, err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("vaurien {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(args: &[String]) -> Killed {
    Killed(
        vaurien()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Sends SIGTERM (kill(1) from the shell: no libc call needed) and expects exit status 0
/// within 15 s.
fn sigterm_stops_with_0(child: &mut std::process::Child) {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert_eq!(st.code(), Some(0));
            return;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn one_error_line(args: &[&str], expected: &str) {
    let (code, out, err) = run(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(out.is_empty(), "{args:?}: stdout {out:?}");
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    assert!(lines[0].starts_with("vaurien: error: "), "{args:?}: {err}");
    assert!(
        err.contains(expected),
        "{args:?}: expected {expected:?} in {err:?}"
    );
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"));
}

#[test]
fn bad_input_gives_one_clear_line_and_status_2() {
    one_error_line(&["--behavior", "delay"], "You need to use percentage:name");
    one_error_line(
        &["--behavior", "60:delay,50:error"],
        "The behavior total needs to be 100 or less",
    );
    one_error_line(
        &["--behavior", "10:nope"],
        "\"nope\" is an unknown behavior. Pick one of: ",
    );
    one_error_line(
        &["--behavior", "x:delay"],
        "The percentage needs to be an integer",
    );
    one_error_line(&["--protocol", "gopher"], "unknown protocol 'gopher'");
    // A file without end is not read without end.
    one_error_line(&["--config", "/dev/zero"], "larger than 1024 KiB");
    one_error_line(&["--proxy", "nocolon"], "invalid address 'nocolon'");
    one_error_line(
        &["--backend", "host:99999"],
        "invalid address 'host:99999': port 99999",
    );
    one_error_line(
        &["--config", "/nonexistent/vaurien.ini"],
        "cannot read config file",
    );
    one_error_line(
        &["--behavior-delay-sleep", "soon", "--behavior", "10:delay"],
        "not a number",
    );
    one_error_line(&["--log-level", "chatty"], "--log-level");
    // The original started with a zero or negative --timeout: accepted, with a warning
    // (tests_compat/test_cli.py, value/--timeout 0).
}

#[test]
fn clap_usage_errors_are_one_line_naming_the_flag_value_and_what_is_allowed() {
    one_error_line(&["--no-such-flag"], "'--no-such-flag'");
    one_error_line(&["--timeout", "abc"], "'abc' for '--timeout");
    one_error_line(
        &["--http", "--http-port", "99999"],
        "99999 is not in 0..=65535",
    );
    one_error_line(&["--http-port", "abc"], "'abc' for '--http-port");
    one_error_line(&["--timeout"], "a value is required for '--timeout");
}

#[test]
fn out_of_range_values_are_refused_in_one_line() {
    one_error_line(
        &["--proxy", "localhost:99999"],
        "--proxy: invalid address 'localhost:99999': port 99999 is not in 0..=65535",
    );
    // A read of 0 bytes reads nothing: the original closed every connection at once.
    one_error_line(
        &["--protocol-tcp-buffer", "0"],
        "buffer 0: must be a size of 1 byte or more (--protocol-tcp-buffer",
    );
    // A multi-line ini value stays on the one line of the error.
    let dir = std::env::temp_dir().join(format!("vaurien-ml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ini = dir.join("multi.ini");
    std::fs::write(&ini, "[vaurien]\ntimeout = x\n  y\n").unwrap();
    one_error_line(&["--config", ini.to_str().unwrap()], "timeout = \"x\\ny\"");
}

/// Values the original took (and ran with) start here too, with one warning line that names
/// the flag, the value, what is allowed and what is used instead.
#[test]
fn values_the_original_took_start_with_a_warning() {
    for (args, warning) in [
        (
            vec!["--statsd", "--statsd-sample-rate", "2"],
            "--statsd-sample-rate 2: not a rate between 0 and 1; using 1",
        ),
        (
            vec!["--backend", ":9"],
            "--backend :9: no host; connections go to this machine",
        ),
        (
            vec![
                "--behavior",
                "100:transient",
                "--behavior-transient-agitate",
                "-1",
            ],
            "transient: agitate -1 is negative; counted as 0",
        ),
        (
            vec!["--behavior", "100:error", "--behavior-error-warmup", "-3"],
            "error: warmup -3 is negative; counted as 0",
        ),
    ] {
        let port = free_port();
        let mut argv = vec![
            "--proxy".to_string(),
            format!("127.0.0.1:{port}"),
            "--backend".to_string(),
            "127.0.0.1:9".to_string(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        let mut child = vaurien()
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_port(port, &mut child);
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(warning)).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one warning {warning:?} in {err}");
        assert!(lines[0].contains("WARN"), "{args:?}: {}", lines[0]);
    }
}

#[test]
fn a_port_in_use_is_an_error_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (code, _, err) = run(&[
        "--proxy",
        &format!("127.0.0.1:{port}"),
        "--backend",
        "127.0.0.1:1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("vaurien: error: cannot listen on"), "{err}");
    let p = free_port();
    let (code, _, err) = run(&[
        "--proxy",
        &format!("127.0.0.1:{p}"),
        "--backend",
        "127.0.0.1:1",
        "--http",
        "--http-host",
        "127.0.0.1",
        "--http-port",
        &port.to_string(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot start the control API"), "{err}");
}

#[test]
fn version_and_generated_flags_in_help() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--behavior-delay-sleep <FLOAT>",
        "--behavior-error-warmup <INT>",
        "--behavior-transient-agitate <INT>",
        "--protocol-tcp-keep-alive",
        "--protocol-tcp-reuse-socket",
        "--protocol-tcp-buffer <INT>",
    ] {
        assert!(out.contains(flag), "{flag} missing from --help");
    }
    assert!(
        out.contains("(float, default: 1)"),
        "types and defaults are shown"
    );
}

#[test]
fn the_cli_reference_in_docs_matches_help() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md")).unwrap();
    let start = doc
        .find("<!-- cli-help-start -->")
        .expect("docs/cli.md has a CLI reference");
    let end = doc.find("<!-- cli-help-end -->").unwrap();
    let block = &doc[start..end];
    let block = block
        .split_once("```text\n")
        .map(|(_, b)| b)
        .and_then(|b| b.rsplit_once("```").map(|(b, _)| b))
        .expect("a ```text block");
    let help = vaurien::cli::help();
    assert_eq!(
        block.trim_end(),
        help.trim_end(),
        "docs/cli.md's CLI reference is out of date: run `python3 scripts/update-cli-help.py` \
         (it pastes `vaurien --help`, 100 columns)"
    );
}

#[test]
fn the_ini_file_applies_and_flags_win_over_it() {
    within_blocking(|| {
        let dir = std::env::temp_dir().join(format!("vaurien-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let proxy = free_port();
        let api = free_port();
        let ini = dir.join("v.ini");
        std::fs::write(
            &ini,
            format!(
                "[vaurien]\nproxy = 127.0.0.1:{proxy}\nbackend = file.example:1\nbehavior = 20:delay\nhttp = true\nhttp_host = 127.0.0.1\nhttp_port = {api}\n\n[behavior:delay]\nsleep = 2\n"
            ),
        )
        .unwrap();
        let mut child = spawn(&[
            "--config".into(),
            ini.display().to_string(),
            "--backend".into(),
            "127.0.0.1:9".into(),
        ]);
        wait_port(api, &mut child.0);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let a: std::net::SocketAddr = format!("127.0.0.1:{api}").parse().unwrap();
            // The flag won over the file...
            assert_eq!(
                json(a, "GET", "/backend", None).await.1["backend"],
                "127.0.0.1:9"
            );
            // ...the file won over the defaults.
            assert_eq!(
                json(a, "GET", "/behavior", None).await.1["behavior"],
                "20:delay"
            );
        });
        assert!(std::net::TcpStream::connect(("127.0.0.1", proxy)).is_ok());
    })
}

#[test]
fn sigterm_stops_cleanly_with_status_0() {
    within_blocking(|| {
        let port = free_port();
        let mut child = spawn(&[
            "--proxy".into(),
            format!("127.0.0.1:{port}"),
            "--backend".into(),
            "127.0.0.1:9".into(),
        ]);
        wait_port(port, &mut child.0);
        sigterm_stops_with_0(&mut child.0);
    })
}

/// Runs a blocking test body on a thread with the common time limit.
fn within_blocking(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("test body panicked"),
        Err(e) => panic!("test took longer than its limit: {e}"),
    }
}

#[test]
fn log_output_and_level_go_where_asked() {
    within_blocking(|| {
        let dir = std::env::temp_dir().join(format!("vaurien-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("vaurien.log");
        let _ = std::fs::remove_file(&log);
        let port = free_port();
        let mut child = spawn(&[
            "--proxy".into(),
            format!("127.0.0.1:{port}"),
            "--backend".into(),
            "127.0.0.1:9".into(),
            "--log-level".into(),
            "DEBUG".into(),
            "--log-output".into(),
            log.display().to_string(),
            "--sync".into(),
        ]);
        wait_port(port, &mut child.0);
        // A client whose backend is down: logged, and the proxy keeps running.
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 16];
        let _ = std::io::Read::read(&mut s, &mut buf);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("backend unreachable") {
                assert!(text.contains("vaurien is running"), "{text}");
                // A refused connect says so (it was logged as "cannot resolve").
                assert!(
                    text.contains("cannot connect to '127.0.0.1:9'") && !text.contains("resolve"),
                    "{text}"
                );
                assert!(
                    text.contains("--sync"),
                    "the log says what --sync means: {text}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "log file: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(child.0.try_wait().unwrap().is_none(), "still running");
    })
}

#[test]
fn logs_to_a_pipe_have_no_colour() {
    within_blocking(|| {
        let port = free_port();
        let mut child = spawn(&[
            "--proxy".into(),
            format!("127.0.0.1:{port}"),
            "--backend".into(),
            "127.0.0.1:9".into(),
        ]);
        wait_port(port, &mut child.0);
        // It listens a moment before it logs that it runs: read stderr until it says so.
        let mut stderr = std::io::BufReader::new(child.0.stderr.take().unwrap());
        let mut err = String::new();
        while !err.contains("vaurien is running") {
            let n = std::io::BufRead::read_line(&mut stderr, &mut err).unwrap();
            assert!(n > 0, "stderr ended: {err}");
        }
        let _ = child.0.kill();
        let _ = child.0.wait();
        std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
        assert!(
            !err.contains('\u{1b}'),
            "ANSI escapes in a piped stderr: {err:?}"
        );
    })
}

#[test]
fn the_command_line_as_argparse_took_it() {
    // --version is answered once the whole line parsed, alone on its line.
    let (code, out, _) = run(&["--version"]);
    assert_eq!((code, out.trim()), (0, env!("CARGO_PKG_VERSION")));
    let (code, _, err) = run(&["--version", "--timeout", "x"]);
    assert_eq!(code, 2, "{err}");
    // An ambiguous prefix is refused; an unambiguous one, `=`, and a repeated flag work.
    let (code, _, err) = run(&["--back", "127.0.0.1:1"]);
    assert_eq!(code, 2, "{err}");
    let port = free_port();
    let mut child = spawn(&[
        "--prox".to_string(),
        format!("127.0.0.1:{port}"),
        "--backe=127.0.0.1:1".to_string(),
        "--tim".to_string(),
        "-1".to_string(),
        "--timeout".to_string(),
        "5".to_string(),
        "--statsd.sample-rate".to_string(),
        "0.5".to_string(),
        "--stay-connected".to_string(),
        "--stay-connected".to_string(),
    ]);
    wait_port(port, &mut child.0);
}

#[test]
fn a_stderr_or_stdout_that_cannot_be_written_is_no_panic() {
    within_blocking(|| {
        let full = || {
            Stdio::from(
                std::fs::File::options()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            )
        };
        // A refusal: status 2 (not 101, a panic's).
        let st = vaurien()
            .args(["--protocol", "nope"])
            .stderr(full())
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(2));
        let st = vaurien().arg("--version").stdout(full()).status().unwrap();
        assert_eq!(st.code(), Some(0));
        // A running proxy whose logs cannot be written serves, then stops cleanly.
        let port = free_port();
        let mut child = Killed(
            vaurien()
                .args([
                    "--proxy",
                    &format!("127.0.0.1:{port}"),
                    "--backend",
                    "127.0.0.1:9",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(full())
                .spawn()
                .unwrap(),
        );
        wait_port(port, &mut child.0);
        let _ = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "it died: {:?}",
            child.0.try_wait()
        );
        sigterm_stops_with_0(&mut child.0);
    })
}

#[test]
fn toxiproxy_server_prints_its_usage_one_flag_a_line() {
    within_blocking(|| {
        let run = |args: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_toxiproxy-server"))
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let err = String::from_utf8(out.stderr).unwrap();
            (out.status.code(), err)
        };
        // As Go's flag package: -help prints the usage on stderr and exits 0 ...
        let (code, err) = run(&["-help"]);
        assert_eq!(code, Some(0), "{err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines[0], "Usage of toxiproxy-server (vaurien):", "{err}");
        assert!(lines.contains(&"  -port string"), "{err}");
        assert!(!err.contains("\\n"), "no escaped newline: {err}");
        // ... and a bad flag gets its one error line, then the same usage, and exit 2.
        let (code, err) = run(&["-nope"]);
        assert_eq!(code, Some(2), "{err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines[0], "flag provided but not defined: -nope", "{err}");
        assert_eq!(lines[1], "Usage of toxiproxy-server (vaurien):", "{err}");
        assert!(lines.contains(&"  -host string"), "{err}");
    })
}
