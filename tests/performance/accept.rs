//! A listener survives running out of file descriptors: once connections close,
//! it accepts again. Alone in its test binary because it lowers the process's
//! descriptor limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottle_bundle::accept;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tokio::net::{TcpListener, TcpStream};

/// Connections the test makes in all, more than the descriptors it leaves itself.
const CLIENTS: usize = 24;
/// Descriptors left free above those already open when the limit drops.
const HEADROOM: u64 = 8;
const WAIT: Duration = Duration::from_secs(20);

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_resumes_after_the_descriptors_run_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // The clients live in another process, so only accepted sockets use this one's descriptors.
    let mut clients = std::process::Command::new("python3")
        .args(["-c", &format!(
            "import socket,sys\ncs=[socket.create_connection(('127.0.0.1',{port})) for _ in range({CLIENTS})]\nprint('up',flush=True)\nsys.stdin.read()"
        )])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let accepted = Arc::new(Mutex::new(0usize));
    let original = getrlimit(Resource::Nofile);
    setrlimit(Resource::Nofile, Rlimit { current: Some(open_fds() + HEADROOM), maximum: original.maximum }).unwrap();
    let (h, n) = (held.clone(), accepted.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = accept::next(&listener, "test").await;
            h.lock().unwrap().push(stream);
            *n.lock().unwrap() += 1;
        }
    });

    // The limit stops accepting short of all clients...
    until("the descriptor limit to be reached", || *accepted.lock().unwrap() >= 1).await;
    tokio::time::sleep(accept::ACCEPT_BACKOFF * 10).await;
    let stalled = *accepted.lock().unwrap();
    assert!(stalled < CLIENTS, "the limit did not bite ({stalled} accepted)");
    // ...and once descriptors free up, the same loop takes the rest.
    held.lock().unwrap().clear();
    setrlimit(Resource::Nofile, original).unwrap();
    until("the remaining clients", || *accepted.lock().unwrap() == CLIENTS).await;
    drop(clients.stdin.take());
    clients.wait().unwrap();
}
