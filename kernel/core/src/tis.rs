//! The TPM TIS / PC Client FIFO interface protocol over a register trait, with typed errors.
//!
//! The protocol (TCG PC Client Platform TPM Profile, FIFO interface): request a locality, make the
//! TPM command-ready, write the command through the data FIFO in bursts, start it with `tpmGo`,
//! wait for `dataAvail`, read the response, return to command-ready. Waits are bounded by a poll
//! budget so a wedged TPM gives `Timeout`, never a hang.

/// Base physical address of locality 0's register window; each locality adds 0x1000.
pub const TIS_BASE: u64 = 0xfed4_0000;

const ACCESS: u16 = 0x00;
const INTF_CAPABILITY: u16 = 0x14;
const STS: u16 = 0x18;
const BURST_COUNT: u16 = 0x19;
const DATA_FIFO: u16 = 0x24;
const INTERFACE_ID: u16 = 0x30;
const DID_VID: u16 = 0xf00;
const RID: u16 = 0xf04;

const ACCESS_VALID: u8 = 0x80;
const ACCESS_ACTIVE: u8 = 0x20;
const ACCESS_REQUEST: u8 = 0x02;
const ACCESS_SEIZE: u8 = 0x08;

/// The lowest locality that takes the TPM by seizing it rather than asking: the hypervisor's
/// (2 and up). A domain given a lower locality (the vTPM manager's 1) can then never keep the
/// hypervisor from measuring: the TPM hands a higher locality's seize the interface at once
/// (after the command in flight), while a request waits until the holder lets go.
pub const SEIZING_LOCALITY: u8 = 2;

const STS_VALID: u8 = 0x80;
const STS_COMMAND_READY: u8 = 0x40;
const STS_GO: u8 = 0x20;
const STS_DATA_AVAIL: u8 = 0x10;
const STS_EXPECT: u8 = 0x08;

/// Register access to the TIS MMIO windows, one per locality.
pub trait TisRegs {
    /// Reads an 8-bit register of `locality`'s window.
    fn read8(&mut self, locality: u8, offset: u16) -> u8;
    /// Writes an 8-bit register.
    fn write8(&mut self, locality: u8, offset: u16, value: u8);
    /// Reads a 32-bit register.
    fn read32(&mut self, locality: u8, offset: u16) -> u32;
}

/// What went wrong talking to the platform TPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TisError {
    /// Nothing answers at the TIS address.
    NoTpm,
    /// A TPM answers but it is not a TPM 2.0 (e.g. a TPM 1.2).
    WrongFamily(u32),
    /// The locality was not granted in time.
    LocalityTimeout(u8),
    /// A status bit did not appear in time; names the step.
    Timeout(&'static str),
    /// The TPM stopped accepting bytes before the command was complete, or wanted more.
    FifoMismatch,
    /// The response header is malformed (size smaller than a header).
    BadResponse,
    /// The response does not fit the caller's buffer.
    ResponseTooLarge(u32),
    /// The command is shorter than a TPM header.
    CommandTooShort,
}

impl core::fmt::Display for TisError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoTpm => f.write_str("no TPM at the TIS address"),
            Self::WrongFamily(i) => write!(f, "not a TPM 2.0 (interface capability {i:#010x})"),
            Self::LocalityTimeout(l) => write!(f, "locality {l} not granted"),
            Self::Timeout(step) => write!(f, "TPM timed out ({step})"),
            Self::FifoMismatch => f.write_str("TPM FIFO expected a different command length"),
            Self::BadResponse => f.write_str("malformed TPM response"),
            Self::ResponseTooLarge(n) => write!(f, "TPM response of {n} bytes too large"),
            Self::CommandTooShort => f.write_str("TPM command shorter than its header"),
        }
    }
}

/// What the TPM says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// TCG vendor id.
    pub vendor: u16,
    /// Vendor's device id.
    pub device: u16,
    /// Revision.
    pub revision: u8,
    /// The interface-id register (bits 3:0 = interface type).
    pub interface_id: u32,
}

/// A TPM reached through the FIFO interface at one locality.
#[derive(Debug)]
pub struct Tis<R: TisRegs> {
    regs: R,
    locality: u8,
    budget: u32,
}

/// Default number of register polls before a wait gives up (swtpm answers in ~100 µs; the
/// budget allows several seconds under emulation).
pub const DEFAULT_POLL_BUDGET: u32 = 20_000_000;

impl<R: TisRegs> Tis<R> {
    /// Looks for a TPM 2.0 at `locality` and takes that locality.
    pub fn probe(mut regs: R, locality: u8, budget: u32) -> Result<(Self, Identity), TisError> {
        let did_vid = regs.read32(locality, DID_VID);
        if did_vid == 0 || did_vid == u32::MAX {
            return Err(TisError::NoTpm);
        }
        // The capability register's bits 30:28 give the interface version: 0b000 = TIS 1.2 and
        // 0b010 = TIS 1.3 (TPM 1.2 devices), 0b011 = TIS 1.3 for a TPM 2.0 (PC Client PTP).
        let caps = regs.read32(locality, INTF_CAPABILITY);
        if (caps >> 28) & 0x7 != 0b011 {
            return Err(TisError::WrongFamily(caps));
        }
        let id = Identity {
            vendor: did_vid as u16,
            device: (did_vid >> 16) as u16,
            revision: regs.read8(locality, RID),
            interface_id: regs.read32(locality, INTERFACE_ID),
        };
        let mut tis = Self { regs, locality, budget };
        tis.request_locality()?;
        Ok((tis, id))
    }

    /// The locality commands are sent at.
    pub fn locality(&self) -> u8 {
        self.locality
    }

    fn wait(&mut self, what: &'static str, mut done: impl FnMut(&mut R, u8) -> bool) -> Result<(), TisError> {
        for _ in 0..self.budget {
            if done(&mut self.regs, self.locality) {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(TisError::Timeout(what))
    }

    /// Makes this Tis's locality the active one: nothing to do if it already is; otherwise a
    /// request (below [`SEIZING_LOCALITY`]) or a seize. Run before every command, so a Tis that
    /// released its locality (or lost it to a seize) takes it again when next used.
    fn request_locality(&mut self) -> Result<(), TisError> {
        let l = self.locality;
        if self.regs.read8(l, ACCESS) & (ACCESS_VALID | ACCESS_ACTIVE) == ACCESS_VALID | ACCESS_ACTIVE {
            return Ok(());
        }
        let how = if l >= SEIZING_LOCALITY { ACCESS_SEIZE } else { ACCESS_REQUEST };
        self.regs.write8(l, ACCESS, how);
        self.wait("locality", |r, l| r.read8(l, ACCESS) & (ACCESS_VALID | ACCESS_ACTIVE) == ACCESS_VALID | ACCESS_ACTIVE)
            .map_err(|_| TisError::LocalityTimeout(l))
    }

    /// Gives the locality up (the TPM may then grant it to another requester); the next
    /// command takes it again.
    pub fn release(&mut self) {
        self.regs.write8(self.locality, ACCESS, ACCESS_ACTIVE);
    }

    /// Releases the current locality and makes `locality` the one the next command requests,
    /// without requesting it now: the TPM is then free for another locality's request (the vTPM
    /// manager's) until this Tis is next used.
    pub fn park(&mut self, locality: u8) {
        self.release();
        self.locality = locality;
    }

    /// Moves to another locality: releases the current one and requests `locality`.
    pub fn switch_locality(&mut self, locality: u8) -> Result<(), TisError> {
        if locality != self.locality {
            self.release();
            self.locality = locality;
        }
        self.request_locality()
    }

    fn burst(&mut self) -> u16 {
        burst_count(&mut self.regs, self.locality)
    }

    fn status(&mut self) -> u8 {
        self.regs.read8(self.locality, STS)
    }

    /// Sends one command and reads its response into `rsp`; returns the response length.
    pub fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TisError> {
        if cmd.len() < 10 {
            return Err(TisError::CommandTooShort);
        }
        self.request_locality()?;
        let l = self.locality;
        self.regs.write8(l, STS, STS_COMMAND_READY);
        self.wait("command ready", |r, l| r.read8(l, STS) & STS_COMMAND_READY != 0)?;

        let mut sent = 0;
        while sent < cmd.len() {
            let mut burst = 0;
            self.wait("burst count", |r, l| {
                burst = burst_count(r, l);
                burst > 0
            })?;
            let n = core::cmp::min(usize::from(burst), cmd.len() - sent);
            for &b in &cmd[sent..sent + n] {
                self.regs.write8(l, DATA_FIFO, b);
            }
            sent += n;
            self.wait("status valid", |r, l| r.read8(l, STS) & STS_VALID != 0)?;
            let expect = self.status() & STS_EXPECT != 0;
            if expect != (sent < cmd.len()) {
                return Err(TisError::FifoMismatch);
            }
        }
        self.regs.write8(l, STS, STS_GO);
        self.wait("response", |r, l| {
            let s = r.read8(l, STS);
            s & (STS_VALID | STS_DATA_AVAIL) == STS_VALID | STS_DATA_AVAIL
        })?;

        let mut got = 0;
        let mut total = 10usize;
        while got < total {
            let burst = usize::from(self.burst()).max(1);
            let n = core::cmp::min(burst, total - got);
            if got + n > rsp.len() {
                self.regs.write8(l, STS, STS_COMMAND_READY);
                return Err(TisError::ResponseTooLarge(total as u32));
            }
            for slot in &mut rsp[got..got + n] {
                *slot = self.regs.read8(l, DATA_FIFO);
            }
            got += n;
            if got == 10 {
                let size = u32::from_be_bytes([rsp[2], rsp[3], rsp[4], rsp[5]]);
                if size < 10 {
                    self.regs.write8(l, STS, STS_COMMAND_READY);
                    return Err(TisError::BadResponse);
                }
                if size as usize > rsp.len() {
                    self.regs.write8(l, STS, STS_COMMAND_READY);
                    return Err(TisError::ResponseTooLarge(size));
                }
                total = size as usize;
            }
        }
        self.regs.write8(l, STS, STS_COMMAND_READY);
        Ok(total)
    }
}

/// How many bytes the FIFO takes or gives without waiting (the 16-bit `burstCount` field).
fn burst_count(regs: &mut impl TisRegs, locality: u8) -> u16 {
    u16::from(regs.read8(locality, BURST_COUNT)) | (u16::from(regs.read8(locality, BURST_COUNT + 1)) << 8)
}

/// TPM2_GetRandom for `n` bytes (TPM 2.0 Part 3 §16.1), without sessions.
pub fn get_random_command(n: u16) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0..2].copy_from_slice(&0x8001u16.to_be_bytes()); // TPM_ST_NO_SESSIONS
    c[2..6].copy_from_slice(&12u32.to_be_bytes());
    c[6..10].copy_from_slice(&0x0000_017bu32.to_be_bytes()); // TPM_CC_GetRandom
    c[10..12].copy_from_slice(&n.to_be_bytes());
    c
}

/// Why a response was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// Shorter than its header or its own size field.
    Truncated,
    /// The TPM returned an error code.
    Code(u32),
}

/// Extracts the random bytes of a TPM2_GetRandom response.
pub fn parse_get_random(rsp: &[u8]) -> Result<&[u8], ResponseError> {
    if rsp.len() < 10 {
        return Err(ResponseError::Truncated);
    }
    let size = u32::from_be_bytes([rsp[2], rsp[3], rsp[4], rsp[5]]) as usize;
    let rc = u32::from_be_bytes([rsp[6], rsp[7], rsp[8], rsp[9]]);
    if rc != 0 {
        return Err(ResponseError::Code(rc));
    }
    if size > rsp.len() || size < 12 {
        return Err(ResponseError::Truncated);
    }
    let n = usize::from(u16::from_be_bytes([rsp[10], rsp[11]]));
    rsp[12..size].get(..n).ok_or(ResponseError::Truncated)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec::Vec;

    /// A register-level model of a FIFO TPM that answers every command with `reply`.
    struct FakeTpm {
        present: bool,
        family: u32,
        active: Option<u8>,
        pending: Option<u8>,
        seized: Option<u8>,
        grant_locality: bool,
        ready: bool,
        cmd: Vec<u8>,
        expected_len: Option<usize>,
        rsp: Vec<u8>,
        pos: usize,
        reply: Vec<u8>,
        burst: u16,
        go_works: bool,
        sent: Vec<u8>,
    }

    impl FakeTpm {
        fn new(reply: Vec<u8>) -> Self {
            Self {
                present: true,
                family: 3,
                active: None,
                pending: None,
                seized: None,
                grant_locality: true,
                ready: false,
                cmd: Vec::new(),
                expected_len: None,
                rsp: Vec::new(),
                pos: 0,
                reply,
                burst: 4,
                go_works: true,
                sent: Vec::new(),
            }
        }
    }

    impl TisRegs for &mut FakeTpm {
        fn read8(&mut self, l: u8, off: u16) -> u8 {
            match off {
                ACCESS => ACCESS_VALID | if self.active == Some(l) { ACCESS_ACTIVE } else { 0 },
                STS => {
                    let mut s = STS_VALID;
                    if self.ready {
                        s |= STS_COMMAND_READY;
                    }
                    if self.expected_len.is_none_or(|n| self.cmd.len() < n) && !self.cmd.is_empty() {
                        s |= STS_EXPECT;
                    }
                    if self.pos < self.rsp.len() {
                        s |= STS_DATA_AVAIL;
                    }
                    s
                }
                BURST_COUNT => self.burst as u8,
                0x1a => (self.burst >> 8) as u8,
                DATA_FIFO => {
                    let b = self.rsp.get(self.pos).copied().unwrap_or(0xff);
                    self.pos += 1;
                    b
                }
                RID => 1,
                _ => 0,
            }
        }
        fn write8(&mut self, l: u8, off: u16, v: u8) {
            match (off, v) {
                // As QEMU's TIS: a request is granted at once only when no locality is active,
                // otherwise it waits for the holder's release; a seize takes the TPM from a
                // lower locality (or an idle TPM) at once.
                (ACCESS, ACCESS_REQUEST) if self.grant_locality && self.active.is_none() => self.active = Some(l),
                (ACCESS, ACCESS_REQUEST) if self.grant_locality => self.pending = Some(l),
                (ACCESS, ACCESS_SEIZE) if self.grant_locality && self.active.is_none_or(|a| l > a) => {
                    self.seized = self.active;
                    self.active = Some(l);
                }
                (ACCESS, ACCESS_ACTIVE) if self.active == Some(l) => self.active = self.pending.take(),
                (STS, STS_COMMAND_READY) => {
                    self.ready = true;
                    self.cmd.clear();
                    self.expected_len = None;
                }
                (STS, STS_GO) if self.go_works => {
                    self.sent = self.cmd.clone();
                    self.rsp = self.reply.clone();
                    self.pos = 0;
                }
                (DATA_FIFO, b) => {
                    self.cmd.push(b);
                    if self.cmd.len() == 6 {
                        self.expected_len = Some(u32::from_be_bytes([self.cmd[2], self.cmd[3], self.cmd[4], self.cmd[5]]) as usize);
                    }
                }
                _ => {}
            }
        }
        fn read32(&mut self, _l: u8, off: u16) -> u32 {
            match off {
                DID_VID if self.present => 0x0001_1014,
                INTF_CAPABILITY => self.family << 28,
                _ => if self.present { 0 } else { u32::MAX },
            }
        }
    }

    /// A TPM2_GetRandom response carrying `bytes` (shared with the CRB tests).
    pub(crate) fn random_reply(bytes: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&0x8001u16.to_be_bytes());
        r.extend_from_slice(&(12 + bytes.len() as u32).to_be_bytes());
        r.extend_from_slice(&0u32.to_be_bytes());
        r.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        r.extend_from_slice(bytes);
        r
    }

    #[test]
    fn sends_a_command_in_bursts_and_reads_the_response() {
        let mut tpm = FakeTpm::new(random_reply(&[1, 2, 3, 4, 5, 6, 7, 8]));
        let (mut tis, id) = Tis::probe(&mut tpm, 0, 1000).unwrap();
        assert_eq!((id.vendor, id.device, id.revision), (0x1014, 0x0001, 1));
        let mut rsp = [0u8; 64];
        let n = tis.execute(&get_random_command(8), &mut rsp).unwrap();
        assert_eq!(parse_get_random(&rsp[..n]).unwrap(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(tpm.sent, get_random_command(8));
    }

    #[test]
    fn failures_are_typed() {
        let mut absent = FakeTpm::new(Vec::new());
        absent.present = false;
        assert_eq!(Tis::probe(&mut absent, 0, 10).err(), Some(TisError::NoTpm));

        let mut old = FakeTpm::new(Vec::new());
        old.family = 2;
        assert_eq!(Tis::probe(&mut old, 0, 10).err(), Some(TisError::WrongFamily(2 << 28)));

        let mut stubborn = FakeTpm::new(Vec::new());
        stubborn.grant_locality = false;
        assert_eq!(Tis::probe(&mut stubborn, 2, 10).err(), Some(TisError::LocalityTimeout(2)));

        let mut wedged = FakeTpm::new(random_reply(&[1]));
        wedged.go_works = false;
        let (mut tis, _) = Tis::probe(&mut wedged, 0, 10).unwrap();
        assert_eq!(tis.execute(&get_random_command(1), &mut [0; 64]), Err(TisError::Timeout("response")));
        assert_eq!(tis.execute(&[0; 4], &mut [0; 64]), Err(TisError::CommandTooShort));

        let mut big = FakeTpm::new(random_reply(&[7; 40]));
        let (mut tis, _) = Tis::probe(&mut big, 0, 10).unwrap();
        assert_eq!(tis.execute(&get_random_command(40), &mut [0; 20]), Err(TisError::ResponseTooLarge(52)));

        let mut bad = FakeTpm::new(std::vec![0x80, 0x01, 0, 0, 0, 3, 0, 0, 0, 0]);
        let (mut tis, _) = Tis::probe(&mut bad, 0, 10).unwrap();
        assert_eq!(tis.execute(&get_random_command(1), &mut [0; 64]), Err(TisError::BadResponse));
    }

    #[test]
    fn the_hypervisors_locality_seizes_a_lower_one_and_a_lower_one_waits() {
        // The manager (locality 1) holds the TPM: the hypervisor's locality 2 takes it anyway.
        let mut tpm = FakeTpm::new(random_reply(&[9]));
        tpm.active = Some(1);
        let (mut tis, _) = Tis::probe(&mut tpm, 2, 10).unwrap();
        tis.execute(&get_random_command(1), &mut [0; 64]).unwrap();
        assert_eq!((tpm.active, tpm.seized), (Some(2), Some(1)));

        // The hypervisor holds it: the manager's request waits (pending), it does not take it.
        assert_eq!(Tis::probe(&mut tpm, 1, 10).err(), Some(TisError::LocalityTimeout(1)));
        assert_eq!((tpm.active, tpm.pending), (Some(2), Some(1)));
        // Locality 1 cannot seize from the higher locality 2 either.
        tpm.pending = None;
        (&mut tpm).write8(1, ACCESS, ACCESS_SEIZE);
        assert_eq!(tpm.active, Some(2));
    }

    #[test]
    fn a_released_locality_is_taken_again_by_the_next_command() {
        let mut tpm = FakeTpm::new(random_reply(&[5]));
        let (mut tis, _) = Tis::probe(&mut tpm, 1, 10).unwrap();
        tis.release();
        // Released: the next command requests the locality again before it starts.
        tis.execute(&get_random_command(1), &mut [0; 64]).unwrap();
        tis.switch_locality(1).unwrap();
        // Parked: released now, the given locality requested by the next command.
        tis.park(0);
        assert_eq!(tis.locality(), 0);
        tis.execute(&get_random_command(1), &mut [0; 64]).unwrap();
        assert_eq!(tpm.active, Some(0));
    }

    #[test]
    fn get_random_responses_are_validated() {
        assert_eq!(parse_get_random(&[0; 4]), Err(ResponseError::Truncated));
        let mut r = random_reply(&[9, 9]);
        assert_eq!(parse_get_random(&r), Ok(&[9u8, 9][..]));
        r[11] = 5; // claims 5 bytes, carries 2
        assert_eq!(parse_get_random(&r), Err(ResponseError::Truncated));
        r[9] = 0x01; // an error code
        assert_eq!(parse_get_random(&r), Err(ResponseError::Code(1)));
    }
}
