//! How a domain ended, whether that matches what its scenario documented, and the one-line
//! diagnostic printed when the hypervisor stops a domain.

use warden_abi::ShutdownReason;
use warden_abi::lifecycle::{DomainState, EndReason};

use crate::manifest::Expected;
use crate::sched::State;

/// Why the hypervisor stopped a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A nested page fault: guest-physical `gpa` is not backed for this domain, or (`present`)
    /// is mapped without the right asked for (a read-only grant written, shared data fetched).
    Memory { gpa: u64, write: bool, fetch: bool, present: bool },
    /// WRMSR outside the virtualised set.
    MsrWrite { msr: u32, value: u64 },
    /// Port I/O.
    Port { port: u16, input: bool },
    /// The guest triple-faulted; `cr2` is its last page-fault address.
    TripleFault { cr2: u64 },
    /// VMRUN refused the domain's state.
    InvalidState,
    /// An instruction domains may never execute.
    Instruction(&'static str),
    /// A control-register write the rule (`crwrite`) refuses.
    ControlRegister { cr: u8, value: u64 },
    /// An intercepted exception: #DB (1) or #AC (17), never delivered to a domain.
    Exception(u8),
    /// An exit this hypervisor does not expect (reported with its code).
    UnexpectedExit(u64),
}

/// How a domain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Shutdown(ShutdownReason),
    Stopped { violation: Violation, rip: u64 },
    /// A management domain destroyed it (`DomainDestroy`).
    Destroyed { by: u32 },
}

impl End {
    /// Does this end match the scenario's documented outcome?
    pub fn matches(&self, expected: Expected) -> bool {
        match (self, expected) {
            (End::Shutdown(ShutdownReason::Done), Expected::Shutdown) => true,
            (End::Shutdown(ShutdownReason::Failure | ShutdownReason::Panic), Expected::Failure) => true,
            (End::Stopped { violation, .. }, e) => matches!(
                (violation, e),
                (Violation::Memory { .. }, Expected::MemoryViolation)
                    | (Violation::MsrWrite { .. }, Expected::MsrViolation)
                    | (Violation::Port { .. }, Expected::IoViolation)
                    | (Violation::TripleFault { .. }, Expected::TripleFault)
                    | (Violation::InvalidState, Expected::InvalidState)
                    | (Violation::Instruction(_), Expected::ForbiddenInstruction)
                    | (Violation::ControlRegister { .. }, Expected::CrViolation)
                    | (Violation::Exception(_), Expected::Exception)
            ),
            _ => false,
        }
    }
}

impl End {
    /// How the lifecycle calls report this end (`DomainStatus::end`).
    pub fn reason(&self) -> EndReason {
        match self {
            End::Shutdown(ShutdownReason::Done) => EndReason::Done,
            End::Shutdown(_) => EndReason::Failure,
            End::Stopped { .. } => EndReason::Stopped,
            End::Destroyed { .. } => EndReason::Destroyed,
        }
    }
}

/// The state the lifecycle calls report for a domain: `ended` (it has an end, or was refused)
/// wins over the scheduler's state.
pub fn reported_state(sched: State, ended: bool) -> DomainState {
    if ended {
        return DomainState::Ended;
    }
    match sched {
        State::Building => DomainState::Building,
        State::Runnable => DomainState::Runnable,
        State::Blocked { .. } => DomainState::Blocked,
        State::Paused => DomainState::Paused,
        State::Dead => DomainState::Ended,
    }
}

/// The one-line diagnostic: `domain NAME (id N) stopped: REASON at rip=.. addr=..`.
#[derive(Debug)]
pub struct Diagnostic<'a> {
    pub name: &'a str,
    pub id: u32,
    pub end: End,
}

impl core::fmt::Display for Diagnostic<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (name, id) = (self.name, self.id);
        match self.end {
            End::Shutdown(r) => write!(f, "domain {name} (id {id}) shut down: {}", r.name()),
            End::Destroyed { by } => write!(f, "domain {name} (id {id}) destroyed by domain {by}"),
            End::Stopped { violation, rip } => {
                write!(f, "domain {name} (id {id}) stopped: ")?;
                match violation {
                    Violation::Memory { gpa, write, fetch, present } => {
                        let kind = match (fetch, write, present) {
                            (true, _, true) => "fetch from a non-executable mapping",
                            (false, true, true) => "write to a read-only mapping",
                            (true, _, false) => "fetch outside its memory",
                            (false, true, false) => "write outside its memory",
                            (false, false, _) => "read outside its memory",
                        };
                        write!(f, "memory violation ({kind}) rip={rip:#x} addr={gpa:#x}")
                    }
                    Violation::MsrWrite { msr, value } => {
                        write!(f, "forbidden MSR write msr={msr:#x} value={value:#x} rip={rip:#x}")
                    }
                    Violation::Port { port, input } => {
                        let dir = if input { "in" } else { "out" };
                        write!(f, "forbidden port I/O ({dir}) port={port:#x} rip={rip:#x}")
                    }
                    Violation::TripleFault { cr2 } => write!(f, "triple fault rip={rip:#x} addr={cr2:#x}"),
                    Violation::InvalidState => write!(f, "invalid vCPU state (VMRUN refused it) rip={rip:#x}"),
                    Violation::Instruction(i) => write!(f, "forbidden instruction {i} rip={rip:#x}"),
                    Violation::ControlRegister { cr, value } => {
                        write!(f, "forbidden control-register write cr{cr}={value:#x} rip={rip:#x}")
                    }
                    Violation::Exception(v) => write!(f, "exception #{} intercepted rip={rip:#x}", if v == 1 { "DB" } else { "AC" }),
                    Violation::UnexpectedExit(c) => write!(f, "unexpected exit {c:#x} rip={rip:#x}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn outcome_matching() {
        let stop = |violation| End::Stopped { violation, rip: 0 };
        let cases: &[(End, Expected, bool)] = &[
            (End::Shutdown(ShutdownReason::Done), Expected::Shutdown, true),
            (End::Shutdown(ShutdownReason::Panic), Expected::Shutdown, false),
            (End::Shutdown(ShutdownReason::Panic), Expected::Failure, true),
            (stop(Violation::Memory { gpa: 0, write: false, fetch: false, present: false }), Expected::MemoryViolation, true),
            (stop(Violation::Memory { gpa: 0, write: false, fetch: false, present: false }), Expected::TripleFault, false),
            (stop(Violation::MsrWrite { msr: 1, value: 0 }), Expected::MsrViolation, true),
            (stop(Violation::Port { port: 1, input: true }), Expected::IoViolation, true),
            (stop(Violation::TripleFault { cr2: 0 }), Expected::TripleFault, true),
            (stop(Violation::InvalidState), Expected::InvalidState, true),
            (stop(Violation::Instruction("VMRUN")), Expected::Shutdown, false),
            (stop(Violation::Instruction("MOV DR")), Expected::ForbiddenInstruction, true),
            (End::Shutdown(ShutdownReason::Done), Expected::Running, false),
            (stop(Violation::ControlRegister { cr: 4, value: 0 }), Expected::CrViolation, true),
            (stop(Violation::Exception(1)), Expected::Exception, true),
            (stop(Violation::Exception(17)), Expected::CrViolation, false),
        ];
        for (end, exp, want) in cases {
            assert_eq!(end.matches(*exp), *want, "{end:?} vs {exp:?}");
        }
    }

    #[test]
    fn reported_states_and_end_reasons() {
        let cases: &[(State, bool, DomainState)] = &[
            (State::Building, false, DomainState::Building),
            (State::Runnable, false, DomainState::Runnable),
            (State::Blocked { until: None }, false, DomainState::Blocked),
            (State::Paused, false, DomainState::Paused),
            (State::Dead, false, DomainState::Ended),
            (State::Runnable, true, DomainState::Ended),
            (State::Building, true, DomainState::Ended),
        ];
        for &(s, ended, want) in cases {
            assert_eq!(reported_state(s, ended), want, "{s:?} {ended}");
        }
        let stop = End::Stopped { violation: Violation::InvalidState, rip: 0 };
        let ends: &[(End, EndReason)] = &[
            (End::Shutdown(ShutdownReason::Done), EndReason::Done),
            (End::Shutdown(ShutdownReason::Panic), EndReason::Failure),
            (End::Shutdown(ShutdownReason::Failure), EndReason::Failure),
            (stop, EndReason::Stopped),
            (End::Destroyed { by: 0 }, EndReason::Destroyed),
        ];
        for (e, want) in ends {
            assert_eq!(e.reason(), *want, "{e:?}");
        }
    }

    #[test]
    fn diagnostics_are_one_line_with_domain_reason_rip_and_address() {
        let d = Diagnostic {
            name: "reader",
            id: 1,
            end: End::Stopped { violation: Violation::Memory { gpa: 0x4000_0000, write: false, fetch: false, present: false }, rip: 0x20_1234 },
        };
        assert_eq!(
            d.to_string(),
            "domain reader (id 1) stopped: memory violation (read outside its memory) rip=0x201234 addr=0x40000000"
        );
        let t = Diagnostic { name: "tf", id: 4, end: End::Stopped { violation: Violation::TripleFault { cr2: 0x8 }, rip: 0x5 } };
        assert_eq!(t.to_string(), "domain tf (id 4) stopped: triple fault rip=0x5 addr=0x8");
        // Issue 16, finding 12: a write through a read-only grant is not "outside its memory".
        let ro = |write, fetch| Diagnostic {
            name: "g",
            id: 1,
            end: End::Stopped { violation: Violation::Memory { gpa: 0xc000_0000, write, fetch, present: true }, rip: 1 },
        };
        assert!(ro(true, false).to_string().contains("(write to a read-only mapping) rip=0x1 addr=0xc0000000"));
        assert!(ro(false, true).to_string().contains("(fetch from a non-executable mapping)"));
        let x = Diagnostic { name: "w", id: 3, end: End::Destroyed { by: 0 } };
        assert_eq!(x.to_string(), "domain w (id 3) destroyed by domain 0");
        assert!(!End::Destroyed { by: 0 }.matches(Expected::Shutdown));
        let s = Diagnostic { name: "ok", id: 0, end: End::Shutdown(ShutdownReason::Done) };
        assert!(!s.to_string().contains('\n'));
    }
}
