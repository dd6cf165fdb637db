//! The TPM CRB (Command Response Buffer) interface protocol over a register trait, with typed errors.
//!
//! The protocol (TCG PC Client Platform TPM Profile (PTP) 1.05 §6.5): request a locality through
//! `LOC_CTRL` and see it granted in `LOC_STATE`/`LOC_STS`, wake the TPM with `CTRL_REQ.cmdReady`,
//! write the command into the command buffer whose address and size the control area gives, set
//! `CTRL_START`, wait for the TPM to clear it, read the response from the response buffer, and
//! send the TPM back to idle with `CTRL_REQ.goIdle`. The buffer addresses and sizes are read from
//! the device and are untrusted: one outside the window the caller allows, or too small for a
//! TPM header, is refused before anything is written. Every wait is bounded (the PTP's
//! TIMEOUT_A..D, expressed as poll budgets), so a wedged TPM or one that never goes idle gives a
//! typed error, never a hang.

use core::ops::Range;

/// Base physical address of locality 0's CRB window (the same address as TIS); each locality
/// adds 0x1000.
pub const CRB_BASE: u64 = 0xfed4_0000;
/// Where a CRB at `CRB_BASE` may put its command and response buffers by default: after the
/// control area of locality 0's window, inside that window (QEMU's `tpm-crb` puts one 3968-byte
/// buffer there). A platform whose ACPI `TPM2` table names another buffer passes its own window.
pub const DEFAULT_BUFFER_WINDOW: Range<u64> = CRB_BASE + DATA_BUFFER as u64..CRB_BASE + 0x1000;

const LOC_STATE: u16 = 0x00;
const LOC_CTRL: u16 = 0x08;
const LOC_STS: u16 = 0x0c;
/// The interface-identifier register, at the same offset in TIS and CRB (PTP §6.4.2/§6.5.3.3).
pub const INTERFACE_ID: u16 = 0x30;
const INTERFACE_ID2: u16 = 0x34;
const CTRL_REQ: u16 = 0x40;
const CTRL_STS: u16 = 0x44;
const CTRL_CANCEL: u16 = 0x48;
const CTRL_START: u16 = 0x4c;
const CTRL_CMD_SIZE: u16 = 0x58;
const CTRL_CMD_LADDR: u16 = 0x5c;
const CTRL_CMD_HADDR: u16 = 0x60;
const CTRL_RSP_SIZE: u16 = 0x64;
const CTRL_RSP_LADDR: u16 = 0x68;
const CTRL_RSP_HADDR: u16 = 0x6c;
const DATA_BUFFER: u16 = 0x80;

const LOC_STATE_ESTABLISHED: u32 = 1 << 0;
const LOC_STATE_ASSIGNED: u32 = 1 << 1;
const LOC_STATE_ACTIVE_SHIFT: u32 = 2;
const LOC_STATE_VALID: u32 = 1 << 7;
const LOC_CTRL_REQUEST: u32 = 1 << 0;
const LOC_CTRL_RELINQUISH: u32 = 1 << 1;
const LOC_STS_GRANTED: u32 = 1 << 0;
const CTRL_REQ_CMD_READY: u32 = 1 << 0;
const CTRL_REQ_GO_IDLE: u32 = 1 << 1;
const CTRL_STS_FATAL: u32 = 1 << 0;
const CTRL_STS_IDLE: u32 = 1 << 1;
const START: u32 = 1 << 0;
const CANCEL: u32 = 1 << 0;
/// `INTERFACE_ID.CapLocality`: 1 = the five localities, 0 = locality 0 only.
const INTF_CAP_LOCALITY: u32 = 1 << 8;

/// A TPM header is 10 bytes; a buffer that cannot hold one is a lie.
const HEADER: usize = 10;

/// Register and buffer access to the CRB MMIO windows, one per locality.
pub trait CrbRegs {
    /// Reads a 32-bit register of `locality`'s window.
    fn read32(&mut self, locality: u8, offset: u16) -> u32;
    /// Writes a 32-bit register of `locality`'s window.
    fn write32(&mut self, locality: u8, offset: u16, value: u32);
    /// Reads bytes of a command/response buffer at physical `addr` (already validated).
    fn read_buffer(&mut self, addr: u64, buf: &mut [u8]);
    /// Writes bytes into a command/response buffer at physical `addr` (already validated).
    fn write_buffer(&mut self, addr: u64, data: &[u8]);
}

/// The PTP's interface timeouts (§6.5.1.4, Table 17: TIMEOUT_A 750 ms, TIMEOUT_B 2000 ms,
/// TIMEOUT_C 200 ms) as register-poll budgets, and the command duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Locality request (TIMEOUT_A).
    pub locality: u32,
    /// cmdReady and goIdle transitions (TIMEOUT_C).
    pub ready: u32,
    /// A command's execution (TPM 2.0 commands: Linux and the PTP's default duration, 2 minutes).
    pub command: u32,
}

/// Register polls per millisecond the budgets assume: a poll is an uncached MMIO read, which
/// takes at least 100 ns on any platform, so a budget never ends before the spec's time.
pub const POLLS_PER_MS: u32 = 10_000;

impl Timeouts {
    /// The PTP's timeouts.
    pub const PTP: Self = Self {
        locality: 750 * POLLS_PER_MS,
        ready: 200 * POLLS_PER_MS,
        command: 120_000 * POLLS_PER_MS,
    };
}

/// Which buffer a `BadBuffer` error names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    /// The command buffer.
    Command,
    /// The response buffer.
    Response,
}

/// What went wrong talking to a CRB TPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrbError {
    /// Nothing answers at the CRB address.
    NoTpm,
    /// The interface-id register says this is not an active CRB interface.
    NotCrb(u32),
    /// The interface implements locality 0 only (`CapLocality` = 0) and another was asked for.
    LocalityUnsupported(u8),
    /// The locality was not granted in time (TIMEOUT_A).
    LocalityTimeout(u8),
    /// A state change did not happen in time; names the step.
    Timeout(&'static str),
    /// The control area names a buffer outside the allowed window or too small for a header.
    BadBuffer {
        /// Which buffer.
        which: Buffer,
        /// Its claimed physical address.
        addr: u64,
        /// Its claimed size.
        size: u32,
    },
    /// The TPM reports a fatal error (`CTRL_STS.tpmSts`).
    Fatal,
    /// The command is shorter than a TPM header.
    CommandTooShort,
    /// The command does not fit the command buffer.
    CommandTooLarge(usize),
    /// The response header is malformed (size smaller than a header).
    BadResponse,
    /// The response does not fit the response buffer or the caller's buffer.
    ResponseTooLarge(u32),
}

impl core::fmt::Display for CrbError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoTpm => f.write_str("no TPM at the CRB address"),
            Self::NotCrb(i) => write!(f, "not an active CRB interface (interface id {i:#010x})"),
            Self::LocalityUnsupported(l) => {
                write!(f, "the CRB interface implements locality 0 only, not {l}")
            }
            Self::LocalityTimeout(l) => write!(f, "locality {l} not granted"),
            Self::Timeout(step) => write!(f, "TPM timed out ({step})"),
            Self::BadBuffer { which, addr, size } => {
                write!(
                    f,
                    "the CRB control area names a {which:?} buffer of {size} bytes at {addr:#x} outside the allowed window"
                )
            }
            Self::Fatal => f.write_str("the TPM reports a fatal error"),
            Self::CommandTooShort => f.write_str("TPM command shorter than its header"),
            Self::CommandTooLarge(n) => {
                write!(f, "TPM command of {n} bytes larger than the command buffer")
            }
            Self::BadResponse => f.write_str("malformed TPM response"),
            Self::ResponseTooLarge(n) => write!(f, "TPM response of {n} bytes too large"),
        }
    }
}

/// What the TPM says about itself: what any PTP interface reports, and the CRB's own facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Vendor, device, revision and the interface-id register.
    pub tpm: crate::tis::Identity,
    /// Whether the interface implements all five localities.
    pub localities: bool,
    /// Command buffer size in bytes.
    pub command_size: u32,
}

/// A validated buffer.
#[derive(Debug, Clone, Copy)]
struct Buf {
    addr: u64,
    size: u32,
}

/// A TPM reached through the CRB interface at one locality.
#[derive(Debug)]
pub struct Crb<R: CrbRegs> {
    regs: R,
    locality: u8,
    localities: bool,
    cmd: Buf,
    rsp: Buf,
    timeouts: Timeouts,
}

fn validate(which: Buffer, addr: u64, size: u32, window: &Range<u64>) -> Result<Buf, CrbError> {
    let end = addr.checked_add(u64::from(size));
    let inside = end.is_some_and(|end| addr >= window.start && end <= window.end);
    if !inside || (size as usize) < HEADER {
        return Err(CrbError::BadBuffer { which, addr, size });
    }
    Ok(Buf { addr, size })
}

impl<R: CrbRegs> Crb<R> {
    /// Looks for an active CRB TPM at `locality`, validates its buffers against `window`, and
    /// takes that locality.
    pub fn probe(
        mut regs: R,
        locality: u8,
        window: Range<u64>,
        timeouts: Timeouts,
    ) -> Result<(Self, Identity), CrbError> {
        let id = regs.read32(0, INTERFACE_ID);
        let id2 = regs.read32(0, INTERFACE_ID2);
        if id == u32::MAX || (id == 0 && id2 == 0) {
            return Err(CrbError::NoTpm);
        }
        if id & 0xf != 1 {
            return Err(CrbError::NotCrb(id));
        }
        let cmd_addr = u64::from(regs.read32(0, CTRL_CMD_LADDR))
            | u64::from(regs.read32(0, CTRL_CMD_HADDR)) << 32;
        let rsp_addr = u64::from(regs.read32(0, CTRL_RSP_LADDR))
            | u64::from(regs.read32(0, CTRL_RSP_HADDR)) << 32;
        let cmd = validate(
            Buffer::Command,
            cmd_addr,
            regs.read32(0, CTRL_CMD_SIZE),
            &window,
        )?;
        let rsp = validate(
            Buffer::Response,
            rsp_addr,
            regs.read32(0, CTRL_RSP_SIZE),
            &window,
        )?;
        let ident = Identity {
            tpm: crate::tis::Identity {
                vendor: id2 as u16,
                device: (id2 >> 16) as u16,
                revision: (id >> 24) as u8 & 0xf,
                interface_id: id,
            },
            localities: id & INTF_CAP_LOCALITY != 0,
            command_size: cmd.size,
        };
        let mut crb = Self {
            regs,
            locality,
            localities: ident.localities,
            cmd,
            rsp,
            timeouts,
        };
        crb.request_locality()?;
        Ok((crb, ident))
    }

    /// The locality commands are sent at.
    pub fn locality(&self) -> u8 {
        self.locality
    }

    fn wait(&mut self, budget: u32, mut done: impl FnMut(&mut R, u8) -> bool) -> bool {
        for _ in 0..budget {
            if done(&mut self.regs, self.locality) {
                return true;
            }
            core::hint::spin_loop();
        }
        false
    }

    fn request_locality(&mut self) -> Result<(), CrbError> {
        let l = self.locality;
        if l != 0 && !self.localities {
            return Err(CrbError::LocalityUnsupported(l));
        }
        let granted = |r: &mut R, l: u8| {
            let state = r.read32(l, LOC_STATE);
            state & (LOC_STATE_VALID | LOC_STATE_ASSIGNED) == LOC_STATE_VALID | LOC_STATE_ASSIGNED
                && (state >> LOC_STATE_ACTIVE_SHIFT) & 0x7 == u32::from(l)
                && r.read32(l, LOC_STS) & LOC_STS_GRANTED != 0
        };
        if granted(&mut self.regs, l) {
            return Ok(());
        }
        self.regs.write32(l, LOC_CTRL, LOC_CTRL_REQUEST);
        if self.wait(self.timeouts.locality, granted) {
            Ok(())
        } else {
            Err(CrbError::LocalityTimeout(l))
        }
    }

    /// Gives the locality up.
    pub fn release(&mut self) {
        self.regs
            .write32(self.locality, LOC_CTRL, LOC_CTRL_RELINQUISH);
    }

    /// Moves to another locality: refused at once when the interface has only locality 0;
    /// otherwise releases the current one and requests `locality`.
    pub fn switch_locality(&mut self, locality: u8) -> Result<(), CrbError> {
        if locality == self.locality {
            return Ok(());
        }
        if locality != 0 && !self.localities {
            return Err(CrbError::LocalityUnsupported(locality));
        }
        self.release();
        self.locality = locality;
        self.request_locality()
    }

    /// Whether the TPM has been measured-launch established (`LOC_STATE.tpmEstablished`).
    pub fn established(&mut self) -> bool {
        self.regs.read32(self.locality, LOC_STATE) & LOC_STATE_ESTABLISHED != 0
    }

    fn go_idle(&mut self) -> Result<(), CrbError> {
        let l = self.locality;
        self.regs.write32(l, CTRL_REQ, CTRL_REQ_GO_IDLE);
        let idle = self.wait(self.timeouts.ready, |r, l| {
            r.read32(l, CTRL_REQ) & CTRL_REQ_GO_IDLE == 0
                && r.read32(l, CTRL_STS) & CTRL_STS_IDLE != 0
        });
        if idle {
            Ok(())
        } else {
            Err(CrbError::Timeout("go idle"))
        }
    }

    /// Sends one command and reads its response into `rsp`; returns the response length. The
    /// TPM is left idle afterwards (and a TPM that does not go idle is an error).
    pub fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, CrbError> {
        if cmd.len() < HEADER {
            return Err(CrbError::CommandTooShort);
        }
        if cmd.len() > self.cmd.size as usize {
            return Err(CrbError::CommandTooLarge(cmd.len()));
        }
        let l = self.locality;
        if self.regs.read32(l, CTRL_STS) & CTRL_STS_FATAL != 0 {
            return Err(CrbError::Fatal);
        }
        self.regs.write32(l, CTRL_REQ, CTRL_REQ_CMD_READY);
        let ready = self.wait(self.timeouts.ready, |r, l| {
            r.read32(l, CTRL_REQ) & CTRL_REQ_CMD_READY == 0
                && r.read32(l, CTRL_STS) & CTRL_STS_IDLE == 0
        });
        if !ready {
            return Err(CrbError::Timeout("command ready"));
        }
        self.regs.write_buffer(self.cmd.addr, cmd);
        self.regs.write32(l, CTRL_START, START);
        if !self.wait(self.timeouts.command, |r, l| {
            r.read32(l, CTRL_START) & START == 0
        }) {
            // Ask the TPM to abandon the command (PTP §6.5.3.5), so a later command is not
            // queued behind it; the caller gets the timeout either way.
            self.regs.write32(l, CTRL_CANCEL, CANCEL);
            return Err(CrbError::Timeout("response"));
        }
        let result = self.read_response(rsp);
        // Idle after every command, even a refused one, so the TPM can power down (PTP §6.5.3.2).
        let idle = self.go_idle();
        let n = result?;
        idle?;
        Ok(n)
    }

    fn read_response(&mut self, rsp: &mut [u8]) -> Result<usize, CrbError> {
        if self.regs.read32(self.locality, CTRL_STS) & CTRL_STS_FATAL != 0 {
            return Err(CrbError::Fatal);
        }
        let mut header = [0u8; HEADER];
        self.regs.read_buffer(self.rsp.addr, &mut header);
        let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        if (size as usize) < HEADER {
            return Err(CrbError::BadResponse);
        }
        if size > self.rsp.size || size as usize > rsp.len() {
            return Err(CrbError::ResponseTooLarge(size));
        }
        let n = size as usize;
        rsp[..HEADER].copy_from_slice(&header);
        self.regs
            .read_buffer(self.rsp.addr + HEADER as u64, &mut rsp[HEADER..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tis::tests::random_reply;
    use crate::tis::{get_random_command, parse_get_random};
    use std::vec::Vec;

    const CMD_AT: u64 = CRB_BASE + 0x80;

    /// A register-level model of a CRB TPM (after QEMU's `tpm-crb` and the PTP) that answers
    /// every command with `reply`; the knobs make it misbehave.
    struct FakeCrb {
        present: bool,
        interface_type: u32,
        localities: bool,
        grant: bool,
        assigned: Option<u8>,
        idle: bool,
        start: bool,
        goes_idle: bool,
        wakes: bool,
        completes: bool,
        cancelled: bool,
        fatal: bool,
        cmd_addr: u64,
        cmd_size: u32,
        rsp_addr: u64,
        rsp_size: u32,
        mem: Vec<u8>,
        reply: Vec<u8>,
        sent: Vec<u8>,
        requests: Vec<u8>,
    }

    impl FakeCrb {
        fn new(reply: Vec<u8>) -> Self {
            Self {
                present: true,
                interface_type: 1,
                localities: true,
                grant: true,
                assigned: None,
                idle: true,
                start: false,
                goes_idle: true,
                wakes: true,
                completes: true,
                cancelled: false,
                fatal: false,
                cmd_addr: CMD_AT,
                cmd_size: 0xf80,
                rsp_addr: CMD_AT,
                rsp_size: 0xf80,
                mem: std::vec![0; 0x1000],
                reply,
                sent: Vec::new(),
                requests: Vec::new(),
            }
        }

        fn buffer(&mut self, addr: u64, len: usize) -> &mut [u8] {
            let at = (addr - CRB_BASE) as usize;
            &mut self.mem[at..at + len]
        }
    }

    impl CrbRegs for &mut FakeCrb {
        fn read32(&mut self, l: u8, off: u16) -> u32 {
            if !self.present {
                return u32::MAX;
            }
            match off {
                LOC_STATE => {
                    LOC_STATE_VALID
                        | self.assigned.map_or(0, |a| {
                            LOC_STATE_ASSIGNED | u32::from(a) << LOC_STATE_ACTIVE_SHIFT
                        })
                }
                LOC_STS => u32::from(self.assigned == Some(l)),
                INTERFACE_ID => {
                    self.interface_type
                        | if self.localities {
                            INTF_CAP_LOCALITY
                        } else {
                            0
                        }
                        | 1 << 24
                }
                INTERFACE_ID2 => 0x0001_1014,
                CTRL_STS => u32::from(self.fatal) | if self.idle { CTRL_STS_IDLE } else { 0 },
                CTRL_START => u32::from(self.start),
                CTRL_CMD_SIZE => self.cmd_size,
                CTRL_CMD_LADDR => self.cmd_addr as u32,
                CTRL_CMD_HADDR => (self.cmd_addr >> 32) as u32,
                CTRL_RSP_SIZE => self.rsp_size,
                CTRL_RSP_LADDR => self.rsp_addr as u32,
                CTRL_RSP_HADDR => (self.rsp_addr >> 32) as u32,
                _ => 0,
            }
        }
        fn write32(&mut self, l: u8, off: u16, v: u32) {
            match (off, v) {
                (LOC_CTRL, LOC_CTRL_REQUEST) => {
                    self.requests.push(l);
                    if self.grant && self.assigned.is_none() {
                        self.assigned = Some(l);
                    }
                }
                (LOC_CTRL, LOC_CTRL_RELINQUISH) if self.assigned == Some(l) => self.assigned = None,
                (CTRL_REQ, CTRL_REQ_CMD_READY) if self.wakes => self.idle = false,
                (CTRL_REQ, CTRL_REQ_GO_IDLE) if self.goes_idle => self.idle = true,
                (CTRL_CANCEL, CANCEL) if self.start => self.cancelled = true,
                // Like QEMU: START runs only from the active locality and when awake.
                (CTRL_START, START) if self.assigned == Some(l) && !self.idle => {
                    self.start = !self.completes;
                    if self.completes {
                        let len = u32::from_be_bytes(
                            self.buffer(self.cmd_addr, 6)[2..6].try_into().unwrap(),
                        ) as usize;
                        self.sent = self.buffer(self.cmd_addr, len).to_vec();
                        let reply = self.reply.clone();
                        self.buffer(self.rsp_addr, reply.len())
                            .copy_from_slice(&reply);
                    }
                }
                _ => {}
            }
        }
        fn read_buffer(&mut self, addr: u64, buf: &mut [u8]) {
            let len = buf.len();
            buf.copy_from_slice(self.buffer(addr, len));
        }
        fn write_buffer(&mut self, addr: u64, data: &[u8]) {
            self.buffer(addr, data.len()).copy_from_slice(data);
        }
    }

    const FAST: Timeouts = Timeouts {
        locality: 10,
        ready: 10,
        command: 10,
    };

    fn probe(tpm: &mut FakeCrb, locality: u8) -> Result<(Crb<&mut FakeCrb>, Identity), CrbError> {
        Crb::probe(tpm, locality, DEFAULT_BUFFER_WINDOW, FAST)
    }

    #[test]
    fn sends_a_command_and_reads_the_response_then_goes_idle() {
        let mut tpm = FakeCrb::new(random_reply(&[1, 2, 3, 4, 5, 6, 7, 8]));
        let (mut crb, id) = probe(&mut tpm, 0).unwrap();
        assert_eq!(
            (
                id.tpm.vendor,
                id.tpm.device,
                id.tpm.revision,
                id.localities,
                id.command_size
            ),
            (0x1014, 0x0001, 1, true, 0xf80)
        );
        let mut rsp = [0u8; 64];
        let n = crb.execute(&get_random_command(8), &mut rsp).unwrap();
        assert_eq!(
            parse_get_random(&rsp[..n]).unwrap(),
            &[1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(tpm.sent, get_random_command(8));
        assert!(tpm.idle, "the TPM is sent back to idle after the command");
    }

    #[test]
    fn separate_response_buffer_is_used() {
        let mut tpm = FakeCrb::new(random_reply(&[5; 4]));
        tpm.cmd_size = 0x400;
        tpm.rsp_addr = CMD_AT + 0x400;
        tpm.rsp_size = 0x400;
        let (mut crb, _) = probe(&mut tpm, 0).unwrap();
        let mut rsp = [0u8; 64];
        let n = crb.execute(&get_random_command(4), &mut rsp).unwrap();
        assert_eq!(parse_get_random(&rsp[..n]).unwrap(), &[5; 4]);
    }

    #[test]
    fn lying_buffer_addresses_and_sizes_are_refused() {
        let window = DEFAULT_BUFFER_WINDOW;
        // (cmd addr, cmd size, rsp addr, rsp size, which is refused)
        let cases: &[(u64, u32, u64, u32, Buffer)] = &[
            (CMD_AT, 0x1000, CMD_AT, 0xf80, Buffer::Command), // runs past the window
            (CRB_BASE, 0xf80, CMD_AT, 0xf80, Buffer::Command), // overlaps the registers
            (0x1000, 0x100, CMD_AT, 0xf80, Buffer::Command),  // in RAM
            (u64::MAX - 4, 0x100, CMD_AT, 0xf80, Buffer::Command), // wraps
            (CMD_AT, 4, CMD_AT, 0xf80, Buffer::Command),      // smaller than a header
            (CMD_AT, 0xf80, CMD_AT + 0xf00, 0x100, Buffer::Response), // runs past the window
            (CMD_AT, 0xf80, 0xfee0_0000, 0x100, Buffer::Response), // the LAPIC
            (CMD_AT, 0xf80, CMD_AT, 0, Buffer::Response),     // empty
        ];
        for &(ca, cs, ra, rs, which) in cases {
            let mut tpm = FakeCrb::new(Vec::new());
            (tpm.cmd_addr, tpm.cmd_size, tpm.rsp_addr, tpm.rsp_size) = (ca, cs, ra, rs);
            let (addr, size) = if which == Buffer::Command {
                (ca, cs)
            } else {
                (ra, rs)
            };
            let err = Crb::probe(&mut tpm, 0, window.clone(), FAST).err();
            assert_eq!(
                err,
                Some(CrbError::BadBuffer { which, addr, size }),
                "{ca:#x}+{cs:#x} / {ra:#x}+{rs:#x}"
            );
            assert!(
                tpm.requests.is_empty(),
                "nothing is asked of a TPM whose buffers lie"
            );
        }
    }

    #[test]
    fn a_response_bigger_than_its_buffer_or_smaller_than_a_header_is_refused() {
        let mut tpm = FakeCrb::new(random_reply(&[7; 40]));
        let (mut crb, _) = probe(&mut tpm, 0).unwrap();
        assert_eq!(
            crb.execute(&get_random_command(40), &mut [0; 20]),
            Err(CrbError::ResponseTooLarge(52))
        );

        let mut tpm = FakeCrb::new(random_reply(&[7; 40]));
        tpm.rsp_addr = CMD_AT + 0x400;
        tpm.rsp_size = 16; // the device's response buffer is smaller than what it claims to return
        let (mut crb, _) = probe(&mut tpm, 0).unwrap();
        assert_eq!(
            crb.execute(&get_random_command(40), &mut [0; 64]),
            Err(CrbError::ResponseTooLarge(52))
        );

        let mut tpm = FakeCrb::new(std::vec![0x80, 0x01, 0, 0, 0, 3, 0, 0, 0, 0]);
        let (mut crb, _) = probe(&mut tpm, 0).unwrap();
        assert_eq!(
            crb.execute(&get_random_command(1), &mut [0; 64]),
            Err(CrbError::BadResponse)
        );
        assert!(tpm.idle, "a refused response still leaves the TPM idle");

        let mut tpm = FakeCrb::new(Vec::new());
        tpm.cmd_size = 0x10;
        tpm.rsp_addr = CMD_AT + 0x10;
        tpm.rsp_size = 0x100;
        let (mut crb, _) = probe(&mut tpm, 0).unwrap();
        assert_eq!(
            crb.execute(
                &[
                    0x80, 1, 0, 0, 0, 20, 0, 0, 1, 0x7b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
                ],
                &mut [0; 64]
            ),
            Err(CrbError::CommandTooLarge(20))
        );
        assert_eq!(
            crb.execute(&[0; 4], &mut [0; 64]),
            Err(CrbError::CommandTooShort)
        );
    }

    #[test]
    fn timeouts_are_typed_errors_never_hangs() {
        let mut tpm = FakeCrb::new(random_reply(&[1]));
        tpm.wakes = false;
        let (mut crb, _) = probe(&mut tpm, 0).unwrap();
        assert_eq!(
            crb.execute(&get_random_command(1), &mut [0; 64]),
            Err(CrbError::Timeout("command ready"))
        );

        let mut tpm = FakeCrb::new(random_reply(&[1]));
        tpm.completes = false;
        let (mut crb, _) = probe(&mut tpm, 0).unwrap();
        assert_eq!(
            crb.execute(&get_random_command(1), &mut [0; 64]),
            Err(CrbError::Timeout("response"))
        );
        assert!(tpm.cancelled, "a command that never completes is cancelled");

        let mut tpm = FakeCrb::new(random_reply(&[1]));
        tpm.goes_idle = false;
        let (mut crb, _) = probe(&mut tpm, 0).unwrap();
        assert_eq!(
            crb.execute(&get_random_command(1), &mut [0; 64]),
            Err(CrbError::Timeout("go idle"))
        );

        let mut tpm = FakeCrb::new(random_reply(&[1]));
        tpm.fatal = true;
        let (mut crb, _) = probe(&mut tpm, 0).unwrap();
        assert_eq!(
            crb.execute(&get_random_command(1), &mut [0; 64]),
            Err(CrbError::Fatal)
        );
    }

    #[test]
    fn localities_are_requested_granted_and_refused() {
        let mut tpm = FakeCrb::new(random_reply(&[3]));
        let (mut crb, _) = probe(&mut tpm, 0).unwrap();
        crb.switch_locality(2).unwrap();
        assert_eq!(crb.locality(), 2);
        let mut rsp = [0u8; 64];
        assert!(
            crb.execute(&get_random_command(1), &mut rsp).is_ok(),
            "commands run at locality 2"
        );
        crb.switch_locality(0).unwrap();
        assert_eq!(tpm.requests, [0, 2, 0]);

        // A CRB with locality 0 only (QEMU's tpm-crb): locality 2 is refused without asking.
        let mut tpm = FakeCrb::new(Vec::new());
        tpm.localities = false;
        let (mut crb, id) = probe(&mut tpm, 0).unwrap();
        assert!(!id.localities);
        assert_eq!(
            crb.switch_locality(2),
            Err(CrbError::LocalityUnsupported(2))
        );
        assert_eq!(
            crb.locality(),
            0,
            "a refused switch keeps the locality held"
        );
        assert_eq!(tpm.requests, [0]);
        let mut tpm = FakeCrb::new(Vec::new());
        tpm.localities = false;
        assert_eq!(
            probe(&mut tpm, 2).err(),
            Some(CrbError::LocalityUnsupported(2))
        );

        // A TPM that never grants.
        let mut tpm = FakeCrb::new(Vec::new());
        tpm.grant = false;
        assert_eq!(probe(&mut tpm, 0).err(), Some(CrbError::LocalityTimeout(0)));
        // Another locality holds it and does not let go.
        let mut tpm = FakeCrb::new(Vec::new());
        tpm.assigned = Some(3);
        assert_eq!(probe(&mut tpm, 0).err(), Some(CrbError::LocalityTimeout(0)));
    }

    #[test]
    fn absent_or_fifo_devices_are_not_crb() {
        let mut tpm = FakeCrb::new(Vec::new());
        tpm.present = false;
        assert_eq!(probe(&mut tpm, 0).err(), Some(CrbError::NoTpm));
        let mut tpm = FakeCrb::new(Vec::new());
        tpm.interface_type = 0;
        assert!(matches!(
            probe(&mut tpm, 0).err(),
            Some(CrbError::NotCrb(_))
        ));
    }
}
