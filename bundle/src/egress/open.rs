//! The in-process way out, for services that run in this process.
//!
//! The loopback listener exists so a service can be handed a socket without
//! being trusted to dial; a service inside this process gets the same answer
//! without the extra connection and relay. The kill switch, the resolver and
//! the address classes are the dialer's, exactly as behind the listener: the
//! socket returned is connected to an address [`Dialer::resolve`] checked.
//!
//! [`Dialer::resolve`]: super::Dialer::resolve

use bottle_protocol::rule::KILL_SWITCH;
use tokio::net::TcpStream;

use super::dialer::DialError;
use crate::state::Bundle;

/// A connected socket to `host:port`, or why not. `host` is a DNS name or a
/// bare IP literal (IPv6 without brackets).
pub async fn open(bundle: &Bundle, host: &str, port: u16) -> Result<TcpStream, DialError> {
    if bundle.kill.engaged() {
        return Err(DialError::Refused(KILL_SWITCH));
    }
    let stream = tokio::select! {
        r = bundle.dialer.dial(host, port) => r?,
        () = bundle.kill.cut() => return Err(DialError::Refused(KILL_SWITCH)),
    };
    stream.set_nodelay(true).map_err(DialError::Unreachable)?;
    Ok(stream)
}
