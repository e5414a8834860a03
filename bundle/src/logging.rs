//! Structured logs to stderr. `RUST_LOG` filters; `BOTTLE_LOG_FORMAT=json` switches to JSON lines.
//!
//! Nothing logged anywhere in the bundle may contain a secret or credential:
//! log rule ids and destinations, never request bytes.

pub fn init() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("BOTTLE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
