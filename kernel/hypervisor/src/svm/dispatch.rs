//! The single hypercall dispatch function: every base hypercall of every domain passes through
//! [`dispatch`], and every one is offered to [`mac_check`] before it does anything. The
//! inter-domain calls (`IPC_BASE..`) are routed by the run loop to `ipc::ipc_hypercall`, where
//! `warden_ipc::Ipc::handle` takes their MAC decision once their target is known; both paths
//! decide through the one `warden_ipc::Mac`.

use warden_abi::{BlockWake, Call, DomainInfo, HypercallArgs, ShutdownReason, Status, to_fixed};
use warden_core::mem::PhysMem;
use warden_vmm::hypercall::{Hypercall, decode};
use warden_vmm::sched::timeout_ticks;

use super::Dom;

/// What the run loop does after a hypercall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Resume the caller.
    Resume,
    /// Let other domains of the same or higher priority run first.
    Yield,
    /// Block for this many ticks (`None`: until an event).
    Block(Option<u64>),
    /// The domain ended itself.
    End(ShutdownReason),
}

/// The mandatory-access-control hook: asked about every hypercall after its arguments are
/// validated and before it has any effect. The decision (class and permission from the schema,
/// audit) is taken by `warden_ipc::Mac` behind `Host::check_base`; the IPC calls take theirs in
/// `warden_ipc::Ipc::handle` once their target is known.
pub(super) fn mac_check(mac: &mut super::ipc::Host, id: u32, call: Call) -> Result<(), Status> {
    mac.check_base(id, call)
}

/// Decodes, checks and performs one hypercall of domain `dom`; returns (`RAX`, `RDX`, action).
pub(super) fn dispatch(
    mem: &mut impl PhysMem,
    dom: &mut Dom,
    id: u32,
    regs: HypercallArgs,
    mac: &mut super::ipc::Host,
) -> (Status, u64, Action) {
    let call = match decode(regs, dom.memory_bytes) {
        Ok(c) => c,
        Err(status) => return (status, 0, Action::Resume),
    };
    if let Err(status) = mac_check(mac, id, call.call()) {
        return (status, 0, Action::Resume);
    }
    match call {
        Hypercall::Null => (Status::Ok, 0, Action::Resume),
        Hypercall::ConsoleWrite(range) => {
            let mut buf = [0u8; warden_abi::CONSOLE_WRITE_MAX as usize];
            let bytes = &mut buf[..range.len as usize];
            mem.read(dom.region.hpa + range.gpa, bytes);
            let super::Dom { name, console, .. } = dom;
            console.feed(bytes, |line| super::ipc::charged(&mut mac.budgets, id, format_args!("[{name}] {line}")));
            (Status::Ok, range.len, Action::Resume)
        }
        Hypercall::Yield => (Status::Ok, 0, Action::Yield),
        Hypercall::Block { timeout_us } => {
            // The only wake-up source in ABI v1 is the timeout; event channels add events.
            let ticks = timeout_us.map(|us| timeout_ticks(us, super::timer::TICK_US));
            (Status::Ok, BlockWake::Timeout as u64, Action::Block(ticks))
        }
        Hypercall::DomainInfo(range) => {
            if !super::guard::writable(mem, dom, range.gpa, range.len) {
                return (Status::BadAddress, 0, Action::Resume);
            }
            let info = DomainInfo {
                domain_id: id,
                priority: u32::from(dom.priority),
                memory_bytes: dom.memory_bytes,
                cpu_ticks: dom.cpu_ticks,
                exits: dom.exits,
                name: to_fixed(&dom.name),
                label: to_fixed(&dom.label),
            };
            mem.write(dom.region.hpa + range.gpa, &info.to_bytes());
            (Status::Ok, 0, Action::Resume)
        }
        Hypercall::Shutdown(reason) => (Status::Ok, 0, Action::End(reason)),
    }
}
