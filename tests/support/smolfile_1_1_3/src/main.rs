//! Parses each Smolfile named on the command line with the published `smolfile`
//! parser 1.1.3 (smolvm 1.1.3's own), printing what it read or the error.
//! Exit status 1 if any file is rejected.

fn main() {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        match smolfile::parse(&text) {
            Ok(sf) => {
                let cidrs = sf.network.map(|n| n.allow_cidrs).unwrap_or_default();
                println!(
                    "ok {path} image={:?} cpus={:?} memory={:?} net={:?} allow_cidrs={:?} env={}",
                    sf.image,
                    sf.cpus,
                    sf.memory,
                    sf.net,
                    cidrs,
                    sf.env.len()
                );
            }
            Err(e) => {
                failed = true;
                println!("rejected {path}: {e}");
            }
        }
    }
    std::process::exit(i32::from(failed));
}
