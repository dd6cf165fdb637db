//! TPM 2.0 response codes (Part 2 §6.6) and the helpers that attach a handle, session or parameter number.

/// A TPM response code. `Rc::SUCCESS` is 0; everything else is an error or a warning.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rc(pub u32);

const FMT1: u32 = 0x080;
const VER1: u32 = 0x100;
const WARN: u32 = 0x900;

#[allow(missing_docs, dead_code)]
impl Rc {
    pub const SUCCESS: Rc = Rc(0);
    /// Bytes left over after the last parameter: reported as a bare TPM_RC_SIZE (the reference
    /// implementation does not attach a parameter number). Internal marker, never on the wire.
    pub const TRAILING: Rc = Rc(0x8000_0000 | 0x095);
    pub const BAD_TAG: Rc = Rc(0x01E);
    // Format-0 errors.
    pub const INITIALIZE: Rc = Rc(VER1);
    pub const FAILURE: Rc = Rc(VER1 + 0x001);
    pub const SEQUENCE: Rc = Rc(VER1 + 0x003);
    pub const DISABLED: Rc = Rc(VER1 + 0x020);
    pub const AUTH_TYPE: Rc = Rc(VER1 + 0x024);
    pub const AUTH_MISSING: Rc = Rc(VER1 + 0x025);
    pub const POLICY: Rc = Rc(VER1 + 0x026);
    pub const PCR: Rc = Rc(VER1 + 0x027);
    pub const PCR_CHANGED: Rc = Rc(VER1 + 0x028);
    pub const TOO_MANY_CONTEXTS: Rc = Rc(VER1 + 0x02E);
    pub const AUTH_UNAVAILABLE: Rc = Rc(VER1 + 0x02F);
    pub const REBOOT: Rc = Rc(VER1 + 0x030);
    pub const UNBALANCED: Rc = Rc(VER1 + 0x031);
    pub const COMMAND_SIZE: Rc = Rc(VER1 + 0x042);
    pub const COMMAND_CODE: Rc = Rc(VER1 + 0x043);
    pub const AUTHSIZE: Rc = Rc(VER1 + 0x044);
    pub const AUTH_CONTEXT: Rc = Rc(VER1 + 0x045);
    pub const NV_RANGE: Rc = Rc(VER1 + 0x046);
    pub const NV_SIZE: Rc = Rc(VER1 + 0x047);
    pub const NV_LOCKED: Rc = Rc(VER1 + 0x048);
    pub const NV_AUTHORIZATION: Rc = Rc(VER1 + 0x049);
    pub const NV_UNINITIALIZED: Rc = Rc(VER1 + 0x04A);
    pub const NV_SPACE: Rc = Rc(VER1 + 0x04B);
    pub const NV_DEFINED: Rc = Rc(VER1 + 0x04C);
    pub const BAD_CONTEXT: Rc = Rc(VER1 + 0x050);
    pub const CPHASH: Rc = Rc(VER1 + 0x051);
    pub const PARENT: Rc = Rc(VER1 + 0x052);
    pub const NO_RESULT: Rc = Rc(VER1 + 0x054);
    pub const SENSITIVE: Rc = Rc(VER1 + 0x055);
    // Format-1 errors (can carry a handle/session/parameter number).
    pub const ASYMMETRIC: Rc = Rc(FMT1 + 0x001);
    pub const ATTRIBUTES: Rc = Rc(FMT1 + 0x002);
    pub const HASH: Rc = Rc(FMT1 + 0x003);
    pub const VALUE: Rc = Rc(FMT1 + 0x004);
    pub const HIERARCHY: Rc = Rc(FMT1 + 0x005);
    pub const KEY_SIZE: Rc = Rc(FMT1 + 0x007);
    pub const MGF: Rc = Rc(FMT1 + 0x008);
    pub const MODE: Rc = Rc(FMT1 + 0x009);
    pub const TYPE: Rc = Rc(FMT1 + 0x00A);
    pub const HANDLE: Rc = Rc(FMT1 + 0x00B);
    pub const KDF: Rc = Rc(FMT1 + 0x00C);
    pub const RANGE: Rc = Rc(FMT1 + 0x00D);
    pub const AUTH_FAIL: Rc = Rc(FMT1 + 0x00E);
    pub const NONCE: Rc = Rc(FMT1 + 0x00F);
    pub const PP: Rc = Rc(FMT1 + 0x010);
    pub const SCHEME: Rc = Rc(FMT1 + 0x012);
    pub const SIZE: Rc = Rc(FMT1 + 0x015);
    pub const SYMMETRIC: Rc = Rc(FMT1 + 0x016);
    pub const TAG: Rc = Rc(FMT1 + 0x017);
    pub const SELECTOR: Rc = Rc(FMT1 + 0x018);
    pub const INSUFFICIENT: Rc = Rc(FMT1 + 0x01A);
    pub const SIGNATURE: Rc = Rc(FMT1 + 0x01B);
    pub const KEY: Rc = Rc(FMT1 + 0x01C);
    pub const POLICY_FAIL: Rc = Rc(FMT1 + 0x01D);
    pub const INTEGRITY: Rc = Rc(FMT1 + 0x01F);
    pub const TICKET: Rc = Rc(FMT1 + 0x020);
    pub const RESERVED_BITS: Rc = Rc(FMT1 + 0x021);
    pub const BAD_AUTH: Rc = Rc(FMT1 + 0x022);
    pub const EXPIRED: Rc = Rc(FMT1 + 0x023);
    pub const POLICY_CC: Rc = Rc(FMT1 + 0x024);
    pub const BINDING: Rc = Rc(FMT1 + 0x025);
    pub const CURVE: Rc = Rc(FMT1 + 0x026);
    pub const ECC_POINT: Rc = Rc(FMT1 + 0x027);
    // Warnings.
    pub const CONTEXT_GAP: Rc = Rc(WARN + 0x001);
    pub const OBJECT_MEMORY: Rc = Rc(WARN + 0x002);
    pub const SESSION_MEMORY: Rc = Rc(WARN + 0x003);
    pub const MEMORY: Rc = Rc(WARN + 0x004);
    pub const SESSION_HANDLES: Rc = Rc(WARN + 0x005);
    pub const OBJECT_HANDLES: Rc = Rc(WARN + 0x006);
    pub const LOCALITY: Rc = Rc(WARN + 0x007);
    pub const NV_RATE: Rc = Rc(WARN + 0x020);
    pub const LOCKOUT: Rc = Rc(WARN + 0x021);
    pub const RETRY: Rc = Rc(WARN + 0x022);
    pub const NV_UNAVAILABLE: Rc = Rc(WARN + 0x023);

    /// The error with "parameter number `n`" attached (Part 2 §6.6.3). Format-0 codes stay as they are.
    pub fn param(self, n: u32) -> Rc {
        if self.0 < 0x1000 && self.0 & FMT1 != 0 && self.0 & 0xFC0 == FMT1 {
            Rc(self.0 | 0x040 | ((n & 0xF) << 8))
        } else {
            self
        }
    }

    /// The error with "handle number `n`" attached.
    pub fn handle(self, n: u32) -> Rc {
        if self.0 < 0x1000 && self.0 & FMT1 != 0 && self.0 & 0xFC0 == FMT1 {
            Rc(self.0 | ((n & 0x7) << 8))
        } else {
            self
        }
    }

    /// The error with "session number `n`" attached.
    pub fn session(self, n: u32) -> Rc {
        if self.0 < 0x1000 && self.0 & FMT1 != 0 && self.0 & 0xFC0 == FMT1 {
            Rc(self.0 | 0x800 | ((n & 0x7) << 8))
        } else {
            self
        }
    }

    /// The code as it goes on the wire (internal markers resolved).
    pub fn wire(self) -> Rc {
        if self == Rc::TRAILING { Rc::SIZE } else { self }
    }

    /// True when the code is a format-1 code with no number attached yet.
    pub fn is_bare_fmt1(self) -> bool {
        self.0 & FMT1 != 0 && self.0 & 0xFC0 == FMT1
    }
}

/// `Result` extension to number the failing parameter, handle or session.
pub(crate) trait At<T> {
    fn p(self, n: u32) -> Result<T, Rc>;
    fn h(self, n: u32) -> Result<T, Rc>;
}

impl<T> At<T> for Result<T, Rc> {
    fn p(self, n: u32) -> Result<T, Rc> {
        self.map_err(|e| e.param(n))
    }
    fn h(self, n: u32) -> Result<T, Rc> {
        self.map_err(|e| e.handle(n))
    }
}

#[cfg(test)]
mod tests {
    use super::Rc;

    #[test]
    fn numbers_attach_only_to_format_one() {
        let cases = [
            (Rc::VALUE.param(1), 0x1C4),
            (Rc::HASH.param(2), 0x2C3),
            (Rc::HANDLE.handle(1), 0x18B),
            (Rc::BAD_AUTH.session(1), 0x9A2),
            (Rc::AUTH_FAIL.session(1), 0x98E),
            (Rc::INITIALIZE.param(1), 0x100),
            (Rc::LOCALITY.param(1), 0x907),
            (Rc::VALUE.param(1).param(2), 0x1C4),
            (Rc::TRAILING.param(1).wire(), 0x095),
        ];
        for (got, want) in cases {
            assert_eq!(got.0, want, "{got:?}");
        }
    }
}
