//! The command table: every implemented command code with its handle counts, which handles
//! need authorisation, and whether it returns a handle. GetCapability reports exactly this list.

/// Authorisation role of the first authorised handle (Part 3 "Auth Role").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    User,
    Admin,
    /// Duplication: only a policy session that fixed the command code may authorise.
    Dup,
}

/// One implemented command.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CmdInfo {
    pub(crate) cc: u32,
    /// Handles in the handle area of the command.
    pub(crate) handles: u8,
    /// How many of those (from the first) need an authorisation session.
    pub(crate) auths: u8,
    /// The response carries a handle.
    pub(crate) r_handle: bool,
    pub(crate) role: Role,
    /// May write NV (TPMA_CC.nv).
    pub(crate) nv: bool,
    /// Flushes handles (TPMA_CC.flushed).
    pub(crate) flushed: bool,
    /// May flush many contexts or change much NV (TPMA_CC.extensive).
    pub(crate) extensive: bool,
}

const fn c(cc: u32, handles: u8, auths: u8, r_handle: bool) -> CmdInfo {
    CmdInfo {
        cc,
        handles,
        auths,
        r_handle,
        role: Role::User,
        nv: false,
        flushed: false,
        extensive: false,
    }
}
const fn admin(mut i: CmdInfo) -> CmdInfo {
    i.role = Role::Admin;
    i
}
const fn dup(mut i: CmdInfo) -> CmdInfo {
    i.role = Role::Dup;
    i
}
const fn nv(mut i: CmdInfo) -> CmdInfo {
    i.nv = true;
    i
}
const fn extensive(mut i: CmdInfo) -> CmdInfo {
    i.extensive = true;
    i
}
const fn flushed(mut i: CmdInfo) -> CmdInfo {
    i.flushed = true;
    i
}

#[allow(missing_docs)]
pub(crate) mod code {
    pub(crate) const NV_UNDEFINE_SPACE_SPECIAL: u32 = 0x11F;
    pub(crate) const EVICT_CONTROL: u32 = 0x120;
    pub(crate) const HIERARCHY_CONTROL: u32 = 0x121;
    pub(crate) const NV_UNDEFINE_SPACE: u32 = 0x122;
    pub(crate) const CHANGE_EPS: u32 = 0x124;
    pub(crate) const CHANGE_PPS: u32 = 0x125;
    pub(crate) const CLEAR: u32 = 0x126;
    pub(crate) const CLEAR_CONTROL: u32 = 0x127;
    pub(crate) const CLOCK_SET: u32 = 0x128;
    pub(crate) const HIERARCHY_CHANGE_AUTH: u32 = 0x129;
    pub(crate) const NV_DEFINE_SPACE: u32 = 0x12A;
    pub(crate) const PCR_ALLOCATE: u32 = 0x12B;
    pub(crate) const PCR_SET_AUTH_POLICY: u32 = 0x12C;
    pub(crate) const SET_PRIMARY_POLICY: u32 = 0x12E;
    pub(crate) const CLOCK_RATE_ADJUST: u32 = 0x130;
    pub(crate) const CREATE_PRIMARY: u32 = 0x131;
    pub(crate) const NV_GLOBAL_WRITE_LOCK: u32 = 0x132;
    pub(crate) const GET_COMMAND_AUDIT_DIGEST: u32 = 0x133;
    pub(crate) const NV_INCREMENT: u32 = 0x134;
    pub(crate) const NV_SET_BITS: u32 = 0x135;
    pub(crate) const NV_EXTEND: u32 = 0x136;
    pub(crate) const NV_WRITE: u32 = 0x137;
    pub(crate) const NV_WRITE_LOCK: u32 = 0x138;
    pub(crate) const DA_LOCK_RESET: u32 = 0x139;
    pub(crate) const DA_PARAMETERS: u32 = 0x13A;
    pub(crate) const NV_CHANGE_AUTH: u32 = 0x13B;
    pub(crate) const PCR_EVENT: u32 = 0x13C;
    pub(crate) const PCR_RESET: u32 = 0x13D;
    pub(crate) const SEQUENCE_COMPLETE: u32 = 0x13E;
    pub(crate) const SET_ALGORITHM_SET: u32 = 0x13F;
    pub(crate) const SET_COMMAND_CODE_AUDIT_STATUS: u32 = 0x140;
    pub(crate) const INCREMENTAL_SELF_TEST: u32 = 0x142;
    pub(crate) const SELF_TEST: u32 = 0x143;
    pub(crate) const STARTUP: u32 = 0x144;
    pub(crate) const SHUTDOWN: u32 = 0x145;
    pub(crate) const STIR_RANDOM: u32 = 0x146;
    pub(crate) const ACTIVATE_CREDENTIAL: u32 = 0x147;
    pub(crate) const CERTIFY: u32 = 0x148;
    pub(crate) const POLICY_NV: u32 = 0x149;
    pub(crate) const CERTIFY_CREATION: u32 = 0x14A;
    pub(crate) const DUPLICATE: u32 = 0x14B;
    pub(crate) const GET_TIME: u32 = 0x14C;
    pub(crate) const GET_SESSION_AUDIT_DIGEST: u32 = 0x14D;
    pub(crate) const NV_READ: u32 = 0x14E;
    pub(crate) const NV_READ_LOCK: u32 = 0x14F;
    pub(crate) const OBJECT_CHANGE_AUTH: u32 = 0x150;
    pub(crate) const POLICY_SECRET: u32 = 0x151;
    pub(crate) const REWRAP: u32 = 0x152;
    pub(crate) const CREATE: u32 = 0x153;
    pub(crate) const ECDH_ZGEN: u32 = 0x154;
    pub(crate) const HMAC: u32 = 0x155;
    pub(crate) const IMPORT: u32 = 0x156;
    pub(crate) const LOAD: u32 = 0x157;
    pub(crate) const QUOTE: u32 = 0x158;
    pub(crate) const RSA_DECRYPT: u32 = 0x159;
    pub(crate) const HMAC_START: u32 = 0x15B;
    pub(crate) const SEQUENCE_UPDATE: u32 = 0x15C;
    pub(crate) const SIGN: u32 = 0x15D;
    pub(crate) const UNSEAL: u32 = 0x15E;
    pub(crate) const POLICY_SIGNED: u32 = 0x160;
    pub(crate) const CONTEXT_LOAD: u32 = 0x161;
    pub(crate) const CONTEXT_SAVE: u32 = 0x162;
    pub(crate) const ECDH_KEYGEN: u32 = 0x163;
    pub(crate) const ENCRYPT_DECRYPT: u32 = 0x164;
    pub(crate) const FLUSH_CONTEXT: u32 = 0x165;
    pub(crate) const LOAD_EXTERNAL: u32 = 0x167;
    pub(crate) const MAKE_CREDENTIAL: u32 = 0x168;
    pub(crate) const NV_READ_PUBLIC: u32 = 0x169;
    pub(crate) const POLICY_AUTHORIZE: u32 = 0x16A;
    pub(crate) const POLICY_AUTH_VALUE: u32 = 0x16B;
    pub(crate) const POLICY_COMMAND_CODE: u32 = 0x16C;
    pub(crate) const POLICY_COUNTER_TIMER: u32 = 0x16D;
    pub(crate) const POLICY_CP_HASH: u32 = 0x16E;
    pub(crate) const POLICY_LOCALITY: u32 = 0x16F;
    pub(crate) const POLICY_NAME_HASH: u32 = 0x170;
    pub(crate) const POLICY_OR: u32 = 0x171;
    pub(crate) const POLICY_TICKET: u32 = 0x172;
    pub(crate) const READ_PUBLIC: u32 = 0x173;
    pub(crate) const RSA_ENCRYPT: u32 = 0x174;
    pub(crate) const START_AUTH_SESSION: u32 = 0x176;
    pub(crate) const VERIFY_SIGNATURE: u32 = 0x177;
    pub(crate) const ECC_PARAMETERS: u32 = 0x178;
    pub(crate) const GET_CAPABILITY: u32 = 0x17A;
    pub(crate) const GET_RANDOM: u32 = 0x17B;
    pub(crate) const GET_TEST_RESULT: u32 = 0x17C;
    pub(crate) const HASH: u32 = 0x17D;
    pub(crate) const PCR_READ: u32 = 0x17E;
    pub(crate) const POLICY_PCR: u32 = 0x17F;
    pub(crate) const POLICY_RESTART: u32 = 0x180;
    pub(crate) const READ_CLOCK: u32 = 0x181;
    pub(crate) const PCR_EXTEND: u32 = 0x182;
    pub(crate) const PCR_SET_AUTH_VALUE: u32 = 0x183;
    pub(crate) const NV_CERTIFY: u32 = 0x184;
    pub(crate) const EVENT_SEQUENCE_COMPLETE: u32 = 0x185;
    pub(crate) const HASH_SEQUENCE_START: u32 = 0x186;
    pub(crate) const POLICY_PHYSICAL_PRESENCE: u32 = 0x187;
    pub(crate) const POLICY_DUPLICATION_SELECT: u32 = 0x188;
    pub(crate) const POLICY_GET_DIGEST: u32 = 0x189;
    pub(crate) const TEST_PARMS: u32 = 0x18A;
    pub(crate) const COMMIT: u32 = 0x18B;
    pub(crate) const POLICY_PASSWORD: u32 = 0x18C;
    pub(crate) const ZGEN_2PHASE: u32 = 0x18D;
    pub(crate) const EC_EPHEMERAL: u32 = 0x18E;
    pub(crate) const POLICY_NV_WRITTEN: u32 = 0x18F;
    pub(crate) const POLICY_TEMPLATE: u32 = 0x190;
    pub(crate) const CREATE_LOADED: u32 = 0x191;
    pub(crate) const POLICY_AUTHORIZE_NV: u32 = 0x192;
    pub(crate) const ENCRYPT_DECRYPT2: u32 = 0x193;
    pub(crate) const CERTIFY_X509: u32 = 0x197;
}

use code::*;

/// Sorted by command code (GetCapability walks it in order).
pub(crate) static COMMANDS: &[CmdInfo] = &[
    nv(admin(c(NV_UNDEFINE_SPACE_SPECIAL, 2, 2, false))),
    nv(c(EVICT_CONTROL, 2, 1, false)),
    extensive(nv(c(HIERARCHY_CONTROL, 1, 1, false))),
    nv(c(NV_UNDEFINE_SPACE, 2, 1, false)),
    extensive(nv(c(CHANGE_EPS, 1, 1, false))),
    extensive(nv(c(CHANGE_PPS, 1, 1, false))),
    extensive(nv(c(CLEAR, 1, 1, false))),
    nv(c(CLEAR_CONTROL, 1, 1, false)),
    nv(c(CLOCK_SET, 1, 1, false)),
    nv(c(HIERARCHY_CHANGE_AUTH, 1, 1, false)),
    nv(c(NV_DEFINE_SPACE, 1, 1, false)),
    nv(c(PCR_ALLOCATE, 1, 1, false)),
    nv(c(PCR_SET_AUTH_POLICY, 1, 1, false)),
    nv(c(SET_PRIMARY_POLICY, 1, 1, false)),
    c(CLOCK_RATE_ADJUST, 1, 1, false),
    c(CREATE_PRIMARY, 1, 1, true),
    nv(c(NV_GLOBAL_WRITE_LOCK, 1, 1, false)),
    nv(c(GET_COMMAND_AUDIT_DIGEST, 2, 2, false)),
    nv(c(NV_INCREMENT, 2, 1, false)),
    nv(c(NV_SET_BITS, 2, 1, false)),
    nv(c(NV_EXTEND, 2, 1, false)),
    nv(c(NV_WRITE, 2, 1, false)),
    nv(c(NV_WRITE_LOCK, 2, 1, false)),
    nv(c(DA_LOCK_RESET, 1, 1, false)),
    nv(c(DA_PARAMETERS, 1, 1, false)),
    nv(admin(c(NV_CHANGE_AUTH, 1, 1, false))),
    nv(c(PCR_EVENT, 1, 1, false)),
    nv(c(PCR_RESET, 1, 1, false)),
    flushed(c(SEQUENCE_COMPLETE, 1, 1, false)),
    nv(c(SET_ALGORITHM_SET, 1, 1, false)),
    nv(c(SET_COMMAND_CODE_AUDIT_STATUS, 1, 1, false)),
    nv(c(INCREMENTAL_SELF_TEST, 0, 0, false)),
    nv(c(SELF_TEST, 0, 0, false)),
    nv(c(STARTUP, 0, 0, false)),
    nv(c(SHUTDOWN, 0, 0, false)),
    nv(c(STIR_RANDOM, 0, 0, false)),
    admin(c(ACTIVATE_CREDENTIAL, 2, 2, false)),
    admin(c(CERTIFY, 2, 2, false)),
    c(POLICY_NV, 3, 1, false),
    c(CERTIFY_CREATION, 2, 1, false),
    dup(c(DUPLICATE, 2, 1, false)),
    c(GET_TIME, 2, 2, false),
    c(GET_SESSION_AUDIT_DIGEST, 3, 2, false),
    c(NV_READ, 2, 1, false),
    nv(c(NV_READ_LOCK, 2, 1, false)),
    admin(c(OBJECT_CHANGE_AUTH, 2, 1, false)),
    c(POLICY_SECRET, 2, 1, false),
    c(REWRAP, 2, 1, false),
    c(CREATE, 1, 1, false),
    c(ECDH_ZGEN, 1, 1, false),
    c(HMAC, 1, 1, false),
    c(IMPORT, 1, 1, false),
    c(LOAD, 1, 1, true),
    c(QUOTE, 1, 1, false),
    c(RSA_DECRYPT, 1, 1, false),
    c(HMAC_START, 1, 1, true),
    c(SEQUENCE_UPDATE, 1, 1, false),
    c(SIGN, 1, 1, false),
    c(UNSEAL, 1, 1, false),
    c(POLICY_SIGNED, 2, 0, false),
    c(CONTEXT_LOAD, 0, 0, true),
    c(CONTEXT_SAVE, 1, 0, false),
    c(ECDH_KEYGEN, 1, 0, false),
    c(ENCRYPT_DECRYPT, 1, 1, false),
    // Its handle is a parameter: not TPMA_CC.flushed (libtpms agrees).
    c(FLUSH_CONTEXT, 0, 0, false),
    c(LOAD_EXTERNAL, 0, 0, true),
    c(MAKE_CREDENTIAL, 1, 0, false),
    c(NV_READ_PUBLIC, 1, 0, false),
    c(POLICY_AUTHORIZE, 1, 0, false),
    c(POLICY_AUTH_VALUE, 1, 0, false),
    c(POLICY_COMMAND_CODE, 1, 0, false),
    c(POLICY_COUNTER_TIMER, 1, 0, false),
    c(POLICY_CP_HASH, 1, 0, false),
    c(POLICY_LOCALITY, 1, 0, false),
    c(POLICY_NAME_HASH, 1, 0, false),
    c(POLICY_OR, 1, 0, false),
    c(POLICY_TICKET, 1, 0, false),
    c(READ_PUBLIC, 1, 0, false),
    c(RSA_ENCRYPT, 1, 0, false),
    c(START_AUTH_SESSION, 2, 0, true),
    c(VERIFY_SIGNATURE, 1, 0, false),
    c(ECC_PARAMETERS, 0, 0, false),
    c(GET_CAPABILITY, 0, 0, false),
    c(GET_RANDOM, 0, 0, false),
    c(GET_TEST_RESULT, 0, 0, false),
    c(HASH, 0, 0, false),
    c(PCR_READ, 0, 0, false),
    c(POLICY_PCR, 1, 0, false),
    c(POLICY_RESTART, 1, 0, false),
    c(READ_CLOCK, 0, 0, false),
    nv(c(PCR_EXTEND, 1, 1, false)),
    c(PCR_SET_AUTH_VALUE, 1, 1, false),
    c(NV_CERTIFY, 3, 2, false),
    nv(flushed(c(EVENT_SEQUENCE_COMPLETE, 2, 2, false))),
    c(HASH_SEQUENCE_START, 0, 0, true),
    c(POLICY_PHYSICAL_PRESENCE, 1, 0, false),
    c(POLICY_DUPLICATION_SELECT, 1, 0, false),
    c(POLICY_GET_DIGEST, 1, 0, false),
    c(TEST_PARMS, 0, 0, false),
    c(COMMIT, 1, 1, false),
    c(POLICY_PASSWORD, 1, 0, false),
    c(ZGEN_2PHASE, 1, 1, false),
    c(EC_EPHEMERAL, 0, 0, false),
    c(POLICY_NV_WRITTEN, 1, 0, false),
    c(POLICY_TEMPLATE, 1, 0, false),
    c(CREATE_LOADED, 1, 1, true),
    c(POLICY_AUTHORIZE_NV, 3, 1, false),
    c(ENCRYPT_DECRYPT2, 1, 1, false),
    admin(c(CERTIFY_X509, 2, 2, false)),
];

pub(crate) fn lookup(cc: u32) -> Option<&'static CmdInfo> {
    COMMANDS
        .binary_search_by_key(&cc, |i| i.cc)
        .ok()
        .map(|i| &COMMANDS[i])
}

/// TPMA_CC for GetCapability(TPM_CAP_COMMANDS).
pub(crate) fn tpma_cc(i: &CmdInfo) -> u32 {
    (i.cc & 0xFFFF)
        | (u32::from(i.nv) << 22)
        | (u32::from(i.extensive) << 23)
        | (u32::from(i.flushed) << 24)
        | (u32::from(i.handles) << 25)
        | (u32::from(i.r_handle) << 28)
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_is_sorted_and_unique() {
        assert!(super::COMMANDS.windows(2).all(|w| w[0].cc < w[1].cc));
    }
}
