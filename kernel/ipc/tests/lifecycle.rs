//! The lifecycle decoder's fuzz corpus, run as an ordinary test on stable (the fuzz target
//! itself needs nightly: `kernel/ipc/fuzz`).

use warden_ipc::lifecycle::fuzz_lifecycle;

#[test]
fn the_fuzz_corpus_decodes_without_panicking() {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/lifecycle");
    let files: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files.len() >= 5, "corpus {}", d.display());
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        fuzz_lifecycle(&bytes);
        // Every prefix too: truncated input is the common malformed case.
        for cut in 0..bytes.len() {
            fuzz_lifecycle(&bytes[..cut]);
        }
    }
}
