//! Says that a test skipped, and why, where a CI log shows it. cargo test keeps a passing
//! test's stderr to itself, so a skip that only printed would read as a plain `ok`; the
//! line also goes to the file `BOTTLE_TEST_SKIPS` names, which `scripts/test.sh` prints
//! after the run.

use std::io::Write;

/// The environment variable naming the file skips are listed in.
pub const SKIPS_ENV: &str = "BOTTLE_TEST_SKIPS";

/// Records that the running test (named by its thread, as libtest names it) skips because of `why`.
pub fn skipped(why: impl std::fmt::Display) {
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let line = format!("{} {test}: {why}", env!("CARGO_CRATE_NAME"));
    eprintln!("SKIPPED {line}");
    let Some(path) = std::env::var_os(SKIPS_ENV) else { return };
    if let Err(e) =
        std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| writeln!(f, "{line}"))
    {
        eprintln!("could not add the skip to {}: {e}", path.to_string_lossy());
    }
}
