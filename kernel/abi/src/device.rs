//! Device-assignment calls (numbers 48..55): what a domain that the manifest gave a PCI
//! function may ask about it. Each is checked against `device { assign }` on the device's
//! label; a domain without an assigned device gets [`crate::Status::InvalidArgument`].
//!
//! The device's memory BARs are mapped into the domain's nested page tables at their
//! host-physical addresses (guest-physical = host-physical, below 4 GiB), so a driver finds
//! them where the BARs say. Config space is reached through [`DeviceCall::ConfigRead`] and
//! [`DeviceCall::ConfigWrite`] only: port I/O (0xCF8/0xCFC included) still stops the domain.
//! Writes are filtered: BARs and the expansion ROM are emulated (sizing works, moving a BAR
//! does not), the command register keeps only memory decode, bus mastering and INTx disable.
//!
//! DMA: without an IOMMU the device sees host-physical addresses. A domain's memory is one
//! contiguous host-physical run, so a buffer at guest-physical `g` is at host-physical
//! `g + dma_offset` ([`DeviceCall::DmaOffset`]). A domain holding a DMA-capable device can make
//! it read or write any host memory: it is inside the trust boundary (ARCHITECTURE.md).

/// First device call number.
pub const DEVICE_BASE: u64 = 48;

/// Device call numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum DeviceCall {
    /// `RDI` = device index (0 = the first assigned). Value: `bdf | vendor << 16 | device << 32`
    /// where `bdf = bus << 8 | device << 3 | function`.
    Info = 48,
    /// `RDI` = device index, `RSI` = register offset (a multiple of 4 below 256). Value: the
    /// 32-bit register as filtered.
    ConfigRead = 49,
    /// `RDI` = device index, `RSI` = register offset, `RDX` = the 32-bit value.
    ConfigWrite = 50,
    /// `RDI` = device index. Value: the host-physical address of guest-physical 0 (add it to a
    /// buffer's guest-physical address to get the address the device must use).
    DmaOffset = 51,
}

impl DeviceCall {
    pub const ALL: [DeviceCall; 4] = [
        DeviceCall::Info,
        DeviceCall::ConfigRead,
        DeviceCall::ConfigWrite,
        DeviceCall::DmaOffset,
    ];

    pub const fn from_raw(raw: u64) -> Option<DeviceCall> {
        Some(match raw {
            48 => DeviceCall::Info,
            49 => DeviceCall::ConfigRead,
            50 => DeviceCall::ConfigWrite,
            51 => DeviceCall::DmaOffset,
            _ => return None,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            DeviceCall::Info => "device_info",
            DeviceCall::ConfigRead => "device_config_read",
            DeviceCall::ConfigWrite => "device_config_write",
            DeviceCall::DmaOffset => "device_dma_offset",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_stay_in_the_device_range() {
        for c in DeviceCall::ALL {
            assert_eq!(DeviceCall::from_raw(c as u64), Some(c));
            assert!((48..56).contains(&(c as u64)), "{}", c.name());
        }
        assert_eq!(DeviceCall::from_raw(47), None);
        assert_eq!(DeviceCall::from_raw(52), None);
    }
}
