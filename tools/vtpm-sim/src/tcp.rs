//! TCP settings that keep stock clients from stalling on Nagle's algorithm.
//!
//! tpm2-tss's `mssim` TCTI writes a command's 9-byte frame header and the command in two
//! `write`s on a socket without TCP_NODELAY. Nagle's algorithm then holds the second write until
//! the first is acknowledged, and Linux delays that ACK (~40 ms) hoping to piggyback it on a
//! reply that cannot come before the command has arrived: every command would stall 40 ms.
//! TCP_QUICKACK makes the server acknowledge at once, but Linux clears it again on its own
//! (it is not a permanent mode), so it is re-armed after every read.

use std::io::{self, Read};
use std::net::TcpStream;

/// Sets TCP_NODELAY (our responses go out in one write, never held for an ACK) and arms
/// TCP_QUICKACK before the first read.
pub(crate) fn tune(s: &TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    rustix::net::sockopt::set_tcp_quickack(s, true)?;
    Ok(())
}

/// A TCP stream whose every read re-arms TCP_QUICKACK.
pub(crate) struct QuickAck(pub(crate) TcpStream);

impl Read for QuickAck {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        // Failure only loses the optimisation, never data: ignore it.
        let _ = rustix::net::sockopt::set_tcp_quickack(&self.0, true);
        Ok(n)
    }
}
