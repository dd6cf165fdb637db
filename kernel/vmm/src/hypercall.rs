//! Hypercall decoding: raw registers become a typed [`Hypercall`] whose pointers are already
//! checked against the caller's memory. This is the only place guest registers are trusted.

use warden_abi::{CONSOLE_WRITE_MAX, Call, DomainInfo, HypercallArgs, ShutdownReason, Status};

use crate::layout::{GuestRange, guest_range};

/// A validated hypercall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypercall {
    Null,
    ConsoleWrite(GuestRange),
    Yield,
    /// `None` = no timeout.
    Block { timeout_us: Option<u64> },
    DomainInfo(GuestRange),
    Shutdown(ShutdownReason),
}

impl Hypercall {
    pub fn call(&self) -> Call {
        match self {
            Hypercall::Null => Call::Null,
            Hypercall::ConsoleWrite(_) => Call::ConsoleWrite,
            Hypercall::Yield => Call::Yield,
            Hypercall::Block { .. } => Call::Block,
            Hypercall::DomainInfo(_) => Call::DomainInfo,
            Hypercall::Shutdown(_) => Call::Shutdown,
        }
    }
}

/// Decodes the registers of a call from a domain with `memory_bytes` of memory.
pub fn decode(regs: HypercallArgs, memory_bytes: u64) -> Result<Hypercall, Status> {
    let call = Call::from_raw(regs.call).ok_or(Status::UnknownCall)?;
    let [a0, a1, ..] = regs.args;
    Ok(match call {
        Call::Null => Hypercall::Null,
        Call::ConsoleWrite => {
            if a1 > CONSOLE_WRITE_MAX {
                return Err(Status::BadLength);
            }
            Hypercall::ConsoleWrite(guest_range(memory_bytes, a0, a1).ok_or(Status::BadAddress)?)
        }
        Call::Yield => Hypercall::Yield,
        Call::Block => Hypercall::Block { timeout_us: (a0 != u64::MAX).then_some(a0) },
        Call::DomainInfo => {
            Hypercall::DomainInfo(guest_range(memory_bytes, a0, DomainInfo::SIZE as u64).ok_or(Status::BadAddress)?)
        }
        Call::Shutdown => Hypercall::Shutdown(ShutdownReason::from_raw(a0).ok_or(Status::InvalidArgument)?),
    })
}

/// Console output of one domain: bytes are buffered up to a newline so lines from different
/// domains never interleave; control characters other than newline and tab become `.`.
#[derive(Debug)]
pub struct LineBuffer {
    buf: heapless::Vec<u8, 160>,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuffer {
    pub const fn new() -> Self {
        LineBuffer { buf: heapless::Vec::new() }
    }

    /// Feeds bytes; `emit` gets each complete line (without the newline). A line longer than
    /// the buffer is emitted in pieces.
    pub fn feed(&mut self, bytes: &[u8], mut emit: impl FnMut(&str)) {
        for &b in bytes {
            if b == b'\n' {
                self.flush(&mut emit);
                continue;
            }
            let b = if b == b'\t' || (0x20..0x7f).contains(&b) { b } else { b'.' };
            if self.buf.push(b).is_err() {
                self.flush(&mut emit);
                let _ = self.buf.push(b);
            }
        }
    }

    /// Emits whatever is buffered (used when a domain ends mid-line).
    pub fn flush(&mut self, emit: &mut impl FnMut(&str)) {
        if !self.buf.is_empty() {
            // Only printable ASCII is ever pushed, so this is always valid UTF-8.
            emit(core::str::from_utf8(&self.buf).unwrap_or("?"));
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    const MEM: u64 = 4 << 20;

    fn regs(call: u64, a0: u64, a1: u64) -> HypercallArgs {
        HypercallArgs { call, args: [a0, a1, 0, 0, 0] }
    }

    #[test]
    fn decoding_table() {
        let r = |gpa, len| GuestRange { gpa, len };
        let cases: &[(HypercallArgs, Result<Hypercall, Status>)] = &[
            (regs(0, 9, 9), Ok(Hypercall::Null)),
            (regs(1, 0x20_0000, 5), Ok(Hypercall::ConsoleWrite(r(0x20_0000, 5)))),
            (regs(1, 0x20_0000, 0), Ok(Hypercall::ConsoleWrite(r(0x20_0000, 0)))),
            (regs(1, 0x20_0000, CONSOLE_WRITE_MAX + 1), Err(Status::BadLength)),
            (regs(1, 0, 5), Err(Status::BadAddress)),
            (regs(1, MEM - 2, 5), Err(Status::BadAddress)),
            (regs(1, 0x4000_0000, 5), Err(Status::BadAddress)),
            (regs(1, u64::MAX - 1, 5), Err(Status::BadAddress)),
            (regs(1, 0xffff_8000_0000_0000, 5), Err(Status::BadAddress)),
            (regs(2, 0, 0), Ok(Hypercall::Yield)),
            (regs(3, 1000, 0), Ok(Hypercall::Block { timeout_us: Some(1000) })),
            (regs(3, u64::MAX, 0), Ok(Hypercall::Block { timeout_us: None })),
            (regs(4, 0x30_0000, 0), Ok(Hypercall::DomainInfo(r(0x30_0000, DomainInfo::SIZE as u64)))),
            (regs(4, MEM - 8, 0), Err(Status::BadAddress)),
            (regs(5, 0, 0), Ok(Hypercall::Shutdown(ShutdownReason::Done))),
            (regs(5, 2, 0), Ok(Hypercall::Shutdown(ShutdownReason::Panic))),
            (regs(5, 3, 0), Err(Status::InvalidArgument)),
            (regs(6, 0, 0), Err(Status::UnknownCall)),
            (regs(u64::MAX, 0, 0), Err(Status::UnknownCall)),
        ];
        for (r, want) in cases {
            assert_eq!(decode(*r, MEM), *want, "{r:?}");
        }
    }

    #[test]
    fn random_registers_decode_to_valid_ranges_or_errors() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..100_000 {
            let call = next() % 8;
            let (a0, a1) = (next() >> (next() % 64), next() >> (next() % 64));
            match decode(regs(call, a0, a1), MEM) {
                Ok(Hypercall::ConsoleWrite(g)) | Ok(Hypercall::DomainInfo(g)) => {
                    assert!(g.gpa + g.len <= MEM && (g.len == 0 || g.gpa >= 0x1000));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn line_buffer_splits_lines_and_sanitises() {
        let mut lb = LineBuffer::new();
        let mut out: Vec<String> = Vec::new();
        lb.feed(b"one\ntw", |l| out.push(l.into()));
        lb.feed(b"o\x1b[2J\n", |l| out.push(l.into()));
        assert_eq!(out, ["one", "two.[2J"]);
        let long = [b'x'; 400];
        lb.feed(&long, |l| out.push(l.into()));
        lb.flush(&mut |l: &str| out.push(l.into()));
        assert_eq!(out[2..].iter().map(String::len).sum::<usize>(), 400);
    }
}
