//! The scheduler's choices: strict priorities, round-robin among equals, timed blocking.
//!
//! Time is counted in timer ticks. The highest-priority runnable domain runs; among equal
//! priorities the one that was picked longest ago goes first (round-robin). A running domain is
//! preempted at a tick when a runnable domain of higher priority exists, or when its quantum is
//! used up and a runnable domain of equal priority waits.

use heapless::Vec;

use crate::manifest::MAX_DOMAINS;

/// Index of a domain in the hypervisor's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DomainId(pub u32);

/// Ticks a domain may run before an equal-priority peer gets the CPU.
pub const QUANTUM_TICKS: u64 = 2;

/// A domain's scheduling state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Being constructed; not yet eligible.
    Building,
    Runnable,
    /// Waiting for an event or until the tick `until` (`None` = no timeout).
    Blocked { until: Option<u64> },
    /// Stopped by management (not eligible until resumed).
    Paused,
    /// Ended; never runs again.
    Dead,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    priority: u8,
    state: State,
    /// Pick sequence number of the last time this domain was chosen (0 = never).
    last_pick: u64,
    /// While `Paused`: the state to go back to on [`Scheduler::resume`].
    paused_from: Option<State>,
}

/// The run queue of all domains.
#[derive(Debug, Default)]
pub struct Scheduler {
    entries: Vec<Entry, MAX_DOMAINS>,
    picks: u64,
}

impl Scheduler {
    pub const fn new() -> Self {
        Scheduler { entries: Vec::new(), picks: 0 }
    }

    /// Adds a domain in state `Building`; `None` when the table is full.
    pub fn add(&mut self, priority: u8) -> Option<DomainId> {
        let id = DomainId(self.entries.len() as u32);
        self.entries.push(Entry { priority, state: State::Building, last_pick: 0, paused_from: None }).ok()?;
        Some(id)
    }

    pub fn state(&self, id: DomainId) -> State {
        self.entries.get(id.0 as usize).map_or(State::Dead, |e| e.state)
    }

    pub fn priority(&self, id: DomainId) -> u8 {
        self.entries.get(id.0 as usize).map_or(0, |e| e.priority)
    }

    pub fn set_state(&mut self, id: DomainId, state: State) {
        if let Some(e) = self.entries.get_mut(id.0 as usize) {
            // Dead is final.
            if e.state != State::Dead {
                e.state = state;
            }
        }
    }

    /// Changes a domain's priority; `false` for unknown ids.
    pub fn set_priority(&mut self, id: DomainId, priority: u8) -> bool {
        self.entries.get_mut(id.0 as usize).map(|e| e.priority = priority).is_some()
    }

    /// Stops scheduling a runnable or blocked domain until [`Scheduler::resume`]; its blocked
    /// state and timeout are kept (a timeout that passes meanwhile wakes it once it resumes).
    /// `false` (and no change) in any other state.
    pub fn pause(&mut self, id: DomainId) -> bool {
        match self.entries.get_mut(id.0 as usize) {
            Some(e) if matches!(e.state, State::Runnable | State::Blocked { .. }) => {
                e.paused_from = Some(e.state);
                e.state = State::Paused;
                true
            }
            _ => false,
        }
    }

    /// Puts a paused domain back in the state it was paused in; `false` (and no change) if it
    /// is not paused.
    pub fn resume(&mut self, id: DomainId) -> bool {
        match self.entries.get_mut(id.0 as usize) {
            Some(e) if e.state == State::Paused => {
                e.state = e.paused_from.take().unwrap_or(State::Runnable);
                true
            }
            _ => false,
        }
    }

    fn runnable(&self) -> impl Iterator<Item = (DomainId, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.state == State::Runnable)
            .map(|(i, e)| (DomainId(i as u32), e))
    }

    /// Chooses the domain to run next and records the choice.
    pub fn pick(&mut self) -> Option<DomainId> {
        // Highest priority first; then the oldest pick (round-robin); then the lowest id.
        let (id, _) = self.runnable().max_by(|(ia, a), (ib, b)| {
            a.priority.cmp(&b.priority).then(b.last_pick.cmp(&a.last_pick)).then(ib.cmp(ia))
        })?;
        self.picks += 1;
        self.entries[id.0 as usize].last_pick = self.picks;
        Some(id)
    }

    /// At a tick: should `current`, which has run `ran_ticks` since it was picked, give way?
    pub fn should_preempt(&self, current: DomainId, ran_ticks: u64) -> bool {
        let mine = self.priority(current);
        self.runnable().any(|(id, e)| {
            id != current && (e.priority > mine || (e.priority == mine && ran_ticks >= QUANTUM_TICKS))
        })
    }

    /// Makes every domain whose timeout has passed at tick `now` runnable; returns them.
    pub fn wake_expired(&mut self, now: u64) -> Vec<DomainId, MAX_DOMAINS> {
        let mut woken = Vec::new();
        for (i, e) in self.entries.iter_mut().enumerate() {
            if let State::Blocked { until: Some(t) } = e.state
                && t <= now
            {
                e.state = State::Runnable;
                // Cannot fail: at most one entry per domain.
                let _ = woken.push(DomainId(i as u32));
            }
        }
        woken
    }

    /// The earliest tick a blocked domain waits for.
    pub fn next_deadline(&self) -> Option<u64> {
        self.entries
            .iter()
            .filter_map(|e| match e.state {
                State::Blocked { until } => until,
                _ => None,
            })
            .min()
    }

    /// Whether any domain can still run now or later (runnable or blocked).
    pub fn any_alive(&self) -> bool {
        self.entries.iter().any(|e| matches!(e.state, State::Runnable | State::Blocked { .. }))
    }
}

/// Ticks to wait for a timeout of `us` microseconds with a tick of `tick_us` (rounded up, at
/// least one tick so that a zero timeout still yields).
pub fn timeout_ticks(us: u64, tick_us: u64) -> u64 {
    us.div_ceil(tick_us.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec as StdVec;

    fn sched(prios: &[u8]) -> Scheduler {
        let mut s = Scheduler::new();
        for &p in prios {
            let id = s.add(p).unwrap();
            s.set_state(id, State::Runnable);
        }
        s
    }

    fn picks(s: &mut Scheduler, n: usize) -> StdVec<u32> {
        (0..n).map(|_| s.pick().map_or(u32::MAX, |d| d.0)).collect()
    }

    #[test]
    fn higher_priority_always_first() {
        let mut s = sched(&[1, 9, 5]);
        assert_eq!(picks(&mut s, 3), [1, 1, 1]);
        s.set_state(DomainId(1), State::Dead);
        assert_eq!(picks(&mut s, 2), [2, 2]);
    }

    #[test]
    fn equal_priorities_round_robin() {
        let mut s = sched(&[5, 5, 5, 1]);
        assert_eq!(picks(&mut s, 7), [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn blocked_and_paused_domains_are_skipped_until_woken() {
        let mut s = sched(&[5, 5]);
        s.set_state(DomainId(0), State::Blocked { until: Some(10) });
        s.set_state(DomainId(1), State::Paused);
        assert_eq!(s.pick(), None);
        assert_eq!(s.next_deadline(), Some(10));
        assert!(s.any_alive());
        assert!(s.wake_expired(9).is_empty());
        assert_eq!(s.wake_expired(10).as_slice(), &[DomainId(0)]);
        assert_eq!(s.pick(), Some(DomainId(0)));
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn pause_keeps_the_state_to_resume_and_priority_changes_take_effect() {
        let mut s = sched(&[5, 5, 5]);
        s.set_state(DomainId(2), State::Blocked { until: Some(4) });
        assert!(s.pause(DomainId(0)));
        assert!(s.pause(DomainId(2)));
        assert!(!s.pause(DomainId(0)), "already paused");
        assert_eq!(picks(&mut s, 3), [1, 1, 1]);
        assert!(s.wake_expired(9).is_empty(), "a paused domain's timeout does not wake it");
        assert!(s.resume(DomainId(2)));
        assert_eq!(s.state(DomainId(2)), State::Blocked { until: Some(4) });
        assert_eq!(s.wake_expired(9).as_slice(), &[DomainId(2)]);
        assert!(s.resume(DomainId(0)));
        assert!(!s.resume(DomainId(0)), "not paused any more");
        assert_eq!(s.state(DomainId(0)), State::Runnable);
        assert!(s.set_priority(DomainId(0), 9));
        assert_eq!(picks(&mut s, 2), [0, 0]);
        assert!(!s.set_priority(DomainId(7), 1));
        let mut b = Scheduler::new();
        let id = b.add(5).unwrap();
        assert!(!b.pause(id), "a domain still building cannot be paused");
        b.set_state(id, State::Dead);
        assert!(!b.pause(id) && !b.resume(id));
    }

    #[test]
    fn dead_is_final_and_ends_the_run() {
        let mut s = sched(&[5]);
        s.set_state(DomainId(0), State::Dead);
        s.set_state(DomainId(0), State::Runnable);
        assert_eq!(s.state(DomainId(0)), State::Dead);
        assert!(!s.any_alive());
        assert_eq!(s.state(DomainId(7)), State::Dead, "unknown ids read as dead");
    }

    #[test]
    fn preemption_decisions() {
        // (priorities, current, ran_ticks, expected)
        let cases: &[(&[u8], u32, u64, bool)] = &[
            (&[5], 0, 100, false),              // alone: keeps running
            (&[5, 5], 0, 0, false),             // peer waits, quantum not used up
            (&[5, 5], 0, QUANTUM_TICKS, true),  // quantum used up
            (&[5, 9], 0, 0, true),              // higher priority waiting: at once
            (&[9, 5], 0, 100, false),           // lower priority never preempts
        ];
        for &(prios, cur, ran, want) in cases {
            let s = sched(prios);
            assert_eq!(s.should_preempt(DomainId(cur), ran), want, "{prios:?} cur={cur} ran={ran}");
        }
    }

    #[test]
    fn spinner_and_printer_share_the_cpu() {
        // A printer that yields after each line and a spinner that never yields, equal
        // priority: the printer gets the CPU back after every quantum.
        let mut s = sched(&[5, 5]);
        let (printer, spinner) = (DomainId(0), DomainId(1));
        let mut current = s.pick().unwrap();
        let mut lines = 0;
        let mut ran = 0;
        for _tick in 0..100 {
            if current == printer {
                lines += 1;
                current = s.pick().unwrap(); // yield
                ran = 0;
                continue;
            }
            ran += 1;
            if s.should_preempt(current, ran) {
                current = s.pick().unwrap();
                ran = 0;
            }
        }
        assert!(current == spinner || current == printer);
        assert!(lines >= 100 / (QUANTUM_TICKS as usize + 1), "printer starved: {lines} lines");
    }

    #[test]
    fn table_capacity_and_timeouts() {
        let mut s = Scheduler::new();
        for _ in 0..MAX_DOMAINS {
            assert!(s.add(1).is_some());
        }
        assert_eq!(s.add(1), None);
        assert_eq!(timeout_ticks(0, 1000), 1);
        assert_eq!(timeout_ticks(1, 1000), 1);
        assert_eq!(timeout_ticks(1001, 1000), 2);
        assert_eq!(timeout_ticks(u64::MAX, 1000), u64::MAX / 1000 + 1);
        assert_eq!(timeout_ticks(5, 0), 5);
    }
}
