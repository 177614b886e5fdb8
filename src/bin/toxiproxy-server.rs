//! `toxiproxy-server`: vaurien started the way scripts start Toxiproxy (see `vaurien::toxiserver`).

fn main() {
    std::process::exit(vaurien::toxiserver::main(std::env::args_os()));
}
