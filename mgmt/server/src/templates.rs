//! The template store: named domain templates, validated on the way in.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};
use warden_mgmt_proto::{Error, Template, TemplateSummary};

/// Most templates stored at once.
pub const MAX_TEMPLATES: usize = 16;
/// Domain memory bounds in MiB (the boot manifest's).
const MEMORY_MIB: core::ops::RangeInclusive<u32> = 3..=256;
/// Longest name or label (the ABI's fixed fields hold 31 bytes and a NUL).
const MAX_NAME: usize = 31;
/// Longest argument string (the start-info field holds 127 bytes and a NUL).
const MAX_ARGS: usize = 127;

#[derive(Debug)]
pub struct TemplateStore {
    templates: BTreeMap<String, Template>,
    /// Bytes of image all templates may hold together (the domain's memory is finite).
    budget: usize,
}

/// Whether `s` is a name or label: 1..=31 of `[A-Za-z0-9_-]`.
pub(crate) fn is_name(s: &str) -> bool {
    (1..=MAX_NAME).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl TemplateStore {
    pub fn new(budget: usize) -> TemplateStore {
        TemplateStore {
            templates: BTreeMap::new(),
            budget,
        }
    }

    fn used(&self) -> usize {
        self.templates.values().map(|t| t.image.len()).sum()
    }

    pub fn add(&mut self, t: Template) -> Result<(), Error> {
        let bad = |why: &str| Err(Error::BadTemplate(why.into()));
        if !is_name(&t.name) {
            return bad("name must be 1-31 characters of A-Z a-z 0-9 _ -");
        }
        if !is_name(&t.label) {
            return bad("label must be 1-31 characters of A-Z a-z 0-9 _ -");
        }
        if t.build_label.as_deref().is_some_and(|b| !is_name(b)) {
            return bad("build label must be 1-31 characters of A-Z a-z 0-9 _ -");
        }
        if !MEMORY_MIB.contains(&t.memory_mib) {
            return bad("memory must be 3-256 MiB");
        }
        if t.args.len() > MAX_ARGS || t.args.bytes().any(|b| b == 0 || b.is_ascii_control()) {
            return bad("args must be at most 127 printable bytes");
        }
        if !t.image.starts_with(b"\x7fELF") {
            return bad("image is not an ELF file");
        }
        if self.templates.contains_key(&t.name) {
            return Err(Error::TemplateExists(t.name));
        }
        if self.templates.len() >= MAX_TEMPLATES || self.used() + t.image.len() > self.budget {
            return Err(Error::Full);
        }
        self.templates.insert(t.name.clone(), t);
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Result<(), Error> {
        self.templates
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Error::UnknownTemplate(name.into()))
    }

    pub fn get(&self, name: &str) -> Result<&Template, Error> {
        self.templates
            .get(name)
            .ok_or_else(|| Error::UnknownTemplate(name.into()))
    }

    pub fn list(&self) -> Vec<TemplateSummary> {
        self.templates
            .values()
            .map(|t| TemplateSummary {
                name: t.name.clone(),
                image_bytes: t.image.len() as u64,
                image_sha256: Sha256::digest(&t.image).into(),
                memory_mib: t.memory_mib,
                priority: t.priority,
                label: t.label.clone(),
                args: t.args.clone(),
            })
            .collect()
    }
}
