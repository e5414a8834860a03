//! The byte pump behind every tunnel (the proxy's and egress's): both
//! directions at once, a note of when bytes last moved so idle tunnels can be
//! closed, and as little work per byte as each direction needs.
//!
//! A direction is a plain read/write copy with a small buffer that grows only
//! while reads keep filling it: `copy_bidirectional` allocates full buffers up
//! front, and with a thousand mostly idle tunnels that is most of the bundle's
//! memory. A direction carrying bulk data ends at its largest buffer and keeps
//! copying: through a TLS tunnel that ran 1.2x faster than splice(2) through a
//! pipe, measured both ways round in the same run (docs/BENCHMARKS.md, "Tunnel
//! throughput"). The proxy's plain-HTTP response bodies of known size are
//! spliced ([`splice_len`]): they are not scanned, so they need not pass
//! through user space at all.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::time::Instant;

/// First buffer of each direction.
const START_BUF: usize = 4 * 1024;
/// How much a buffer grows each time a read fills it.
const GROWTH: usize = 4;
/// Largest copy buffer for agent → world; uploads through tunnels are usually small.
pub const CLIENT_TO_ORIGIN_BUF: usize = 64 * 1024;
/// Largest copy buffer for world → agent, also the most one splice moves; large
/// so bulk downloads run near line rate.
pub const ORIGIN_TO_CLIENT_BUF: usize = 256 * 1024;
/// Pipe capacity asked for a splice; the kernel may keep its default.
const PIPE_BYTES: usize = 256 * 1024;

/// When bytes last moved, in milliseconds since `start`.
pub(crate) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self { start: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long until `idle` has passed with no traffic; zero once it has.
    pub(crate) fn remaining(&self, idle: Duration) -> Duration {
        let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        (last + idle).saturating_duration_since(Instant::now())
    }
}

/// Copies both ways until both sides have finished; each direction's buffer
/// grows up to its own maximum.
pub(crate) async fn both_ways(
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

async fn one_way(mut r: ReadHalf<'_>, mut w: WriteHalf<'_>, max: usize, activity: &Activity) -> io::Result<()> {
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

/// Runs `work` until it ends, or until `idle` passes with no byte moved (`None`).
pub(crate) async fn until_idle<F: Future>(work: F, activity: &Activity, idle: Duration) -> Option<F::Output> {
    tokio::pin!(work);
    loop {
        let wait = activity.remaining(idle);
        if wait.is_zero() {
            return None;
        }
        tokio::select! {
            r = &mut work => return Some(r),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// A pipe for splice(2): the kernel's buffer between two sockets.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    /// `Err` when no pipe can be made (out of descriptors); the caller copies instead.
    pub(crate) fn new() -> io::Result<Self> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        // A bigger pipe moves more per splice; keeping the default is fine too.
        let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_BYTES);
        Ok(Self { read, write })
    }
}

/// Moves `len` bytes from `from` to `to` through `pipe`, at most
/// [`ORIGIN_TO_CLIENT_BUF`] per splice; returns how many moved, fewer only if
/// `from` ended first. The pipe is drained before each refill, so `EAGAIN` on
/// the way in means `from` has nothing to read and on the way out that `to`
/// has no room: each is a plain readiness wait.
pub(crate) async fn splice_len(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    len: u64,
    activity: &Activity,
) -> io::Result<u64> {
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    let mut moved = 0u64;
    while moved < len {
        let ask = usize::try_from(len - moved).unwrap_or(usize::MAX).min(ORIGIN_TO_CLIENT_BUF);
        let mut pending = loop {
            match from
                .try_io(Interest::READABLE, || Ok(rustix::pipe::splice(from, None, &pipe.write, None, ask, flags)?))
            {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => from.readable().await?,
                r => break r?,
            }
        };
        if pending == 0 {
            break;
        }
        activity.touch();
        moved += pending as u64;
        while pending > 0 {
            match to
                .try_io(Interest::WRITABLE, || Ok(rustix::pipe::splice(&pipe.read, None, to, None, pending, flags)?))
            {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => to.writable().await?,
                r => pending -= r?,
            }
        }
    }
    Ok(moved)
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

    /// Both directions at bulk size at once, so both grow to their largest
    /// buffer while the other is still moving: every byte must arrive, in
    /// order, and the half-closes must still end the pump.
    #[tokio::test]
    async fn bulk_both_ways_at_once_arrives_intact() {
        const LEN: usize = 8 * 1024 * 1024;
        let (mut agent, mut proxy_in) = pair().await;
        let (mut proxy_out, mut origin) = pair().await;
        let pump = tokio::spawn(async move {
            let activity = Activity::new();
            both_ways(&mut proxy_in, &mut proxy_out, (16 * 1024, 64 * 1024), &activity).await
        });
        let up: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        let down: Vec<u8> = (0..LEN).map(|i| (i % 241) as u8).collect();
        let (mut ar, mut aw) = agent.split();
        let (mut or, mut ow) = origin.split();
        let (mut got_up, mut got_down) = (Vec::new(), Vec::new());
        let send_up = async {
            aw.write_all(&up).await.unwrap();
            aw.shutdown().await.unwrap();
        };
        let send_down = async {
            ow.write_all(&down).await.unwrap();
            ow.shutdown().await.unwrap();
        };
        let all =
            async { tokio::join!(send_up, send_down, or.read_to_end(&mut got_up), ar.read_to_end(&mut got_down)) };
        let ((), (), read_up, read_down) =
            tokio::time::timeout(Duration::from_secs(30), all).await.expect("bulk transfer stalled");
        read_up.unwrap();
        read_down.unwrap();
        assert!(got_up == up, "agent → origin bytes differ ({} of {LEN} bytes)", got_up.len());
        assert!(got_down == down, "origin → agent bytes differ ({} of {LEN} bytes)", got_down.len());
        tokio::time::timeout(Duration::from_secs(5), pump).await.unwrap().unwrap().unwrap();
    }
}
