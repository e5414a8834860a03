//! Kept-alive upstream connections per API. A model call through the gate
//! must cost about what a direct one costs, and a direct client keeps its TLS
//! connection open; so the gate does too, instead of a handshake per call.

use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

/// Most connections kept per API; more concurrent calls than this dial fresh ones.
pub const MAX_IDLE: usize = 16;

pub type Sender = SendRequest<Full<Bytes>>;

#[derive(Default)]
pub struct Pool {
    conns: Mutex<Vec<Sender>>,
}

impl Pool {
    /// A connection ready for a new request. Ones still streaming a reply stay in the pool.
    pub fn take(&self) -> Option<Sender> {
        let mut conns = self.conns.lock().expect("pool poisoned");
        conns.retain(|s| !s.is_closed());
        let ready = conns.iter().position(SendRequest::is_ready)?;
        Some(conns.swap_remove(ready))
    }

    /// Hands a connection back right after its response head: HTTP/1.1 makes it ready again once
    /// that response's body has been read to the end.
    pub fn put(&self, sender: Sender) {
        let mut conns = self.conns.lock().expect("pool poisoned");
        conns.retain(|s| !s.is_closed());
        if conns.len() < MAX_IDLE {
            conns.push(sender);
        }
    }
}
