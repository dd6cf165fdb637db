//! The MAC policy at boot: finds the `kind=policy` module, validates it with the no_std loader
//! and builds the decision point — before any domain is built. A missing or malformed policy
//! stops the boot with a clear message: there is no permissive mode and no built-in default.

use alloc::boxed::Box;
use alloc::vec;
use warden_core::mem::PhysMem;
use warden_core::multiboot::BootInfo;
use warden_hw::debug_exit::{ExitCode, exit};
use warden_hw::phys::IdentityMem;
use warden_ipc::{AuditRing, EventChannels, GrantTable, Ipc, Mac};

/// Audit records kept (the oldest are dropped and counted beyond this).
pub(crate) const AUDIT_RECORDS: usize = 1024;
/// Chinese Wall memberships the hypervisor can count.
pub(crate) const WALL_MEMBERS: usize = 64;

/// The inter-domain state of this hypervisor: policy, channels, grants, audit ring.
pub(crate) type HvIpc = Ipc<'static, AUDIT_RECORDS, WALL_MEMBERS>;

// The tables are far larger than the boot stack, so they live in static storage and are
// handed out once, by `load`.
static RING: spin::Mutex<AuditRing<AUDIT_RECORDS>> = spin::Mutex::new(AuditRing::new());
static EVTCHN: spin::Mutex<EventChannels> = spin::Mutex::new(EventChannels::new());
static GRANTS: spin::Mutex<GrantTable> = spin::Mutex::new(GrantTable::new());

fn fatal(msg: core::fmt::Arguments<'_>) -> ! {
    println!("mac: FATAL: {msg}");
    exit(ExitCode::Failure);
}

/// Loads and validates the policy module; never returns without a usable policy.
pub(crate) fn load(boot: &BootInfo) -> HvIpc {
    let mut modules = boot
        .modules
        .iter()
        .filter(|m| m.arg("kind") == Some("policy"));
    let Some(module) = modules.next() else {
        fatal(format_args!(
            "no policy module (a Multiboot module with `kind=policy`): Warden runs no domain without a MAC policy"
        ));
    };
    if modules.next().is_some() {
        fatal(format_args!("more than one policy module"));
    }
    let mem = IdentityMem::new();
    let mut bytes = vec![0u8; module.len() as usize];
    mem.read(module.start, &mut bytes);
    // The policy lives as long as the hypervisor: every decision borrows it.
    let blob: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    // `load` runs once per boot; a second call would find the locks held and is a bug.
    let (Some(ring), Some(evtchn), Some(grants)) =
        (RING.try_lock(), EVTCHN.try_lock(), GRANTS.try_lock())
    else {
        fatal(format_args!("the policy was loaded twice"));
    };
    let (ring, evtchn, grants) = (
        spin::MutexGuard::leak(ring),
        spin::MutexGuard::leak(evtchn),
        spin::MutexGuard::leak(grants),
    );
    let mac = match Mac::new(blob, ring) {
        Ok(m) => m,
        Err(e) => fatal(format_args!("policy module refused: {e}")),
    };
    let p = mac.policy();
    print!(
        "mac: policy loaded: {} types, {} conflict sets, {} bytes, sha256 ",
        p.type_count(),
        p.conflict_set_count(),
        blob.len()
    );
    for b in mac.hash() {
        print!("{b:02x}");
    }
    println!(
        ", hypervisor label {}",
        mac.type_name(mac.hypervisor_label())
    );
    Ipc::new(mac, evtchn, grants)
}
