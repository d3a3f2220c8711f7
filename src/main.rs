//! The `runner` binary: parses arguments, calls the library, maps the outcome to an
//! exit code. Everything else lives in the library.

fn main() -> std::process::ExitCode {
    runner::cli::main()
}
