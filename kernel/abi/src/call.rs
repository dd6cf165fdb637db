//! Hypercall numbers, result codes and the raw argument block.

/// Hypercall numbers (the value in `RAX`). Numbers are never reused: a removed call leaves a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Call {
    /// Does nothing and returns [`Status::Ok`]: measures the hypercall path itself.
    Null = 0,
    /// `RDI` = buffer address, `RSI` = length (at most [`crate::CONSOLE_WRITE_MAX`]); writes the
    /// bytes to the console as one line per newline, prefixed with the domain name. Value: bytes written.
    ConsoleWrite = 1,
    /// Gives the rest of the time slice to other domains of the same or higher priority.
    Yield = 2,
    /// `RDI` = timeout in microseconds (`u64::MAX` = none): sleeps until an event or the timeout.
    /// Value: a [`BlockWake`].
    Block = 3,
    /// `RDI` = address of a [`crate::DomainInfo`]-sized buffer that receives the caller's info.
    DomainInfo = 4,
    /// `RDI` = a [`ShutdownReason`]. Does not return (unless the reason is invalid).
    Shutdown = 5,
}

impl Call {
    pub const ALL: [Call; 6] =
        [Call::Null, Call::ConsoleWrite, Call::Yield, Call::Block, Call::DomainInfo, Call::Shutdown];

    pub const fn from_raw(raw: u64) -> Option<Call> {
        Some(match raw {
            0 => Call::Null,
            1 => Call::ConsoleWrite,
            2 => Call::Yield,
            3 => Call::Block,
            4 => Call::DomainInfo,
            5 => Call::Shutdown,
            _ => return None,
        })
    }

    /// The name used in diagnostics and in the policy schema.
    pub const fn name(self) -> &'static str {
        match self {
            Call::Null => "null",
            Call::ConsoleWrite => "console_write",
            Call::Yield => "yield",
            Call::Block => "block",
            Call::DomainInfo => "domain_info",
            Call::Shutdown => "shutdown",
        }
    }
}

/// Result codes (the value in `RAX` after the call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Status {
    Ok = 0,
    /// The call number is not defined by this ABI version.
    UnknownCall = 1,
    /// A pointer argument (with its length) is not entirely inside the caller's memory.
    BadAddress = 2,
    /// A length argument exceeds the call's limit.
    BadLength = 3,
    /// Another argument is out of range.
    InvalidArgument = 4,
    /// The MAC policy refused the call.
    Denied = 5,
    /// The call was made outside CPL 0: only a domain's kernel may make hypercalls (ring-3 code
    /// inside a domain is refused before any decoding, as in Xen).
    NotKernel = 6,
}

impl Status {
    pub const fn from_raw(raw: u64) -> Option<Status> {
        Some(match raw {
            0 => Status::Ok,
            1 => Status::UnknownCall,
            2 => Status::BadAddress,
            3 => Status::BadLength,
            4 => Status::InvalidArgument,
            5 => Status::Denied,
            6 => Status::NotKernel,
            _ => return None,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::UnknownCall => "unknown call",
            Status::BadAddress => "bad address",
            Status::BadLength => "bad length",
            Status::InvalidArgument => "invalid argument",
            Status::Denied => "denied",
            Status::NotKernel => "not kernel mode",
        }
    }
}

/// Why a `Block` call returned (its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum BlockWake {
    Timeout = 0,
    Event = 1,
}

impl BlockWake {
    pub const fn from_raw(raw: u64) -> Option<BlockWake> {
        match raw {
            0 => Some(BlockWake::Timeout),
            1 => Some(BlockWake::Event),
            _ => None,
        }
    }
}

/// Why a domain shut itself down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum ShutdownReason {
    /// The domain finished its work.
    Done = 0,
    /// The domain detected a failure it could not handle.
    Failure = 1,
    /// The domain's panic handler ran.
    Panic = 2,
}

impl ShutdownReason {
    pub const fn from_raw(raw: u64) -> Option<ShutdownReason> {
        match raw {
            0 => Some(ShutdownReason::Done),
            1 => Some(ShutdownReason::Failure),
            2 => Some(ShutdownReason::Panic),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            ShutdownReason::Done => "done",
            ShutdownReason::Failure => "failure",
            ShutdownReason::Panic => "panic",
        }
    }
}

/// The registers of one hypercall, as the hypervisor reads them from the vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HypercallArgs {
    /// `RAX`.
    pub call: u64,
    /// `RDI`, `RSI`, `RDX`, `R10`, `R8`.
    pub args: [u64; 5],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_numbers_round_trip_and_are_dense() {
        for (i, c) in Call::ALL.iter().enumerate() {
            assert_eq!(*c as u64, i as u64, "{c:?}");
            assert_eq!(Call::from_raw(*c as u64), Some(*c));
        }
        assert_eq!(Call::from_raw(Call::ALL.len() as u64), None);
        assert_eq!(Call::from_raw(u64::MAX), None);
    }

    #[test]
    fn status_codes_round_trip() {
        for raw in 0..7 {
            assert_eq!(Status::from_raw(raw).map(|s| s as u64), Some(raw));
        }
        assert_eq!(Status::from_raw(7), None);
    }

    #[test]
    fn shutdown_reasons_and_wakes_round_trip() {
        for raw in 0..3 {
            assert_eq!(ShutdownReason::from_raw(raw).map(|s| s as u64), Some(raw));
        }
        assert_eq!(ShutdownReason::from_raw(3), None);
        assert_eq!(BlockWake::from_raw(BlockWake::Event as u64), Some(BlockWake::Event));
        assert_eq!(BlockWake::from_raw(2), None);
    }
}
