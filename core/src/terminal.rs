//! The host terminal during `exec -t` and `shell`: raw mode, its restoration, and window sizes.
//!
//! Why a module of its own: with a TTY in the agent, the agent's terminal does the line
//! editing, echo and Ctrl-C, so the host's must pass every key through untouched (raw
//! mode) and must be put back exactly as it was however the command ends, or the user's
//! shell is left unusable. A resized window must reach the agent's terminal too, or
//! full-screen programs draw at the wrong size. All of that is host terminal state, apart
//! from any backend, and each piece is easy to get subtly wrong, so it lives here once.
//!
//! Stdin is read on a thread of its own rather than through tokio: tokio reads stdin on its
//! blocking pool, and a runtime waits for those reads at shutdown, so a command that ended
//! while nobody typed would leave `bottle-core` hanging until the next key.

use std::io::{IsTerminal, Read};

use bytes::Bytes;
use rustix::termios::{self, OptionalActions, Termios};
use tokio::sync::mpsc;

/// Columns and rows of a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub cols: u16,
    pub rows: u16,
}

/// Chunks of stdin in flight between the reader thread and the command.
const STDIN_QUEUE: usize = 16;
const STDIN_CHUNK: usize = 8192;

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Raw mode on stdin's terminal for as long as this lives; the settings found are put back on drop
/// (also when a panic unwinds through it).
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// `None` when stdin is no terminal (piped input needs no raw mode).
    pub fn enable() -> std::io::Result<Option<Self>> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(Some(Self { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Nothing better to do if the terminal went away meanwhile.
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// The size of the terminal on stdout (else stdin), if either is one.
pub fn window_size() -> Option<WindowSize> {
    let size = termios::tcgetwinsize(std::io::stdout()).or_else(|_| termios::tcgetwinsize(std::io::stdin())).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some(WindowSize { cols: size.ws_col, rows: size.ws_row })
}

/// The terminal's size now, then again after every SIGWINCH, until the receiver is dropped.
/// `None` when there is no terminal to measure.
pub fn window_sizes() -> std::io::Result<Option<mpsc::Receiver<WindowSize>>> {
    let Some(first) = window_size() else { return Ok(None) };
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if tx.send(first).await.is_err() {
            return;
        }
        while winch.recv().await.is_some() {
            if let Some(size) = window_size()
                && tx.send(size).await.is_err()
            {
                return;
            }
        }
    });
    Ok(Some(rx))
}

/// This process's stdin as it arrives, chunk by chunk; the channel closes at end of file.
pub fn stdin_chunks() -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(STDIN_QUEUE);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; STDIN_CHUNK];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    });
    rx
}
