//! The formatter property shared by the example and random-policy tests: `fmt` is idempotent and
//! `compile(fmt(p))` equals `compile(p)`.

use warden_policy_compiler::{Compiled, compile, format_source};

/// What compiling a source means, everything but the hash of its text: the binary the
/// hypervisor loads (with `source_hash` zeroed), the expectations, and the warnings; or, for
/// a source that does not compile, the error codes in order.
fn meaning(src: &str) -> Result<(Vec<u8>, Vec<String>, Vec<String>), Vec<String>> {
    let codes = |d: &[warden_policy_compiler::Diagnostic]| d.iter().map(|d| format!("{:?}", d.code)).collect();
    compile(src).map(|c: Compiled| {
        let mut image = c.image();
        image.source_hash = [0; 32];
        (
            warden_policy::encode::encode(&image),
            c.model.expects.iter().map(|e| format!("{} {:?} {} {:#x}", e.allow, e.pairs, e.class.name(), e.perms)).collect(),
            codes(&c.warnings),
        )
    })
    .map_err(|e| codes(&e))
}

/// Asserts the property for one source (`name` labels failures). A source that does not
/// parse must fail `fmt` with the parser's own error.
pub fn assert_fmt_preserves(name: &str, src: &str) {
    let once = match format_source(src) {
        Ok(once) => once,
        Err(e) => {
            let Err(codes) = meaning(src) else { panic!("{name}: fmt refused a source that compiles: {e:?}") };
            assert_eq!(codes.first(), Some(&format!("{:?}", e.code)), "{name}: fmt and compile disagree on the error");
            return;
        }
    };
    let twice = format_source(&once).unwrap_or_else(|e| panic!("{name}: fmt output does not parse: {e:?}\n{once}"));
    assert_eq!(once, twice, "{name}: fmt is not idempotent");
    assert_eq!(meaning(&once), meaning(src), "{name}: fmt changed meaning\n--- source\n{src}\n--- formatted\n{once}");
}
