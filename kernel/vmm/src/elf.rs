//! ELF64 domain images: strict validation of untrusted bytes, then loading into guest memory.
//!
//! Only statically linked x86-64 executables (`ET_EXEC`) are accepted: no interpreter, no
//! dynamic section, at most [`MAX_SEGMENTS`] `PT_LOAD` segments that do not overlap, lie inside
//! the window the domain layout allows, and contain the entry point in an executable segment.

use heapless::Vec;

/// Most loadable segments an image may have.
pub const MAX_SEGMENTS: usize = 8;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// Why an image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than the structure being read (`need` bytes at least).
    Truncated { need: u64, have: u64 },
    BadMagic,
    /// Not ELFCLASS64 / little-endian / version 1 / x86-64 / `ET_EXEC` (the field is named).
    Unsupported(&'static str),
    /// `e_phentsize` is not 56.
    BadPhentsize(u16),
    /// More than [`MAX_SEGMENTS`] loadable segments.
    TooManySegments,
    /// A segment's file bytes exceed its memory size, or its file range leaves the file.
    BadSegment { index: usize },
    /// A segment lies (partly) outside the loadable window `[min, max)`.
    OutsideWindow { vaddr: u64, end: u64 },
    /// Two segments share a page.
    Overlap { vaddr: u64 },
    /// A `PT_INTERP` or `PT_DYNAMIC` header: the image needs a loader we do not have.
    NeedsDynamicLinking,
    /// No loadable segment.
    Empty,
    /// The entry point is not inside an executable loadable segment.
    EntryOutside(u64),
    /// A segment is writable and executable.
    WritableExecutable { vaddr: u64 },
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ElfError::Truncated { need, have } => write!(f, "truncated: need {need} bytes, have {have}"),
            ElfError::BadMagic => f.write_str("not an ELF file (bad magic)"),
            ElfError::Unsupported(what) => write!(f, "unsupported {what}"),
            ElfError::BadPhentsize(n) => write!(f, "program header size {n}, expected {PHDR_SIZE}"),
            ElfError::TooManySegments => write!(f, "more than {MAX_SEGMENTS} loadable segments"),
            ElfError::BadSegment { index } => write!(f, "program header {index} is inconsistent"),
            ElfError::OutsideWindow { vaddr, end } => {
                write!(f, "segment {vaddr:#x}..{end:#x} outside the domain's image window")
            }
            ElfError::Overlap { vaddr } => write!(f, "segment at {vaddr:#x} overlaps another"),
            ElfError::NeedsDynamicLinking => f.write_str("dynamically linked (PT_INTERP/PT_DYNAMIC)"),
            ElfError::Empty => f.write_str("no loadable segment"),
            ElfError::EntryOutside(e) => write!(f, "entry point {e:#x} is not in an executable segment"),
            ElfError::WritableExecutable { vaddr } => write!(f, "segment at {vaddr:#x} is writable and executable"),
        }
    }
}

/// Access rights of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// One validated loadable segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub rights: Rights,
}

impl Segment {
    pub fn end(&self) -> u64 {
        self.vaddr + self.mem_size
    }
    /// First page-aligned address at or above the segment's end.
    pub fn page_end(&self) -> u64 {
        self.end().next_multiple_of(PAGE)
    }
    pub fn page_start(&self) -> u64 {
        self.vaddr & !(PAGE - 1)
    }
}

const PAGE: u64 = 4096;

/// A validated image: its segments sorted by address, and its entry point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub entry: u64,
    pub segments: Vec<Segment, MAX_SEGMENTS>,
}

impl Image {
    /// Lowest page the image occupies.
    pub fn start(&self) -> u64 {
        self.segments.first().map_or(0, Segment::page_start)
    }
    /// First page after the image.
    pub fn end(&self) -> u64 {
        self.segments.last().map_or(0, Segment::page_end)
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Validates `bytes` as an image whose segments must lie in `[window_min, window_max)`.
pub fn parse(bytes: &[u8], window_min: u64, window_max: u64) -> Result<Image, ElfError> {
    let have = bytes.len() as u64;
    if bytes.len() < EHDR_SIZE {
        return Err(ElfError::Truncated { need: EHDR_SIZE as u64, have });
    }
    if bytes[0..4] != *b"\x7fELF" {
        return Err(ElfError::BadMagic);
    }
    let checks: [(bool, &'static str); 5] = [
        (bytes[4] == 2, "class (not ELF64)"),
        (bytes[5] == 1, "byte order (not little-endian)"),
        (bytes[6] == 1, "ELF version"),
        (u16_at(bytes, 16) == 2, "file type (not ET_EXEC)"),
        (u16_at(bytes, 18) == 0x3e, "machine (not x86-64)"),
    ];
    if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(ElfError::Unsupported(what));
    }
    let entry = u64_at(bytes, 24);
    let phoff = u64_at(bytes, 32);
    let phentsize = u16_at(bytes, 54);
    let phnum = u64::from(u16_at(bytes, 56));
    if phentsize as usize != PHDR_SIZE {
        return Err(ElfError::BadPhentsize(phentsize));
    }
    // phnum <= 0xffff and PHDR_SIZE is small: the product cannot overflow, the sum can.
    let ph_end = phoff.checked_add(phnum * PHDR_SIZE as u64).ok_or(ElfError::Truncated { need: u64::MAX, have })?;
    if ph_end > have {
        return Err(ElfError::Truncated { need: ph_end, have });
    }

    let mut segments: Vec<Segment, MAX_SEGMENTS> = Vec::new();
    for index in 0..phnum as usize {
        let ph = &bytes[phoff as usize + index * PHDR_SIZE..][..PHDR_SIZE];
        let kind = u32_at(ph, 0);
        if kind == PT_INTERP || kind == PT_DYNAMIC {
            return Err(ElfError::NeedsDynamicLinking);
        }
        if kind != PT_LOAD {
            continue;
        }
        let flags = u32_at(ph, 4);
        let seg = Segment {
            file_offset: u64_at(ph, 8),
            vaddr: u64_at(ph, 16),
            file_size: u64_at(ph, 32),
            mem_size: u64_at(ph, 40),
            rights: Rights { read: flags & PF_R != 0, write: flags & PF_W != 0, execute: flags & PF_X != 0 },
        };
        let file_end = seg.file_offset.checked_add(seg.file_size);
        if seg.file_size > seg.mem_size || file_end.is_none_or(|e| e > have) {
            return Err(ElfError::BadSegment { index });
        }
        if seg.mem_size == 0 {
            continue;
        }
        let end = seg.vaddr.checked_add(seg.mem_size).filter(|&e| e <= window_max);
        match end {
            Some(end) if seg.vaddr >= window_min && end.next_multiple_of(PAGE) <= window_max => {}
            _ => return Err(ElfError::OutsideWindow { vaddr: seg.vaddr, end: seg.vaddr.wrapping_add(seg.mem_size) }),
        }
        if seg.rights.write && seg.rights.execute {
            return Err(ElfError::WritableExecutable { vaddr: seg.vaddr });
        }
        segments.push(seg).map_err(|_| ElfError::TooManySegments)?;
    }
    if segments.is_empty() {
        return Err(ElfError::Empty);
    }
    segments.sort_unstable_by_key(|s| s.vaddr);
    // Segments get their own pages (each page has one set of rights), so they may not share one.
    for pair in segments.windows(2) {
        if pair[1].page_start() < pair[0].page_end() {
            return Err(ElfError::Overlap { vaddr: pair[1].vaddr });
        }
    }
    let in_code = segments.iter().any(|s| s.rights.execute && s.vaddr <= entry && entry < s.end());
    if !in_code {
        return Err(ElfError::EntryOutside(entry));
    }
    Ok(Image { entry, segments })
}

/// Where loading writes: guest-physical memory of one domain.
pub trait GuestWrite {
    /// Copies `bytes` to guest-physical `gpa` (the range was validated against the window).
    fn write(&mut self, gpa: u64, bytes: &[u8]);
    /// Zeroes `len` bytes at `gpa`.
    fn zero(&mut self, gpa: u64, len: u64);
}

/// Copies every segment's file bytes and zeroes the rest of its pages (bss and padding).
pub fn load(image: &Image, bytes: &[u8], mem: &mut impl GuestWrite) {
    for seg in &image.segments {
        mem.zero(seg.page_start(), seg.page_end() - seg.page_start());
        let file = &bytes[seg.file_offset as usize..][..seg.file_size as usize];
        mem.write(seg.vaddr, file);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec as StdVec;

    /// (vaddr, file bytes, mem size, flags) for a synthetic segment.
    pub(crate) type Seg = (u64, StdVec<u8>, u64, u32);

    /// Builds a well-formed ELF64 executable with the given segments.
    pub(crate) fn build(entry: u64, segs: &[Seg]) -> StdVec<u8> {
        let phoff = EHDR_SIZE;
        let data_start = phoff + segs.len() * PHDR_SIZE;
        let mut out = vec![0u8; data_start];
        out[0..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&2u16.to_le_bytes());
        out[18..20].copy_from_slice(&0x3eu16.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[24..32].copy_from_slice(&entry.to_le_bytes());
        out[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
        out[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        out[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        out[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, (vaddr, data, memsz, flags)) in segs.iter().enumerate() {
            let off = out.len() as u64;
            out.extend_from_slice(data);
            let ph = &mut out[phoff + i * PHDR_SIZE..][..PHDR_SIZE];
            ph[0..4].copy_from_slice(&PT_LOAD.to_le_bytes());
            ph[4..8].copy_from_slice(&flags.to_le_bytes());
            ph[8..16].copy_from_slice(&off.to_le_bytes());
            ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
            ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
            ph[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            ph[48..56].copy_from_slice(&4096u64.to_le_bytes());
        }
        out
    }

    const RX: u32 = PF_R | PF_X;
    const RW: u32 = PF_R | PF_W;
    const MIN: u64 = 0x20_0000;
    const MAX: u64 = 0x40_0000;

    pub(crate) fn good() -> StdVec<u8> {
        build(0x20_0010, &[(0x20_0000, vec![0x90; 0x20], 0x20, RX), (0x20_1000, vec![7; 8], 0x2000, RW)])
    }

    #[test]
    fn accepts_a_good_image() {
        let img = parse(&good(), MIN, MAX).unwrap();
        assert_eq!(img.entry, 0x20_0010);
        assert_eq!(img.segments.len(), 2);
        assert_eq!((img.start(), img.end()), (0x20_0000, 0x20_3000));
    }

    fn set_ph(elf: &mut [u8], index: usize, at: usize, v: u64) {
        let o = EHDR_SIZE + index * PHDR_SIZE + at;
        elf[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn malformed_images_are_refused_with_the_right_error() {
        type Mutate = fn(&mut StdVec<u8>);
        let cases: &[(&str, Mutate, ElfError)] = &[
            ("empty", |e| e.clear(), ElfError::Truncated { need: 64, have: 0 }),
            ("header cut", |e| e.truncate(40), ElfError::Truncated { need: 64, have: 40 }),
            ("program headers cut", |e| e.truncate(100), ElfError::Truncated { need: 176, have: 100 }),
            ("bad magic", |e| e[1] = b'X', ElfError::BadMagic),
            ("32-bit", |e| e[4] = 1, ElfError::Unsupported("class (not ELF64)")),
            ("big-endian", |e| e[5] = 2, ElfError::Unsupported("byte order (not little-endian)")),
            ("shared object", |e| e[16] = 3, ElfError::Unsupported("file type (not ET_EXEC)")),
            ("aarch64", |e| e[18] = 0xb7, ElfError::Unsupported("machine (not x86-64)")),
            ("phentsize", |e| e[54] = 32, ElfError::BadPhentsize(32)),
            ("phoff overflow", |e| e[32..40].copy_from_slice(&u64::MAX.to_le_bytes()),
                ElfError::Truncated { need: u64::MAX, have: 0 }),
            ("segment file range past the end", |e| set_ph(e, 0, 32, 0x1_0000), ElfError::BadSegment { index: 0 }),
            ("file size above memory size", |e| set_ph(e, 1, 40, 4), ElfError::BadSegment { index: 1 }),
            ("offset overflow", |e| set_ph(e, 0, 8, u64::MAX), ElfError::BadSegment { index: 0 }),
            ("huge memory size", |e| set_ph(e, 1, 40, u64::MAX),
                ElfError::OutsideWindow { vaddr: 0x20_1000, end: 0x20_0fff }),
            ("below the window", |e| set_ph(e, 0, 16, 0x1000),
                ElfError::OutsideWindow { vaddr: 0x1000, end: 0x1020 }),
            ("above the window", |e| set_ph(e, 1, 16, MAX - 0x1000),
                ElfError::OutsideWindow { vaddr: MAX - 0x1000, end: MAX + 0x1000 }),
            ("overlapping segments", |e| set_ph(e, 1, 16, 0x20_0800), ElfError::Overlap { vaddr: 0x20_0800 }),
            ("entry outside memory", |e| e[24..32].copy_from_slice(&0x9000_0000u64.to_le_bytes()),
                ElfError::EntryOutside(0x9000_0000)),
            ("entry in data", |e| e[24..32].copy_from_slice(&0x20_1000u64.to_le_bytes()),
                ElfError::EntryOutside(0x20_1000)),
            ("dynamic", |e| e[EHDR_SIZE..EHDR_SIZE + 4].copy_from_slice(&PT_INTERP.to_le_bytes()),
                ElfError::NeedsDynamicLinking),
            ("writable code", |e| e[EHDR_SIZE + 4] = (RX | PF_W) as u8,
                ElfError::WritableExecutable { vaddr: 0x20_0000 }),
        ];
        for (what, mutate, want) in cases {
            let mut elf = good();
            mutate(&mut elf);
            let got = parse(&elf, MIN, MAX);
            // `have` in the phoff case depends on the image size; compare the variant only there.
            match (got, want) {
                (Err(ElfError::Truncated { need: u64::MAX, .. }), ElfError::Truncated { need: u64::MAX, .. }) => {}
                (got, want) => assert_eq!(got, Err(*want), "{what}"),
            }
        }
    }

    #[test]
    fn too_many_segments_and_no_segments_are_refused() {
        let many: StdVec<Seg> = (0..MAX_SEGMENTS as u64 + 1).map(|i| (MIN + i * 0x1000, vec![], 8, RX)).collect();
        assert_eq!(parse(&build(MIN, &many), MIN, MAX), Err(ElfError::TooManySegments));
        assert_eq!(parse(&build(MIN, &[]), MIN, MAX), Err(ElfError::Empty));
    }

    #[test]
    fn every_truncation_and_every_single_byte_flip_is_an_error_or_an_image_never_a_panic() {
        let elf = good();
        for n in 0..elf.len() {
            assert!(parse(&elf[..n], MIN, MAX).is_err(), "prefix of {n} bytes accepted");
        }
        for i in 0..elf.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut m = elf.clone();
                m[i] = v;
                if let Ok(img) = parse(&m, MIN, MAX) {
                    assert!(img.segments.iter().all(|s| s.vaddr >= MIN && s.page_end() <= MAX));
                }
            }
        }
    }

    struct VecMem(StdVec<u8>);
    impl GuestWrite for VecMem {
        fn write(&mut self, gpa: u64, bytes: &[u8]) {
            self.0[gpa as usize..][..bytes.len()].copy_from_slice(bytes);
        }
        fn zero(&mut self, gpa: u64, len: u64) {
            self.0[gpa as usize..][..len as usize].fill(0);
        }
    }

    #[test]
    fn load_copies_file_bytes_and_zeroes_bss() {
        let elf = good();
        let img = parse(&elf, MIN, MAX).unwrap();
        let mut mem = VecMem(vec![0xaa; MAX as usize]);
        load(&img, &elf, &mut mem);
        assert_eq!(&mem.0[0x20_0000..0x20_0020], &[0x90; 0x20]);
        assert!(mem.0[0x20_0020..0x20_1000].iter().all(|&b| b == 0), "padding after code zeroed");
        assert_eq!(&mem.0[0x20_1000..0x20_1008], &[7; 8]);
        assert!(mem.0[0x20_1008..0x20_3000].iter().all(|&b| b == 0), "bss zeroed");
        assert_eq!(mem.0[0x20_3000], 0xaa, "nothing written past the image");
    }
}
