//! The formatter property shared by the example and random-policy tests: `fmt` is idempotent and
//! `compile(fmt(p))` equals `compile(p)`.

use warden_policy_compiler::{Compiled, compile, format_source};

/// What compiling a source means, everything but the hash of its text.
#[derive(Debug, PartialEq)]
struct Meaning {
    /// The binary the hypervisor loads, with `source_hash` zeroed.
    binary: Vec<u8>,
    /// The `expect` statements, as (allow, pairs, class, perms).
    expects: Vec<String>,
    /// The warning codes.
    warnings: Vec<String>,
}

/// The meaning of `src`, or the error codes in order when it does not compile.
fn meaning(src: &str) -> Result<Meaning, Vec<String>> {
    let codes = |d: &[warden_policy_compiler::Diagnostic]| d.iter().map(|d| format!("{:?}", d.code)).collect();
    compile(src)
        .map(|c: Compiled| {
            let mut image = c.image();
            image.source_hash = [0; 32];
            Meaning {
                binary: warden_policy::encode::encode(&image),
                expects: c
                    .model
                    .expects
                    .iter()
                    .map(|e| format!("{} {:?} {} {:#x}", e.allow, e.pairs, e.class.name(), e.perms))
                    .collect(),
                warnings: codes(&c.warnings),
            }
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
