//! Runs every file of the checked-in fuzz corpus (`vtpm/fuzz/corpus/commands`) through the
//! fuzz entry point on stable: no input may panic the engine.

#[test]
fn corpus_inputs_do_not_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/commands");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus folder") {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        warden_vtpm::fuzz_execute(&data);
        // Truncations and single-byte flips of each seed are inputs too.
        for cut in [1, 3, 10, data.len() / 2] {
            warden_vtpm::fuzz_execute(&data[..data.len().saturating_sub(cut)]);
        }
        for i in (0..data.len()).step_by(7) {
            let mut d = data.clone();
            d[i] ^= 0x5A;
            warden_vtpm::fuzz_execute(&d);
        }
        n += 1;
    }
    assert!(n >= 5, "expected the seed corpus in {}", dir.display());
}
