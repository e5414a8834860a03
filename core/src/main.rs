//! `bottle-core`: the headless CLI. All work happens in the library.

fn main() -> std::process::ExitCode {
    bottle_core::cli::main()
}
