//! `egress`: the only component that opens connections to the outside.
//!
//! It listens on 127.0.0.1 only, inside the bundle, and speaks one verb:
//! `CONNECT host:port`. Every other service (proxy, git-gate) reaches the
//! world through [`connect`], so name resolution and the destination checks
//! (no loopback, private, link-local, metadata, multicast... addresses) live in
//! one place and cannot be skipped by a service that forgets them.

pub mod class;
pub mod client;
pub mod dialer;
pub(crate) mod pump;
pub mod server;

pub use client::{EgressError, connect, refusal};
pub use dialer::{DialError, Dialer};
pub use server::Server;
