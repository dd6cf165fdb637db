//! Shared helpers: compiling the scenario policies with the real compiler, and a fake platform
//! for driving [`warden_ipc::Ipc`] the way the hypervisor does.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use warden_ipc::{DomId, IpcError, Platform};
use warden_policy::TypeId;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn policy_source(name: &str) -> String {
    let p = workspace_root().join("policy/scenarios").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Compiles source with the real compiler; panics with the rendered diagnostics.
pub fn compile(name: &str, src: &str) -> Vec<u8> {
    match warden_policy_compiler::compile(src) {
        Ok(c) => c.to_binary(),
        Err(d) => panic!(
            "{name} does not compile:\n{}",
            warden_policy_compiler::diag::render(name, src, &d)
        ),
    }
}

/// The binary of a scenario policy, leaked so a `Mac<'static>` can borrow it as in the hypervisor.
pub fn scenario_blob(name: &str) -> &'static [u8] {
    Box::leak(compile(name, &policy_source(name)).into_boxed_slice())
}

/// A fresh audit ring with static lifetime, as the hypervisor keeps it.
pub fn ring<const N: usize>() -> &'static mut warden_ipc::AuditRing<N> {
    Box::leak(Box::new(warden_ipc::AuditRing::new()))
}

/// Fresh tables with static lifetime, as the hypervisor keeps them.
pub fn tables() -> (
    &'static mut warden_ipc::EventChannels,
    &'static mut warden_ipc::GrantTable,
) {
    (
        Box::leak(Box::new(warden_ipc::EventChannels::new())),
        Box::leak(Box::new(warden_ipc::GrantTable::new())),
    )
}

pub const PAGE: u64 = 4096;

/// One fake domain: a label and a little memory.
pub struct FakeDom {
    pub label: TypeId,
    pub alive: bool,
    pub mem: Vec<u8>,
    /// gpa -> (granter, gfn, writable)
    pub maps: BTreeMap<u64, (DomId, u64, bool)>,
    pub woken: u64,
}

/// A platform with domains whose memory is a `Vec`; grant mappings are resolved by
/// [`FakePlatform::read`]/[`FakePlatform::write`] like nested paging would.
pub struct FakePlatform {
    pub doms: Vec<FakeDom>,
    pub time: u64,
}

impl FakePlatform {
    pub fn new(labels: &[TypeId], pages: usize) -> Self {
        let doms = labels
            .iter()
            .map(|&label| FakeDom {
                label,
                alive: true,
                mem: vec![0; pages * PAGE as usize],
                maps: BTreeMap::new(),
                woken: 0,
            })
            .collect();
        FakePlatform { doms, time: 0 }
    }

    fn resolve(&self, d: DomId, gpa: u64, write: bool) -> (usize, usize) {
        let page = gpa & !(PAGE - 1);
        let dom = &self.doms[d.0 as usize];
        if let Some(&(granter, gfn, writable)) = dom.maps.get(&page) {
            assert!(
                !write || writable,
                "write through a read-only grant mapping"
            );
            (granter.0 as usize, (gfn * PAGE + gpa - page) as usize)
        } else {
            assert!(
                (gpa as usize) < dom.mem.len(),
                "access outside memory: {gpa:#x}"
            );
            (d.0 as usize, gpa as usize)
        }
    }

    /// A guest load (through grant mappings).
    pub fn read(&self, d: DomId, gpa: u64, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            let (o, a) = self.resolve(d, gpa + i as u64, false);
            *b = self.doms[o].mem[a];
        }
    }

    /// A guest store (through grant mappings).
    pub fn write(&mut self, d: DomId, gpa: u64, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let (o, a) = self.resolve(d, gpa + i as u64, true);
            self.doms[o].mem[a] = b;
        }
    }
}

impl Platform for FakePlatform {
    fn label(&self, dom: DomId) -> Option<TypeId> {
        self.doms
            .get(dom.0 as usize)
            .filter(|d| d.alive)
            .map(|d| d.label)
    }
    fn owns_frame(&self, dom: DomId, gfn: u64) -> bool {
        // Frame 0 is the null page, never shareable.
        self.doms
            .get(dom.0 as usize)
            .is_some_and(|d| gfn != 0 && gfn < d.mem.len() as u64 / PAGE)
    }
    fn map_grant(
        &mut self,
        grantee: DomId,
        gpa: u64,
        granter: DomId,
        gfn: u64,
        writable: bool,
    ) -> Result<(), IpcError> {
        let prev = self.doms[grantee.0 as usize]
            .maps
            .insert(gpa, (granter, gfn, writable));
        assert!(
            prev.is_none(),
            "the table let a second mapping at {gpa:#x} through"
        );
        Ok(())
    }
    fn unmap_grant(&mut self, grantee: DomId, gpa: u64) {
        let prev = self.doms[grantee.0 as usize].maps.remove(&gpa);
        assert!(prev.is_some(), "unmap of nothing at {gpa:#x}");
    }
    fn buffer_ok(&self, dom: DomId, gpa: u64, len: u64) -> bool {
        // Page 0 is a hole, as in the hypervisor's layout.
        let d = &self.doms[dom.0 as usize];
        gpa >= PAGE
            && gpa
                .checked_add(len)
                .is_some_and(|end| end <= d.mem.len() as u64)
    }
    fn write_guest(&mut self, dom: DomId, gpa: u64, bytes: &[u8]) -> Result<(), IpcError> {
        let d = &mut self.doms[dom.0 as usize];
        let end = gpa
            .checked_add(bytes.len() as u64)
            .ok_or(IpcError::BadBuffer)?;
        if gpa < PAGE || end > d.mem.len() as u64 {
            return Err(IpcError::BadBuffer);
        }
        d.mem[gpa as usize..end as usize].copy_from_slice(bytes);
        Ok(())
    }
    fn wake(&mut self, dom: DomId) {
        self.doms[dom.0 as usize].woken += 1;
    }
    fn now(&self) -> u64 {
        self.time
    }
}

/// A small deterministic generator (xorshift64*), so failures replay exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Mostly small values (valid-looking ids and ports), sometimes anything.
    pub fn arg(&mut self) -> u64 {
        match self.next() % 4 {
            0 => self.next() % 8,
            1 => self.next() % 70,
            2 => warden_ipc::grant::MAP_WINDOW + (self.next() % 80) * PAGE,
            _ => self.next(),
        }
    }
}
