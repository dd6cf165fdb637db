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
    let xen = xen_flask::checkpolicy_size(&root().join("policy/bench/xen-flask"))
        .unwrap_or_else(|e| panic!("building Xen's policy (`cargo xtask setup` installs m4 and checkpolicy): {e}"));
    let src = std::fs::read_to_string(root().join("policy/examples/xen-example.wpol")).unwrap();
    let c = warden_policy_compiler::compile(&src).unwrap();
    let port = c.binary().len();
    assert!(port <= 2 * xen, "Warden's binary is {port} bytes, checkpolicy's {xen}");
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
        assert!(2 * (index + entries) <= v1, "{name}: table {} bytes, v1 layout {v1}", index + entries);
    }
}
