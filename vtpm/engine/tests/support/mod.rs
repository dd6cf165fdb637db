//! Shared support for the engine's integration tests: raw command framing (plain, password and
//! policy-session authorisations), response codes, TPM2B helpers, a started `Tpm<MemPlatform>`,
//! PCR_Read, StartAuthSession parameters and a platform whose clock and NV the test holds.
//! Each test file includes it with `mod support;`; not every file uses every helper.

#![allow(dead_code)]

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use warden_vtpm::{MemPlatform, Platform, Tpm};

pub const RH_OWNER: u32 = 0x4000_0001;
pub const RH_NULL: u32 = 0x4000_0007;
pub const RS_PW: u32 = 0x4000_0009;
pub const RH_LOCKOUT: u32 = 0x4000_000A;
pub const RH_ENDORSEMENT: u32 = 0x4000_000B;
pub const RH_PLATFORM: u32 = 0x4000_000C;

/// A TPM2B: the big-endian u16 size, then the bytes.
pub fn b2(v: &[u8]) -> Vec<u8> {
    [&(v.len() as u16).to_be_bytes()[..], v].concat()
}

/// Reads a TPM2B at `*at` and moves past it.
pub fn take2b(r: &[u8], at: &mut usize) -> Vec<u8> {
    let n = usize::from(u16::from_be_bytes([r[*at], r[*at + 1]]));
    let v = r[*at + 2..*at + 2 + n].to_vec();
    *at += 2 + n;
    v
}

/// The response code of a response.
pub fn rc(r: &[u8]) -> u32 {
    u32::from_be_bytes([r[6], r[7], r[8], r[9]])
}

/// The big-endian u32 at `at` (a handle in a response, say).
pub fn u32_at(r: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]])
}

pub fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

/// A command: tag, size, code, handles, then (with a session area, tag 0x8002) the area's size
/// and bytes, then the parameters.
pub fn frame(cc: u32, handles: &[u32], area: Option<Vec<u8>>, params: &[u8]) -> Vec<u8> {
    let tag: u16 = if area.is_some() { 0x8002 } else { 0x8001 };
    let mut b = [&tag.to_be_bytes()[..], &[0; 4], &cc.to_be_bytes()].concat();
    for h in handles {
        b.extend_from_slice(&h.to_be_bytes());
    }
    if let Some(a) = area {
        b.extend_from_slice(&(a.len() as u32).to_be_bytes());
        b.extend_from_slice(&a);
    }
    b.extend_from_slice(params);
    let len = b.len() as u32;
    b[2..6].copy_from_slice(&len.to_be_bytes());
    b
}

/// One session-area entry: handle, TPM2B nonce, attributes, TPM2B HMAC/password.
pub fn session(handle: u32, nonce: &[u8], attrs: u8, auth: &[u8]) -> Vec<u8> {
    [&handle.to_be_bytes()[..], &b2(nonce), &[attrs], &b2(auth)].concat()
}

/// A session area of password authorisations (TPM_RS_PW, continueSession), one per password.
pub fn pw_area(passwords: &[&[u8]]) -> Vec<u8> {
    passwords
        .iter()
        .flat_map(|p| session(RS_PW, &[], 1, p))
        .collect()
}

/// A command without sessions.
pub fn plain(cc: u32, handles: &[u32], params: &[u8]) -> Vec<u8> {
    frame(cc, handles, None, params)
}

/// A command with an empty-password authorisation for each of the first `auths` handles.
pub fn pw(cc: u32, handles: &[u32], auths: usize, params: &[u8]) -> Vec<u8> {
    frame(cc, handles, Some(pw_area(&vec![&[][..]; auths])), params)
}

/// A command, with one empty-password authorisation when `pw` is set.
pub fn cmd(cc: u32, handles: &[u32], pw: bool, params: &[u8]) -> Vec<u8> {
    frame(cc, handles, pw.then(|| pw_area(&[&[]])), params)
}

/// Checks that the response `r` to command `c` succeeded and returns it.
pub fn expect_ok(r: Vec<u8>, c: &[u8]) -> Vec<u8> {
    assert_eq!(
        rc(&r),
        0,
        "command {:02x?} failed: {:#x}",
        &c[6..10],
        rc(&r)
    );
    r
}

/// A fresh TPM on `MemPlatform::with_seed(seed)`.
pub fn tpm(seed: u64) -> Tpm<MemPlatform> {
    Tpm::new(MemPlatform::with_seed(seed)).expect("fresh TPM")
}

/// A fresh TPM after Startup(CLEAR).
pub fn started(seed: u64) -> Tpm<MemPlatform> {
    let mut t = tpm(seed);
    let c = plain(0x144, &[], &[0, 0]);
    expect_ok(t.execute(0, &c), &c);
    t
}

/// A TPM on `MemPlatform` driven by raw command bytes; each test file adds its own methods
/// (and its constructor, with its seed) in an `impl` block of its own.
pub struct Engine(pub Tpm<MemPlatform>);

impl Engine {
    pub fn run(&mut self, c: &[u8]) -> Vec<u8> {
        self.0.execute(0, c)
    }
    /// Runs `c` and checks that it succeeded.
    pub fn ok(&mut self, c: &[u8]) -> Vec<u8> {
        expect_ok(self.run(c), c)
    }
}

/// A TPMS_NV_PUBLIC: `index`, SHA-256 name algorithm, `attrs`, authPolicy `policy`, `size`.
pub fn nv_public(index: u32, attrs: u32, policy: &[u8], size: u16) -> Vec<u8> {
    [
        &index.to_be_bytes()[..],
        &[0, 0x0B],
        &attrs.to_be_bytes(),
        &b2(policy),
        &size.to_be_bytes(),
    ]
    .concat()
}

/// PCR_Read of PCR `i` in the SHA-1 (0x0004) or SHA-256 (0x000B) bank: its value.
pub fn pcr_read<P: Platform>(t: &mut Tpm<P>, alg: u16, i: usize) -> Vec<u8> {
    let mut select = [0u8; 3];
    select[i / 8] = 1 << (i % 8);
    let params = [&[0, 0, 0, 1][..], &alg.to_be_bytes(), &[3], &select].concat();
    let r = t.execute(0, &plain(0x17E, &[], &params));
    assert_eq!(rc(&r), 0, "PCR_Read");
    // header, updateCounter, TPML_PCR_SELECTION (4 + 6), TPML_DIGEST count, TPM2B.
    let mut at = 10 + 4 + 10 + 4;
    take2b(&r, &mut at)
}

/// StartAuthSession parameters: nonceCaller 5…5, no salt, `kind` (0 HMAC, 1 policy, 3 trial),
/// no symmetric algorithm, SHA-256.
pub fn start_session_params(kind: u8) -> Vec<u8> {
    [&b2(&[5; 16])[..], &[0, 0, kind], &[0, 0x10], &[0, 0x0B]].concat()
}

/// A started policy (or trial) session.
pub struct Sess {
    pub handle: u32,
    pub nonce_tpm: Vec<u8>,
}

impl Sess {
    /// The session of a StartAuthSession response.
    pub fn from_response(r: &[u8]) -> Sess {
        let mut at = 14;
        Sess {
            handle: u32_at(r, 10),
            nonce_tpm: take2b(r, &mut at),
        }
    }
}

pub const NONCE_CALLER: [u8; 16] = [0x11; 16];

/// A command authorised by policy session `s` (unbound, unsalted: the HMAC key is empty).
pub fn with_policy(
    cc: u32,
    handles: &[u32],
    names: &[Vec<u8>],
    s: &Sess,
    params: &[u8],
) -> Vec<u8> {
    let mut cp_in: Vec<&[u8]> = Vec::new();
    let code = cc.to_be_bytes();
    cp_in.push(&code);
    for n in names {
        cp_in.push(n);
    }
    cp_in.push(params);
    let cp = sha256(&cp_in);
    let attrs = [1u8];
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[]).unwrap();
    for part in [&cp[..], &NONCE_CALLER, &s.nonce_tpm, &attrs] {
        mac.update(part);
    }
    let area = session(s.handle, &NONCE_CALLER, 1, &mac.finalize().into_bytes());
    frame(cc, handles, Some(area), params)
}

/// A template of a sealed data object (fixedTPM|fixedParent|noDA) with `policy` as authPolicy.
pub fn sealed_template(policy: &[u8]) -> Vec<u8> {
    let attrs: u32 = (1 << 1) | (1 << 4) | (1 << 10);
    [
        &[0, 0x08, 0, 0x0B][..],
        &attrs.to_be_bytes(),
        &b2(policy),
        &[0, 0x10],
        &b2(&[]),
    ]
    .concat()
}

/// A platform whose clock the test moves; NV is a shared cell so a "restarted process" (a new
/// `Tpm`) reads what the previous one wrote. Entropy is a linear congruential generator
/// (multiplier 6364136223846793005, the given increment) from `counter`.
pub struct ClockPlat {
    pub clock: Rc<Cell<u64>>,
    pub nv: Rc<RefCell<Option<Vec<u8>>>>,
    pub counter: u64,
    pub increment: u64,
}

impl Platform for ClockPlat {
    fn entropy(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            self.counter = self
                .counter
                .wrapping_mul(6364136223846793005)
                .wrapping_add(self.increment);
            *b = (self.counter >> 56) as u8;
        }
    }
    fn clock_ms(&mut self) -> u64 {
        self.clock.get()
    }
    fn nv_read(&mut self) -> Option<Vec<u8>> {
        self.nv.borrow().clone()
    }
    fn nv_write(&mut self, state: &[u8]) {
        *self.nv.borrow_mut() = Some(state.to_vec());
    }
}
