//! A single-producer, single-consumer message ring in one granted page: the shared-memory half
//! of a channel (the event channel is the doorbell).
//!
//! Layout of the [`SharedPage`]: word 0 = messages produced (`head`), word 1 = messages
//! consumed (`tail`), words 8.. = [`SLOTS`] slots of [`MSG_WORDS`] words. Both counters only
//! grow; message `n` lives in slot `n % SLOTS`. The producer writes the slot, then publishes
//! `head` with release ordering; the consumer reads `head` with acquire ordering, then the
//! slot, then publishes `tail`. The peer is not trusted: counters that could not have been
//! reached honestly are reported as [`Corrupt`], never followed.

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use warden_abi::ipc::SharedPage;

/// Words per message.
pub const MSG_WORDS: usize = 2;
const HEAD: usize = 0;
const TAIL: usize = 1;
const FIRST_SLOT: usize = 8;
/// Messages the ring holds.
pub const SLOTS: usize = (512 - FIRST_SLOT) / MSG_WORDS;

/// One message.
pub type Msg = [u64; MSG_WORDS];

/// The ring is full; try again after the consumer catches up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// The shared counters are inconsistent (the peer is broken or hostile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt {
    pub head: u64,
    pub tail: u64,
}

fn slot(n: u64) -> usize {
    FIRST_SLOT + (n % SLOTS as u64) as usize * MSG_WORDS
}

/// The producing side.
#[derive(Debug)]
pub struct Producer<'a> {
    page: &'a SharedPage,
    head: u64,
}

impl<'a> Producer<'a> {
    /// Starts producing into an empty ring (zeroes the counters).
    pub fn new(page: &'a SharedPage) -> Self {
        page.words[HEAD].store(0, Relaxed);
        page.words[TAIL].store(0, Relaxed);
        Producer { page, head: 0 }
    }

    /// Appends a message.
    ///
    /// # Errors
    /// [`Full`] when `SLOTS` messages are unconsumed; `Ok(Err(Corrupt))` never happens here:
    /// a tail beyond the head is treated as full, so a hostile consumer can stall, not corrupt.
    pub fn push(&mut self, msg: Msg) -> Result<(), Full> {
        let tail = self.page.words[TAIL].load(Acquire);
        if tail > self.head || self.head - tail >= SLOTS as u64 {
            return Err(Full);
        }
        let s = slot(self.head);
        for (i, w) in msg.iter().enumerate() {
            self.page.words[s + i].store(*w, Relaxed);
        }
        self.head += 1;
        self.page.words[HEAD].store(self.head, Release);
        Ok(())
    }

    /// Messages produced so far.
    #[must_use]
    pub fn produced(&self) -> u64 {
        self.head
    }

    /// Messages the consumer says it has taken (capped at what was produced).
    #[must_use]
    pub fn acknowledged(&self) -> u64 {
        self.page.words[TAIL].load(Acquire).min(self.head)
    }
}

/// The consuming side.
#[derive(Debug)]
pub struct Consumer<'a> {
    page: &'a SharedPage,
    tail: u64,
}

impl<'a> Consumer<'a> {
    /// Consumes from a ring whose producer called [`Producer::new`].
    #[must_use]
    pub fn new(page: &'a SharedPage) -> Self {
        Consumer { page, tail: page.words[TAIL].load(Acquire) }
    }

    /// Takes the oldest message, if any.
    ///
    /// # Errors
    /// [`Corrupt`] if the producer's counter is behind the consumer or more than `SLOTS` ahead.
    pub fn pop(&mut self) -> Result<Option<Msg>, Corrupt> {
        let head = self.page.words[HEAD].load(Acquire);
        if head < self.tail || head - self.tail > SLOTS as u64 {
            return Err(Corrupt { head, tail: self.tail });
        }
        if head == self.tail {
            return Ok(None);
        }
        let s = slot(self.tail);
        let mut msg = [0u64; MSG_WORDS];
        for (i, w) in msg.iter_mut().enumerate() {
            *w = self.page.words[s + i].load(Relaxed);
        }
        self.tail += 1;
        self.page.words[TAIL].store(self.tail, Release);
        Ok(Some(msg))
    }

    /// Messages consumed so far.
    #[must_use]
    pub fn consumed(&self) -> u64 {
        self.tail
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;

    #[test]
    fn messages_arrive_in_order_across_many_wraps() {
        let page: &'static SharedPage = Box::leak(Box::new(SharedPage::new()));
        let mut p = Producer::new(page);
        let mut c = Consumer::new(page);
        let mut next_in = 0u64;
        for round in 0..100u64 {
            // Fill to a varying depth (up to full), then drain partly.
            let burst = (round * 37) % (SLOTS as u64 + 5);
            for _ in 0..burst {
                let n = p.produced();
                if p.push([n, !n]).is_err() {
                    break;
                }
            }
            assert!(p.produced() - c.consumed() <= SLOTS as u64);
            for _ in 0..burst / 2 + 1 {
                if let Some(m) = c.pop().unwrap() {
                    assert_eq!(m, [next_in, !next_in]);
                    next_in += 1;
                }
            }
        }
        while let Some(m) = c.pop().unwrap() {
            assert_eq!(m, [next_in, !next_in]);
            next_in += 1;
        }
        assert_eq!(next_in, p.produced());
        assert!(next_in > 5 * SLOTS as u64, "the test wrapped the ring several times");
    }

    #[test]
    fn a_full_ring_refuses_and_a_hostile_peer_cannot_make_us_overrun() {
        let page: &'static SharedPage = Box::leak(Box::new(SharedPage::new()));
        let mut p = Producer::new(page);
        for i in 0..SLOTS as u64 {
            p.push([i, 0]).unwrap();
        }
        assert_eq!(p.push([0, 0]), Err(Full));
        // A consumer claiming to be ahead of the producer: the producer stalls safely.
        page.words[TAIL].store(u64::MAX, Release);
        assert_eq!(p.push([0, 0]), Err(Full));
        // A producer claiming more than a ring's worth: the consumer refuses to read.
        let page2: &'static SharedPage = Box::leak(Box::new(SharedPage::new()));
        let mut c = Consumer::new(page2);
        page2.words[HEAD].store(SLOTS as u64 + 1, Release);
        assert_eq!(c.pop(), Err(Corrupt { head: SLOTS as u64 + 1, tail: 0 }));
        page2.words[HEAD].store(0, Release);
        assert_eq!(c.pop(), Ok(None));
    }

    #[test]
    fn two_threads_exchange_ten_thousand_messages() {
        let page: &'static SharedPage = Box::leak(Box::new(SharedPage::new()));
        let mut p = Producer::new(page);
        let consumer = std::thread::spawn(move || {
            let mut c = Consumer::new(page);
            let mut n = 0u64;
            while n < 10_000 {
                match c.pop().unwrap() {
                    Some(m) => {
                        assert_eq!(m, [n, n.wrapping_mul(31)]);
                        n += 1;
                    }
                    None => std::thread::yield_now(),
                }
            }
        });
        let mut i = 0u64;
        while i < 10_000 {
            if p.push([i, i.wrapping_mul(31)]).is_ok() {
                i += 1;
            } else {
                std::thread::yield_now();
            }
        }
        consumer.join().unwrap();
    }
}
