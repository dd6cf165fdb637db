//! Which interface the platform TPM is reached through (FIFO/TIS or CRB), and one driver over either.
//!
//! `choose` decides from the interface-identifier register (PTP §6.4.2: `InterfaceType` 0 = FIFO,
//! 1 = CRB, 0xF = a TIS 1.3 device without the register), or from a firmware hint (the ACPI
//! `TPM2` table's start method) when the boot path has one: a hint wins, because a TPM behind a
//! CRB that is not memory-mapped at the TIS address has no register there to read.

use crate::acpi::StartMethod;
use crate::crb::{Crb, CrbError, CrbRegs};
use crate::tis::{Tis, TisError, TisRegs};

/// The two register interfaces of the PC Client PTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// The FIFO (TIS) interface.
    Fifo,
    /// The Command Response Buffer interface.
    Crb,
}

/// Chooses the interface: the firmware's `hint` if there is one, else the `InterfaceType` field
/// of `interface_id` (read at `0xFED40030`). `None`: a reserved interface type.
pub fn choose(hint: Option<Interface>, interface_id: u32) -> Option<Interface> {
    if hint.is_some() {
        return hint;
    }
    // All ones is a TIS 1.3 device (QEMU's TPM 1.2 TIS reads so) or nothing on the bus: the
    // FIFO probe tells the two apart by its vendor and capability registers.
    match interface_id & 0xf {
        0 | 0xf => Some(Interface::Fifo),
        1 => Some(Interface::Crb),
        _ => None,
    }
}

/// The interface the ACPI `TPM2` table's start method names, if Warden can drive it: 6 is the
/// memory-mapped FIFO; 7 (CRB) and 8 (CRB whose start is also signalled through ACPI, as many
/// firmware TPMs do — Warden writes `CTRL_START` only, having no AML interpreter) are the CRB.
/// Other methods (the ACPI start method alone, Arm's SMC, …) give no hint: the register decides.
pub fn hint(method: StartMethod) -> Option<Interface> {
    match method {
        StartMethod::Tis => Some(Interface::Fifo),
        StartMethod::Crb | StartMethod::CrbAcpi => Some(Interface::Crb),
        StartMethod::Acpi | StartMethod::Other(_) => None,
    }
}

/// A driver error from either interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverError {
    /// From the FIFO driver.
    Tis(TisError),
    /// From the CRB driver.
    Crb(CrbError),
}

impl core::fmt::Display for DriverError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Tis(e) => write!(f, "{e}"),
            Self::Crb(e) => write!(f, "{e}"),
        }
    }
}

/// The platform TPM through whichever interface it has.
#[derive(Debug)]
pub enum Driver<T: TisRegs, C: CrbRegs> {
    /// Through the FIFO interface.
    Tis(Tis<T>),
    /// Through the CRB interface.
    Crb(Crb<C>),
}

impl<T: TisRegs, C: CrbRegs> Driver<T, C> {
    /// Which interface this is.
    pub fn interface(&self) -> Interface {
        match self {
            Self::Tis(_) => Interface::Fifo,
            Self::Crb(_) => Interface::Crb,
        }
    }

    /// Sends one command; returns the response length.
    pub fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, DriverError> {
        match self {
            Self::Tis(t) => t.execute(cmd, rsp).map_err(DriverError::Tis),
            Self::Crb(c) => c.execute(cmd, rsp).map_err(DriverError::Crb),
        }
    }

    /// Moves to another locality (a CRB with locality 0 only refuses any other).
    pub fn switch_locality(&mut self, locality: u8) -> Result<(), DriverError> {
        match self {
            Self::Tis(t) => t.switch_locality(locality).map_err(DriverError::Tis),
            Self::Crb(c) => c.switch_locality(locality).map_err(DriverError::Crb),
        }
    }

    /// Gives the interface up after a use: a TIS releases its locality and makes `locality` the
    /// one its next command requests (so the vTPM manager's locality 1 can be granted between
    /// the hypervisor's uses); a CRB goes back to `locality` (CRBs under QEMU have only 0).
    pub fn park(&mut self, locality: u8) {
        match self {
            Self::Tis(t) => t.park(locality),
            Self::Crb(c) => {
                let _ = c.switch_locality(locality);
            }
        }
    }

    /// The locality commands are sent at.
    pub fn locality(&self) -> u8 {
        match self {
            Self::Tis(t) => t.locality(),
            Self::Crb(c) => c.locality(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_follows_the_hint_then_the_register() {
        // (hint, INTERFACE_ID, expected)
        let cases = [
            (None, 0xffff_fff0, Some(Interface::Fifo)), // PTP FIFO (QEMU tpm-tis)
            (None, 0x0002_5811, Some(Interface::Crb)),  // QEMU tpm-crb's value: CRB active, CapCRB
            (None, 0xffff_ffff, Some(Interface::Fifo)),                  // TIS 1.3 or nothing on the bus
            (None, 0x0000_000f, Some(Interface::Fifo)), // TIS 1.3 without the register
            (None, 0x0000_0005, None),                  // reserved type
            (Some(Interface::Crb), 0xffff_ffff, Some(Interface::Crb)), // ACPI says CRB
            (Some(Interface::Fifo), 0x0000_0001, Some(Interface::Fifo)),
        ];
        for (hint, id, want) in cases {
            assert_eq!(choose(hint, id), want, "{hint:?} {id:#x}");
        }
    }

    #[test]
    fn the_acpi_start_method_hints_only_interfaces_warden_drives() {
        let cases = [
            (StartMethod::Tis, Some(Interface::Fifo)),
            (StartMethod::Crb, Some(Interface::Crb)),
            (StartMethod::CrbAcpi, Some(Interface::Crb)),
            (StartMethod::Acpi, None),
            (StartMethod::Other(11), None),
        ];
        for (method, want) in cases {
            assert_eq!(hint(method), want, "{method:?}");
        }
    }
}
