//! The escape suite's categories, a module each, and how each verdict is decided.
//!
//! A reachability probe passes only when the probe saw no connection AND the
//! canary it aimed at logged no contact; a probe that could not run fails
//! (it proved nothing). Proxy and DLP probes pass only when the request was
//! refused AND the bundle raised an event for it.
//!
//! On smolmachines a blocked connect is answered by smolvm's own stack with a
//! reset, so "refused" is blocked there, but only as the start check judges it
//! ([`crate::smolvm::allowlist::judge`]): when the host reached the same
//! canary. And smolvm completes the handshake of every connect to an allowed
//! address before it dials from the host, so what the agent reaches on the
//! bundle's address is what the host reaches there: those checks are made
//! from the host.

mod direct;
mod dlp;
mod dns;
mod egress_port;
mod events;
mod fail_closed;
pub(super) mod git;
mod hosts;
mod privileges;
mod probing;
mod proxy;
mod reach;

use super::{Category, Finding, Suite};

pub async fn run(s: &Suite, c: Category) -> Vec<Finding> {
    match c {
        Category::Direct => direct::run(s).await,
        Category::Hosts => hosts::run(s).await,
        Category::Dns => dns::run(s).await,
        Category::EgressPort => egress_port::run(s).await,
        Category::Proxy => proxy::run(s).await,
        Category::Dlp => dlp::run(s).await,
        Category::Git => git::run(s).await,
        Category::Privileges => privileges::run(s).await,
        Category::FailClosed => fail_closed::run(s).await,
    }
}
