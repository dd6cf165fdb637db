//! Binary size: Warden's port of Xen's example policy against Xen's own build of it (m4 +
//! Debian's `checkpolicy`, run here), and the v2 access-vector table against the v1 layout it
//! replaced (open addressing, 40-byte slots, load factor 1/2) for the same vectors.

#[path = "../../bench/src/xen_flask.rs"]
mod xen_flask;

use std::path::Path;

use warden_policy::format::{AV_ENTRY, HEADER_LEN, SECTION_ENTRY};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn xen_port_is_at_most_twice_checkpolicys_binary() {
    let xen =
        xen_flask::checkpolicy_size(&root().join("policy/bench/xen-flask")).unwrap_or_else(|e| {
            panic!("building Xen's policy (`cargo xtask setup` installs m4 and checkpolicy): {e}")
        });
    let src = std::fs::read_to_string(root().join("policy/examples/xen-example.wpol")).unwrap();
    let c = warden_policy_compiler::compile(&src).unwrap();
    let port = c.binary().len();
    assert!(
        port <= 2 * xen,
        "Warden's binary is {port} bytes, checkpolicy's {xen}"
    );
}

#[test]
fn access_vector_table_is_smaller_than_the_v1_layout() {
    for name in ["xen-example.wpol", "cloud.wpol", "demo.wpol"] {
        let src = std::fs::read_to_string(root().join("policy/examples").join(name)).unwrap();
        let c = warden_policy_compiler::compile(&src).unwrap();
        let bin = c.binary();
        // Sections 2 and 3 are the bucket index and the entries (format.rs).
        let len = |i: usize| {
            let e = HEADER_LEN + i * SECTION_ENTRY + 8;
            u32::from_le_bytes(bin[e..e + 4].try_into().unwrap()) as usize
        };
        let (index, entries) = (len(2), len(3));
        let n = entries / AV_ENTRY;
        assert_eq!(n, c.image().av.len(), "{name}");
        let v1 = (2 * n + 1).next_power_of_two() * 40;
        assert!(
            2 * (index + entries) <= v1,
            "{name}: table {} bytes, v1 layout {v1}",
            index + entries
        );
    }
}

/// The GPL-2.0 copy of Xen's policy is kept byte for byte as Xen ships it (policy/bench's
/// README says why): every file under `modules/`, `policy/` and `xsm/` is listed in
/// `SHA256SUMS` (taken from Xen at the pinned commit) and matches it, and nothing else is there.
#[test]
fn xen_flask_copy_is_unmodified() {
    use sha2::{Digest, Sha256};
    let dir = root().join("policy/bench/xen-flask");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let mut listed = Vec::new();
    for line in sums.lines() {
        let (hex, path) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("malformed SHA256SUMS line {line:?}"));
        let data = std::fs::read(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let got: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            got, hex,
            "{path} differs from Xen's file at the pinned commit"
        );
        listed.push(path.to_string());
    }
    fn walk(base: &Path, rel: &str, out: &mut Vec<String>) {
        for e in std::fs::read_dir(base.join(rel)).unwrap().flatten() {
            let name = format!("{rel}/{}", e.file_name().to_string_lossy());
            if e.file_type().unwrap().is_dir() {
                walk(base, &name, out)
            } else {
                out.push(name)
            }
        }
    }
    let mut present = Vec::new();
    for top in ["modules", "policy", "xsm"] {
        walk(&dir, top, &mut present);
    }
    present.sort();
    listed.sort();
    assert_eq!(
        present, listed,
        "files under xen-flask/ and SHA256SUMS disagree"
    );
}
