//! The byte pump behind a tunnel: both directions at once, with buffers that
//! start small and grow only while a direction keeps filling them, and a note
//! of when bytes last moved so idle tunnels can be closed.
//!
//! `copy_bidirectional` allocates its full buffers up front; with a thousand
//! mostly idle tunnels that is most of the proxy's memory. Growing on demand
//! keeps idle tunnels at a few KiB while bulk transfers still reach full-size
//! reads after their first few.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// First buffer of each direction.
const START_BUF: usize = 4 * 1024;
/// How much a buffer grows each time a read fills it.
const GROWTH: usize = 4;

/// When bytes last moved, in milliseconds since `start`.
pub(super) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Self {
        Self { start: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long until `idle` has passed with no traffic; zero once it has.
    pub(super) fn remaining(&self, idle: Duration) -> Duration {
        let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        (last + idle).saturating_duration_since(Instant::now())
    }
}

/// Copies both ways until both sides have finished; each direction's buffer
/// grows up to its own maximum.
pub(super) async fn both_ways(
    a: &mut TcpStream,
    b: &mut TcpStream,
    (a_to_b_max, b_to_a_max): (usize, usize),
    activity: &Activity,
) -> io::Result<()> {
    let (ar, aw) = a.split();
    let (br, bw) = b.split();
    tokio::try_join!(one_way(ar, bw, a_to_b_max, activity), one_way(br, aw, b_to_a_max, activity))?;
    Ok(())
}

async fn one_way<R, W>(mut r: R, mut w: W, max: usize, activity: &Activity) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; START_BUF.min(max)];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            // Pass the half-close on; the other direction may still be talking.
            return w.shutdown().await;
        }
        activity.touch();
        w.write_all(&buf[..n]).await?;
        if n == buf.len() && buf.len() < max {
            buf.resize((buf.len() * GROWTH).min(max), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        (c, l.accept().await.unwrap().0)
    }

    #[tokio::test]
    async fn copies_both_ways_and_passes_half_close() {
        let (mut agent, mut proxy_in) = pair().await;
        let (mut proxy_out, mut origin) = pair().await;
        let activity = Activity::new();
        let pump = tokio::spawn(async move {
            let activity = activity;
            both_ways(&mut proxy_in, &mut proxy_out, (64 * 1024, 64 * 1024), &activity).await
        });
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        agent.write_all(&big).await.unwrap();
        agent.shutdown().await.unwrap();
        let mut got = Vec::new();
        origin.read_to_end(&mut got).await.unwrap();
        assert!(got == big, "agent → origin bytes differ");
        origin.write_all(b"reply after half-close").await.unwrap();
        origin.shutdown().await.unwrap();
        let mut back = Vec::new();
        agent.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"reply after half-close");
        tokio::time::timeout(Duration::from_secs(5), pump).await.unwrap().unwrap().unwrap();
    }
}
