//! STUB (to be replaced by the CLI owner).

pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
