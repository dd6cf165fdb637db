//! Device assignment: at build, gives a domain the PCI function its manifest line names
//! (`pci=BB:DD.F pci_label=T mmio_label=M`) once the policy grants `device { assign }` on `T`
//! and `mmio { map }` on `M`, mapping the function's memory BARs into the domain's nested page
//! tables at their host-physical addresses; afterwards serves the device calls (48..55), each
//! checked again against `device { assign }`. Config space goes through `warden_vmm::pci`'s
//! filter; the logic is there, this file only touches ports 0xCF8/0xCFC and the NPT.

use warden_abi::Status;
use warden_abi::device::{DEVICE_BASE, DeviceCall};
use warden_core::paging::{PageTable, flags};
use warden_hw::phys::IdentityMem;
use warden_hw::port::{inl, outl};
use warden_ipc::device::{ASSIGNMENT_CHECKS, device_requirement};
use warden_policy::{Kind, TypeId};
use warden_vmm::manifest::DomainSpec;
use warden_vmm::pci::{self, Assigned, Bdf, ConfigSpace, Write};
use warden_vmm::sched::DomainId;
use warden_vmm::vmcb::field;

use super::{Dom, Next, Runner, get, set};

/// An assigned function and the policy label it was granted under.
pub(super) struct Grant {
    assigned: Assigned,
    label: TypeId,
}

/// Configuration mechanism #1. The hypervisor is the only user of these ports: every domain's
/// port access exits and stops it.
struct Ports;

impl ConfigSpace for Ports {
    fn read(&mut self, bdf: Bdf, offset: u8) -> u32 {
        outl(0xcf8, bdf.cf8(offset));
        inl(0xcfc)
    }
    fn write(&mut self, bdf: Bdf, offset: u8, value: u32) {
        outl(0xcf8, bdf.cf8(offset));
        outl(0xcfc, value);
    }
}

/// Gives `dom` the device its manifest line names, if any. `others` are the domains built
/// before it (a function is assigned at most once). The error is the refusal message.
pub(super) fn assign(
    mem: &mut IdentityMem,
    mac: &mut super::ipc::Host,
    id: u32,
    spec: &DomainSpec<'_>,
    dom: &mut Dom,
    others: &[Dom],
) -> Result<(), alloc::string::String> {
    use alloc::format;
    let Some(addr) = spec.get("pci") else {
        return Ok(());
    };
    let bdf = Bdf::parse(addr).ok_or_else(|| format!("pci={addr} is not a BB:DD.F address"))?;
    let (Some(dev_label), Some(mmio_label)) = (spec.get("pci_label"), spec.get("mmio_label"))
    else {
        return Err(format!(
            "pci={bdf} needs pci_label= and mmio_label= (the policy types that grant it)"
        ));
    };
    if others.iter().any(|o| {
        o.device
            .as_ref()
            .is_some_and(|g| g.assigned.device.bdf == bdf)
    }) {
        return Err(format!(
            "device {bdf} is already assigned to another domain"
        ));
    }
    let subject = mac
        .resolve(&dom.label, Kind::Domain)
        .map_err(|e| format!("label {}: {e}", dom.label))?;
    let dev_t = mac
        .resolve(dev_label, Kind::Device)
        .map_err(|e| format!("pci_label {dev_label}: {e}"))?;
    let mmio_t = mac
        .resolve(mmio_label, Kind::Mmio)
        .map_err(|e| format!("mmio_label {mmio_label}: {e}"))?;
    let [(dev_class, dev_perm), (mmio_class, mmio_perm)] = ASSIGNMENT_CHECKS;
    mac.check_resource(id, subject, DEVICE_BASE, dev_t, dev_class, dev_perm)
        .map_err(|_| format!("the policy does not grant device {{ assign assign_noiommu }} on {dev_label} ({bdf}): no IOMMU confines its DMA"))?;
    mac.check_resource(id, subject, DEVICE_BASE, mmio_t, mmio_class, mmio_perm)
        .map_err(|_| format!("the policy does not grant mmio map on {mmio_label} ({bdf})"))?;
    let device = pci::probe(&mut Ports, bdf).map_err(|e| format!("device {bdf}: {e}"))?;
    let npt = PageTable::from_root(
        get(mem, dom.vmcb, field::N_CR3),
        flags::WRITABLE | flags::USER,
    );
    // Device registers: uncached, never executable.
    let leaf =
        flags::USER | flags::WRITABLE | flags::NO_EXECUTE | flags::NO_CACHE | flags::WRITE_THROUGH;
    for bar in device.bars.iter().flatten().filter(|b| b.mappable()) {
        if bar.base < dom.memory_bytes {
            return Err(format!(
                "device {bdf}: BAR at {:#x} overlaps the domain's memory",
                bar.base
            ));
        }
        crate::memory::with_frames(|f| npt.map_range(mem, f, bar.base, bar.base, bar.size, leaf))
            .map_err(|e| {
            format!(
                "device {bdf}: mapping BAR {:#x}+{:#x}: {e:?}",
                bar.base, bar.size
            )
        })?;
        println!(
            "domain {} (id {id}): device {bdf} BAR {:#x}+{:#x} mapped",
            dom.name, bar.base, bar.size
        );
    }
    println!(
        "domain {} (id {id}) assigned device {bdf} ({:04x}:{:04x}) as {dev_label}; DMA offset {:#x} (no IOMMU: inside the trust boundary)",
        dom.name, device.vendor, device.device, dom.region.hpa
    );
    dom.device = Some(Grant {
        assigned: Assigned::new(device),
        label: dev_t,
    });
    Ok(())
}

/// Stops the device an ended domain held (bus mastering, memory and I/O decode off) before
/// its frames go back to the allocator: without an IOMMU, a device left mastering would keep
/// writing into memory the next domain is given.
pub(super) fn quiesce(grant: Grant, name: &str, id: usize) {
    let bdf = grant.assigned.device.bdf;
    let command = pci::quiesce(&mut Ports, bdf);
    println!(
        "domain {name} (id {id}): device {bdf} quiesced (command {command:#06x}: bus mastering and decoding off)"
    );
}

impl Runner {
    /// One device call of domain `id`: decided by `device { assign }` on the device's label.
    pub(super) fn device_hypercall(
        &mut self,
        id: DomainId,
        call: DeviceCall,
        args: [u64; 5],
    ) -> Next {
        let i = id.0 as usize;
        let (status, value) = self.device_call(i, call, args);
        let vmcb = self.doms[i].vmcb;
        set(&mut self.vmcbs, vmcb, field::RAX, status as u64);
        self.doms[i].regs.rdx = value;
        Next::Continue
    }

    fn device_call(&mut self, i: usize, call: DeviceCall, args: [u64; 5]) -> (Status, u64) {
        let d = &mut self.doms[i];
        // Index 0 is the only device a domain can hold today.
        let Some(grant) = d.device.as_mut().filter(|_| args[0] == 0) else {
            return (Status::InvalidArgument, 0);
        };
        let (class, perm) = device_requirement(call);
        if self
            .mac
            .check_own_resource(i as u32, call as u64, grant.label, class, perm)
            .is_err()
        {
            return (Status::Denied, 0);
        }
        let dev = grant.assigned.device;
        match call {
            DeviceCall::Info => (
                Status::Ok,
                u64::from(dev.bdf.packed())
                    | u64::from(dev.vendor) << 16
                    | u64::from(dev.device) << 32,
            ),
            DeviceCall::DmaOffset => (Status::Ok, d.region.hpa),
            DeviceCall::ConfigRead => {
                let hw = if args[1] < u64::from(pci::CONFIG_BYTES) {
                    Ports.read(dev.bdf, args[1] as u8)
                } else {
                    0
                };
                match grant.assigned.read(args[1], hw) {
                    Ok(v) => (Status::Ok, u64::from(v)),
                    Err(_) => (Status::InvalidArgument, 0),
                }
            }
            DeviceCall::ConfigWrite => {
                let Ok(value) = u32::try_from(args[2]) else {
                    return (Status::InvalidArgument, 0);
                };
                match grant.assigned.write(args[1], value) {
                    Ok(Write::Pass(v)) => {
                        Ports.write(dev.bdf, args[1] as u8, v);
                        (Status::Ok, 0)
                    }
                    Ok(Write::Absorb) => (Status::Ok, 0),
                    Err(_) => (Status::InvalidArgument, 0),
                }
            }
        }
    }
}
