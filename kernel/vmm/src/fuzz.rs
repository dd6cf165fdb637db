//! Fuzz entry points for every parser of guest- or loader-supplied bytes. The cargo-fuzz
//! targets in `fuzz/` call these, and a host test runs the checked-in corpus through them on
//! stable. Each one checks the parser's promises, not just the absence of panics.

use warden_abi::HypercallArgs;

use crate::layout::IMAGE_BASE;

/// ELF images: any input is refused or yields segments inside the window, sorted, disjoint,
/// with the entry in an executable segment.
pub fn fuzz_elf(data: &[u8]) {
    const MAX: u64 = 16 << 20;
    if let Ok(img) = crate::elf::parse(data, IMAGE_BASE, MAX) {
        assert!(img.segments.iter().all(|s| s.vaddr >= IMAGE_BASE && s.page_end() <= MAX));
        assert!(img.segments.windows(2).all(|w| w[0].page_end() <= w[1].page_start()));
        assert!(img.segments.iter().any(|s| s.rights.execute && s.vaddr <= img.entry && img.entry < s.end()));
        assert!(img.segments.iter().all(|s| s.file_offset + s.file_size <= data.len() as u64));
    }
}

/// Boot manifests: refused with an error, or every domain has a valid name and bounded memory.
pub fn fuzz_manifest(data: &[u8]) {
    if let Ok(domains) = crate::manifest::parse(data) {
        for d in &domains {
            assert!(!d.name.is_empty() && d.name.len() <= crate::manifest::MAX_NAME);
            assert!((crate::manifest::MIN_MEMORY_MIB..=crate::manifest::MAX_MEMORY_MIB).contains(&d.memory_mib));
        }
    }
}

fn words<const N: usize>(data: &[u8]) -> [u64; N] {
    let mut out = [0u64; N];
    for (i, chunk) in data.chunks(8).take(N).enumerate() {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        out[i] = u64::from_le_bytes(b);
    }
    out
}

/// Hypercall registers (call number, five arguments, then the domain's memory size): every
/// pointer a decoded call carries lies in backed memory.
pub fn fuzz_hypercall(data: &[u8]) {
    let [call, a0, a1, a2, a3, a4, mem] = words::<7>(data);
    let memory_bytes = (mem % 256 + 3) << 20;
    if let Ok(
        crate::hypercall::Hypercall::ConsoleWrite(r) | crate::hypercall::Hypercall::DomainInfo(r),
    ) = crate::hypercall::decode(HypercallArgs { call, args: [a0, a1, a2, a3, a4] }, memory_bytes)
    {
        assert!(r.gpa.checked_add(r.len).is_some_and(|e| e <= memory_bytes));
        assert!(r.len == 0 || crate::layout::HOLES.iter().all(|&h| r.gpa >= h + 4096 || r.gpa + r.len <= h));
    }
}

/// Exit words (code, info1, info2): decoding is total.
pub fn fuzz_exit(data: &[u8]) {
    let [code, info1, info2] = words::<3>(data);
    let _ = crate::exit::decode(code, info1, info2);
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// Runs every checked-in corpus file through its entry point (on stable, in every test run).
    #[test]
    fn corpus_runs_clean() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 4] = [
            ("elf", super::fuzz_elf),
            ("manifest", super::fuzz_manifest),
            ("hypercall", super::fuzz_hypercall),
            ("exit", super::fuzz_exit),
        ];
        for (name, f) in targets {
            let files: Vec<PathBuf> = std::fs::read_dir(root.join(name))
                .unwrap_or_else(|e| panic!("corpus folder {name}: {e}"))
                .map(|e| e.unwrap().path())
                .collect();
            assert!(!files.is_empty(), "empty corpus for {name}");
            for file in files {
                f(&std::fs::read(&file).unwrap());
            }
        }
    }

    #[test]
    fn seed_images_and_manifests_are_accepted() {
        // The corpus is not only junk: its seeds exercise the accepting paths too.
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let elf = std::fs::read(root.join("elf/good")).unwrap();
        assert!(crate::elf::parse(&elf, crate::layout::IMAGE_BASE, 16 << 20).is_ok());
        let m = std::fs::read(root.join("manifest/two-domains")).unwrap();
        assert_eq!(crate::manifest::parse(&m).map(|d| d.len()), Ok(2));
    }
}
