//! Event channels: per-domain port tables, channel states, pending bits, and both ends' labels.
//!
//! A channel is made in two steps, as in Xen: domain A allocates an *unbound* port naming the
//! one domain B that may bind it (`alloc`), then B binds its own new port to A's (`bind`). From
//! then on either end may `send`, which sets the pending bit of the peer's port and tells the
//! caller whom to wake; `take_pending` reads and clears a domain's pending bits. Closing one end
//! frees it and leaves the other end `PeerClosed` (sending there fails; closing it frees it).
//!
//! Port 0 is never allocated so that a zeroed handle is always an error. Each end remembers the
//! labels of both domains at bind time: that is the channel's label pair, reported in audit
//! records and re-checked on every send.

use warden_policy::TypeId;

use crate::calls::IpcError;
use crate::{DomId, MAX_DOMAINS};

/// Ports per domain; a domain's pending bits fit one `u64`.
pub const PORTS: usize = warden_abi::ipc::EVTCHN_PORTS as usize;

/// A port number, local to one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u32);

/// The state of one end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not in use.
    Free,
    /// Allocated; waiting for `remote` to bind.
    Unbound { remote: DomId },
    /// Connected to `remote`'s port `remote_port`.
    Bound { remote: DomId, remote_port: Port },
    /// The other end closed; only `close` is useful here.
    PeerClosed { remote: DomId },
}

/// One end of a channel: its state and the label pair (own label, peer's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    pub state: State,
    pub label: TypeId,
    pub remote_label: TypeId,
}

const FREE: End = End { state: State::Free, label: TypeId(u32::MAX), remote_label: TypeId(u32::MAX) };

/// Whom a `send` (or a `close`) must wake: the peer domain and its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wake {
    pub dom: DomId,
    pub port: Port,
}

/// The event-channel table of the whole host.
#[derive(Debug, Clone)]
pub struct EventChannels {
    ends: [[End; PORTS]; MAX_DOMAINS],
    pending: [u64; MAX_DOMAINS],
}

impl Default for EventChannels {
    fn default() -> Self {
        Self::new()
    }
}

fn dom_index(d: DomId) -> Result<usize, IpcError> {
    d.index(MAX_DOMAINS).ok_or(IpcError::BadDomain)
}

fn port_index(p: Port) -> Result<usize, IpcError> {
    let i = p.0 as usize;
    if i == 0 || i >= PORTS { Err(IpcError::BadPort) } else { Ok(i) }
}

impl EventChannels {
    #[must_use]
    pub const fn new() -> Self {
        EventChannels { ends: [[FREE; PORTS]; MAX_DOMAINS], pending: [0; MAX_DOMAINS] }
    }

    /// The end `port` of `dom`, whatever its state.
    ///
    /// # Errors
    /// `BadDomain`, `BadPort`.
    pub fn end(&self, dom: DomId, port: Port) -> Result<End, IpcError> {
        Ok(self.ends[dom_index(dom)?][port_index(port)?])
    }

    /// The domain on the other side of `dom`'s `port`: the MAC target of `send` and `close`.
    ///
    /// # Errors
    /// `BadDomain`, `BadPort`, `PortNotInUse`.
    pub fn peer(&self, dom: DomId, port: Port) -> Result<(DomId, TypeId), IpcError> {
        let e = self.end(dom, port)?;
        match e.state {
            State::Free => Err(IpcError::PortNotInUse),
            State::Unbound { remote } | State::Bound { remote, .. } | State::PeerClosed { remote } => {
                Ok((remote, e.remote_label))
            }
        }
    }

    fn free_port(&self, d: usize) -> Result<usize, IpcError> {
        (1..PORTS).find(|&p| self.ends[d][p].state == State::Free).ok_or(IpcError::NoFreePort)
    }

    /// Allocates an unbound port of `dom` that only `remote` may bind.
    ///
    /// # Errors
    /// `BadDomain`, `SelfPeer`, `NoFreePort`.
    pub fn alloc_unbound(&mut self, dom: DomId, label: TypeId, remote: DomId, remote_label: TypeId) -> Result<Port, IpcError> {
        let d = dom_index(dom)?;
        dom_index(remote)?;
        if dom == remote {
            return Err(IpcError::SelfPeer);
        }
        let p = self.free_port(d)?;
        self.ends[d][p] = End { state: State::Unbound { remote }, label, remote_label };
        self.pending[d] &= !(1 << p);
        Ok(Port(p as u32))
    }

    /// Binds a new port of `dom` to `remote`'s unbound port `remote_port`, which must have been
    /// allocated for `dom`: the allocator's consent, the other half of the two-sided check.
    ///
    /// # Errors
    /// `BadDomain`, `SelfPeer`, `BadPort`, `PortNotInUse`, `ForeignPort` (bound already, or
    /// allocated for another domain), `NoFreePort`.
    pub fn bind(&mut self, dom: DomId, label: TypeId, remote: DomId, remote_port: Port) -> Result<Port, IpcError> {
        let d = dom_index(dom)?;
        let r = dom_index(remote)?;
        if dom == remote {
            return Err(IpcError::SelfPeer);
        }
        let rp = port_index(remote_port)?;
        let theirs = self.ends[r][rp];
        match theirs.state {
            State::Free => return Err(IpcError::PortNotInUse),
            State::Unbound { remote: allowed } if allowed == dom => {}
            _ => return Err(IpcError::ForeignPort),
        }
        let p = self.free_port(d)?;
        self.ends[d][p] = End { state: State::Bound { remote, remote_port }, label, remote_label: theirs.label };
        self.ends[r][rp] = End { state: State::Bound { remote: dom, remote_port: Port(p as u32) }, label: theirs.label, remote_label: label };
        self.pending[d] &= !(1 << p);
        Ok(Port(p as u32))
    }

    /// Signals the peer of `dom`'s bound `port`: sets its pending bit and returns whom to wake.
    ///
    /// # Errors
    /// `BadDomain`, `BadPort`, `PortNotInUse`, `NotBound` (still unbound), `PeerClosed`.
    pub fn send(&mut self, dom: DomId, port: Port) -> Result<Wake, IpcError> {
        let e = self.end(dom, port)?;
        match e.state {
            State::Free => Err(IpcError::PortNotInUse),
            State::Unbound { .. } => Err(IpcError::NotBound),
            State::PeerClosed { .. } => Err(IpcError::PeerClosed),
            State::Bound { remote, remote_port } => {
                let r = dom_index(remote)?;
                self.pending[r] |= 1 << port_index(remote_port)?;
                Ok(Wake { dom: remote, port: remote_port })
            }
        }
    }

    /// Closes `dom`'s `port`. A bound peer becomes `PeerClosed` and is returned so that a
    /// domain waiting on it can be woken.
    ///
    /// # Errors
    /// `BadDomain`, `BadPort`, `PortNotInUse`.
    pub fn close(&mut self, dom: DomId, port: Port) -> Result<Option<Wake>, IpcError> {
        let d = dom_index(dom)?;
        let p = port_index(port)?;
        let e = self.ends[d][p];
        let woken = match e.state {
            State::Free => return Err(IpcError::PortNotInUse),
            State::Bound { remote, remote_port } => {
                let (r, rp) = (dom_index(remote)?, port_index(remote_port)?);
                self.ends[r][rp].state = State::PeerClosed { remote: dom };
                self.pending[r] |= 1 << rp;
                Some(Wake { dom: remote, port: remote_port })
            }
            State::Unbound { .. } | State::PeerClosed { .. } => None,
        };
        self.ends[d][p] = FREE;
        self.pending[d] &= !(1 << p);
        Ok(woken)
    }

    /// Reads and clears the pending bits of `dom` selected by `mask` (bit `i` = port `i`).
    #[must_use]
    pub fn take_pending(&mut self, dom: DomId, mask: u64) -> u64 {
        let Ok(d) = dom_index(dom) else { return 0 };
        let got = self.pending[d] & mask;
        self.pending[d] &= !got;
        got
    }

    /// The pending bits of `dom` without clearing them.
    #[must_use]
    pub fn pending(&self, dom: DomId) -> u64 {
        dom_index(dom).map_or(0, |d| self.pending[d])
    }

    /// Closes every port of a domain that ended; returns the peers to wake (at most one per
    /// port, so the caller's buffer of `PORTS` entries always suffices).
    pub fn domain_dead(&mut self, dom: DomId, mut wake: impl FnMut(Wake)) {
        let Ok(d) = dom_index(dom) else { return };
        for p in 1..PORTS {
            if self.ends[d][p].state != State::Free
                && let Ok(Some(w)) = self.close(dom, Port(p as u32))
            {
                wake(w);
            }
        }
        // Ports other domains allocated for the dead domain can never be bound now.
        for r in 0..MAX_DOMAINS {
            for p in 1..PORTS {
                if self.ends[r][p].state == (State::Unbound { remote: dom }) {
                    self.ends[r][p].state = State::PeerClosed { remote: dom };
                }
            }
        }
    }

    /// Ports of `dom` in use (for diagnostics and tests).
    #[must_use]
    pub fn ports_in_use(&self, dom: DomId) -> usize {
        dom_index(dom).map_or(0, |d| self.ends[d].iter().filter(|e| e.state != State::Free).count())
    }
}
