fn main() {
    std::process::exit(vaurien::cli::main(std::env::args_os()));
}
