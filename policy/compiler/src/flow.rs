//! Information-flow analysis over the expanded policy, using the schema's permission flow map.
//!
//! Nodes are types. An allowed permission whose flow is source->target adds an edge
//! subject -> target; target->source adds target -> subject; `both` adds both. Information can
//! flow from A to B iff B is reachable from A: the answer is exact for this model (it is a
//! plain graph search, no approximation), and breadth-first search gives a shortest path.

use std::collections::VecDeque;

use warden_policy::schema::Class;

use crate::model::Model;

/// One edge of the flow graph with the permission that creates it.
#[derive(Debug, Clone, Copy)]
pub struct Edge {
    /// Where the information arrives.
    pub to: u32,
    /// The access-vector key `(subject, target, class)` behind it.
    pub key: (u32, u32, Class),
    /// A permission bit that moves the data.
    pub perm: u8,
}

/// One hop of a path.
#[derive(Debug, Clone)]
pub struct Hop {
    /// Information leaves this type...
    pub from: u32,
    /// ...and arrives here.
    pub to: u32,
    /// Through this access vector.
    pub key: (u32, u32, Class),
    /// Through this permission.
    pub perm: u8,
    /// The rule that grants it (index into [`Model::rules`]).
    pub rule: usize,
}

/// The flow graph.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Outgoing edges per type.
    pub out: Vec<Vec<Edge>>,
}

impl Graph {
    /// Builds the graph from the allowed permissions of `m`.
    #[must_use]
    pub fn new(m: &Model) -> Graph {
        let mut out: Vec<Vec<Edge>> = vec![Vec::new(); m.types.len()];
        for (&(s, t, c), e) in &m.av {
            if s == t || e.allow == 0 {
                continue;
            }
            let fwd = e.allow & c.forward_flow().0;
            let bwd = e.allow & c.backward_flow().0;
            if fwd != 0 {
                out[s as usize].push(Edge { to: t, key: (s, t, c), perm: fwd.trailing_zeros() as u8 });
            }
            if bwd != 0 {
                out[t as usize].push(Edge { to: s, key: (s, t, c), perm: bwd.trailing_zeros() as u8 });
            }
        }
        Graph { out }
    }

    /// Number of edges.
    #[must_use]
    pub fn edge_count(&self) -> usize {
        self.out.iter().map(Vec::len).sum()
    }

    /// A shortest path (in hops) from some `a` in `from` to some `b` in `to` with `a != b`,
    /// never passing through `excluding` (excluded types may still be endpoints).
    ///
    /// One breadth-first search serves all sources: every node keeps its two nearest distinct
    /// origins, which is enough to find, for a target that is itself a source, the nearest
    /// *other* source (so `noflow tenants -> tenants` means "no tenant reaches another").
    #[must_use]
    pub fn shortest_path(&self, m: &Model, from: &[u32], to: &[u32], excluding: &[u32]) -> Option<Vec<Hop>> {
        let n = self.out.len();
        let (goal, blocked) = (mask(n, to), mask(n, excluding));
        // Per node up to two labels: (origin, predecessor label).
        let mut labels: Vec<[Option<Label>; 2]> = vec![[None, None]; n];
        let mut q = VecDeque::new();
        for &f in from {
            let slot = &mut labels[f as usize];
            if slot[0].is_none() {
                slot[0] = Some(Label { origin: f, prev: None });
                q.push_back((f, 0u8));
            }
        }
        while let Some((u, k)) = q.pop_front() {
            let origin = labels[u as usize][k as usize].map_or(u, |l| l.origin);
            for e in &self.out[u as usize] {
                let v = e.to as usize;
                let ls = &mut labels[v];
                if ls.iter().flatten().any(|l| l.origin == origin) {
                    continue;
                }
                let Some(free) = ls.iter().position(Option::is_none) else { continue };
                ls[free] = Some(Label { origin, prev: Some((u, k, *e)) });
                if goal[v] && origin != e.to {
                    return Some(self.path(m, &labels, e.to, free as u8));
                }
                if !blocked[v] {
                    q.push_back((e.to, free as u8));
                }
            }
        }
        None
    }

    fn path(&self, m: &Model, labels: &[[Option<Label>; 2]], end: u32, slot: u8) -> Vec<Hop> {
        let mut hops = Vec::new();
        let (mut cur, mut k) = (end, slot);
        while let Some(Label { prev: Some((u, uk, e)), .. }) = labels[cur as usize][k as usize] {
            let entry = &m.av[&e.key];
            let rule = entry
                .why
                .iter()
                .find(|(r, bits)| bits & (1 << e.perm) != 0 && m.rules[*r].kind == crate::model::RuleKindPub::Allow)
                .map_or(0, |w| w.0);
            hops.push(Hop { from: u, to: cur, key: e.key, perm: e.perm, rule });
            cur = u;
            k = uk;
        }
        hops.reverse();
        hops
    }
}

/// A BFS label: which source reached the node, and from which (node, label) it came.
#[derive(Debug, Clone, Copy)]
struct Label {
    origin: u32,
    prev: Option<(u32, u8, Edge)>,
}

/// All-pairs reachability: strongly connected components, then one bit row per component
/// computed in reverse topological order.
#[derive(Debug, Clone)]
pub struct Reach {
    comp: Vec<u32>,
    rows: Vec<Vec<u64>>,
    self_loop: Vec<bool>,
}

impl Reach {
    /// Computes reachability for every pair of types.
    #[must_use]
    pub fn new(g: &Graph) -> Reach {
        let n = g.out.len();
        let (comp, ncomp) = tarjan(g);
        // Tarjan numbers components in reverse topological order: successors first.
        let words = ncomp.div_ceil(64);
        let mut rows = vec![vec![0u64; words]; ncomp];
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); ncomp];
        for v in 0..n {
            members[comp[v] as usize].push(v as u32);
        }
        let mut self_loop = vec![false; ncomp];
        for c in 0..ncomp {
            let mut row = vec![0u64; words];
            for &v in &members[c] {
                for e in &g.out[v as usize] {
                    let d = comp[e.to as usize] as usize;
                    if d == c {
                        self_loop[c] = true;
                        continue;
                    }
                    row[d / 64] |= 1 << (d % 64);
                    for (w, x) in row.iter_mut().zip(&rows[d]) {
                        *w |= *x;
                    }
                }
            }
            if members[c].len() > 1 {
                self_loop[c] = true;
            }
            rows[c] = row;
        }
        Reach { comp, rows, self_loop }
    }

    /// Whether information can flow from `a` to `b` (through at least one hop).
    #[must_use]
    pub fn reaches(&self, a: u32, b: u32) -> bool {
        let (ca, cb) = (self.comp[a as usize] as usize, self.comp[b as usize] as usize);
        if ca == cb {
            return a != b || self.self_loop[ca];
        }
        self.rows[ca][cb / 64] & (1 << (cb % 64)) != 0
    }

    /// Number of ordered pairs (a, b), a != b, with a flow from a to b.
    #[must_use]
    pub fn pair_count(&self) -> u64 {
        let mut size = vec![0u64; self.rows.len()];
        for &c in &self.comp {
            size[c as usize] += 1;
        }
        let mut total = 0u64;
        for (c, row) in self.rows.iter().enumerate() {
            let mut reach = 0u64;
            for (w, bits) in row.iter().enumerate() {
                let mut b = *bits;
                while b != 0 {
                    let d = w * 64 + b.trailing_zeros() as usize;
                    reach += size[d];
                    b &= b - 1;
                }
            }
            total += size[c] * reach;
            if self.self_loop[c] {
                total += size[c] * (size[c] - 1);
            }
        }
        total
    }
}

/// Iterative Tarjan SCC; returns the component of every node and the component count.
fn tarjan(g: &Graph) -> (Vec<u32>, usize) {
    let n = g.out.len();
    const UNSEEN: u32 = u32::MAX;
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut comp = vec![UNSEEN; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut next = 0u32;
    let mut ncomp = 0u32;
    let mut call: Vec<(u32, usize)> = Vec::new();
    for root in 0..n as u32 {
        if index[root as usize] != UNSEEN {
            continue;
        }
        call.push((root, 0));
        while let Some(&mut (v, ref mut ei)) = call.last_mut() {
            let vu = v as usize;
            if *ei == 0 && index[vu] == UNSEEN {
                index[vu] = next;
                low[vu] = next;
                next += 1;
                stack.push(v);
                on_stack[vu] = true;
            }
            if let Some(e) = g.out[vu].get(*ei) {
                *ei += 1;
                let w = e.to as usize;
                if index[w] == UNSEEN {
                    call.push((e.to, 0));
                } else if on_stack[w] {
                    low[vu] = low[vu].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(p, _)) = call.last() {
                low[p as usize] = low[p as usize].min(low[vu]);
            }
            if low[vu] == index[vu] {
                while let Some(w) = stack.pop() {
                    on_stack[w as usize] = false;
                    comp[w as usize] = ncomp;
                    if w == v {
                        break;
                    }
                }
                ncomp += 1;
            }
        }
    }
    (comp, ncomp as usize)
}

/// Membership of `ids` among `n` types.
pub(crate) fn mask(n: usize, ids: &[u32]) -> Vec<bool> {
    let mut m = vec![false; n];
    for &t in ids {
        m[t as usize] = true;
    }
    m
}

/// A shortest path that carries information from a domain of some type in `from` to a domain
/// of some type in `to` *in another category* (for `assert noflow A -> B across categories`).
///
/// Categories are run-time values, so the search tracks one bit per type: whether the domain
/// reached is known to share the origin's category. A permission granted only within one
/// category (`separate`) keeps that bit; any other permission may lead to a domain of any
/// category and clears it. Unlike the type graph, a rule from a type to itself is an edge here:
/// two domains of one type are two principals once categories tell them apart. Reaching a
/// target type with the bit cleared is a flow across categories (conservatively: the category
/// reached is unknown, so it may differ).
#[must_use]
pub fn cross_category_path(m: &Model, from: &[u32], to: &[u32], excluding: &[u32]) -> Option<Vec<Hop>> {
    let n = m.types.len();
    // Edges: (to, key, perm, same_category_only).
    let mut out: Vec<Vec<(u32, (u32, u32, Class), u8, bool)>> = vec![Vec::new(); n];
    for (&(s, t, c), e) in &m.av {
        for (bits, same) in [(e.allow & !e.same, false), (e.allow & e.same, true)] {
            let (fwd, bwd) = (bits & c.forward_flow().0, bits & c.backward_flow().0);
            if fwd != 0 {
                out[s as usize].push((t, (s, t, c), fwd.trailing_zeros() as u8, same));
            }
            if bwd != 0 {
                out[t as usize].push((s, (s, t, c), bwd.trailing_zeros() as u8, same));
            }
        }
    }
    let (goal, blocked) = (mask(n, to), mask(n, excluding));
    // State = type * 2 + (1 if the domain shares the origin's category).
    type Prev = Option<(usize, (u32, u32, Class), u8)>;
    let mut seen: Vec<Option<Prev>> = vec![None; 2 * n];
    let mut q = VecDeque::new();
    for &f in from {
        let st = f as usize * 2 + 1;
        if seen[st].is_none() {
            seen[st] = Some(None);
            q.push_back(st);
        }
    }
    while let Some(st) = q.pop_front() {
        let (u, bound) = (st / 2, st % 2);
        if blocked[u] && seen[st] != Some(None) {
            continue;
        }
        for &(v, key, perm, same) in &out[u] {
            let next = v as usize * 2 + if same { bound } else { 0 };
            if seen[next].is_some() {
                continue;
            }
            seen[next] = Some(Some((st, key, perm)));
            if next % 2 == 0 && goal[v as usize] {
                let mut hops = Vec::new();
                let mut cur = next;
                while let Some(Some((p, key, perm))) = seen[cur] {
                    let rule = m.av[&key]
                        .why
                        .iter()
                        .find(|(r, bits)| bits & (1 << perm) != 0 && m.rules[*r].kind == crate::model::RuleKindPub::Allow)
                        .map_or(0, |w| w.0);
                    hops.push(Hop { from: (p / 2) as u32, to: (cur / 2) as u32, key, perm, rule });
                    cur = p;
                }
                hops.reverse();
                return Some(hops);
            }
            q.push_back(next);
        }
    }
    None
}
