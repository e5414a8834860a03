//! `egress`: the only component that opens connections to the outside.
//!
//! It listens on 127.0.0.1 only, inside the bundle, and speaks one verb:
//! `CONNECT host:port`. Services reach the world through [`connect`] (that
//! listener) or, for the proxy, [`open`] (the same dialer called in-process),
//! so name resolution and the destination checks (no loopback, private,
//! link-local, metadata, multicast... addresses) live in one place and cannot
//! be skipped by a service that forgets them.

pub mod class;
pub mod client;
pub mod dialer;
mod open;
pub(crate) mod pump;
pub mod server;

pub use client::{EgressError, connect, refusal};
pub use dialer::{DialError, Dialer};
pub use open::open;
pub use server::Server;
