//! Handle ranges and the permanent handles (Part 2 §7) the engine recognises.

pub(crate) const RH_OWNER: u32 = 0x4000_0001;
pub(crate) const RH_NULL: u32 = 0x4000_0007;
pub(crate) const RS_PW: u32 = 0x4000_0009;
pub(crate) const RH_LOCKOUT: u32 = 0x4000_000A;
pub(crate) const RH_ENDORSEMENT: u32 = 0x4000_000B;
pub(crate) const RH_PLATFORM: u32 = 0x4000_000C;
pub(crate) const RH_PLATFORM_NV: u32 = 0x4000_000D;

pub(crate) const HT_PCR: u8 = 0x00;
pub(crate) const HT_NV_INDEX: u8 = 0x01;
pub(crate) const HT_HMAC_SESSION: u8 = 0x02;
pub(crate) const HT_POLICY_SESSION: u8 = 0x03;
pub(crate) const HT_PERMANENT: u8 = 0x40;
pub(crate) const HT_TRANSIENT: u8 = 0x80;
pub(crate) const HT_PERSISTENT: u8 = 0x81;

pub(crate) const TRANSIENT_FIRST: u32 = 0x8000_0000;

pub(crate) fn ty(h: u32) -> u8 {
    (h >> 24) as u8
}

/// Persistent handles the owner may use (the platform range starts at 0x81800000).
pub(crate) fn persistent_owner_range(h: u32) -> bool {
    (0x8100_0000..0x8180_0000).contains(&h)
}
