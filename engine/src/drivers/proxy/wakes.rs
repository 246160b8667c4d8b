//! Which parts of a connection's task were woken. A TCP connection is one
//! task running three futures side by side (two pumps and a watchdog);
//! polled together, every wake-up of one also polled the other two, each
//! visiting its socket's waiter slot under a lock only to learn it had
//! nothing to do: three of the six readiness checks of a round trip
//! (docs/PERFORMANCE.md, issue 19, fifth look). Here each part is polled
//! with a waker of its own that marks it woken before waking the task, and
//! the task polls only the parts marked.

use atomic_waker::AtomicWaker;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};

/// A connection task's waker and its parts' marks.
#[derive(Debug)]
pub(super) struct Wakes {
    task: AtomicWaker,
    /// A bit per part woken since the task last looked.
    woken: AtomicUsize,
}

impl Default for Wakes {
    fn default() -> Self {
        Wakes {
            task: AtomicWaker::new(),
            // The first poll polls every part.
            woken: AtomicUsize::new(usize::MAX),
        }
    }
}

impl Wakes {
    /// Wake the task from `waker` (each of its polls registers).
    pub(super) fn register(&self, waker: &Waker) {
        self.task.register(waker);
    }

    /// Wake the task and every part (the faults changed).
    pub(super) fn wake_all(&self) {
        self.woken.store(usize::MAX, Ordering::Release);
        self.task.wake();
    }

    /// The parts woken since the last call, as bits (`1 << part`).
    pub(super) fn take(&self) -> usize {
        self.woken.swap(0, Ordering::AcqRel)
    }

    /// The waker of part `part` (< usize::BITS).
    pub(super) fn part(self: &Arc<Self>, part: u32) -> Waker {
        Waker::from(Arc::new(Part {
            wakes: self.clone(),
            bit: 1 << part,
        }))
    }
}

struct Part {
    wakes: Arc<Wakes>,
    bit: usize,
}

impl Wake for Part {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.woken.fetch_or(self.bit, Ordering::AcqRel);
        self.wakes.task.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_part_marks_itself_and_wakes_the_task() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let wakes = Arc::new(Wakes::default());
        let (a, b) = (wakes.part(0), wakes.part(2));
        assert_eq!(wakes.take(), usize::MAX, "the first look sees every part");
        assert_eq!(wakes.take(), 0);
        wakes.register(&task);
        b.wake_by_ref();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        // The task is woken once until it registers again; marks add up
        // (here `a` is woken by value, as the IO driver wakes).
        a.wake();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(wakes.take(), 0b101);
        wakes.register(&task);
        wakes.wake_all();
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
        assert_eq!(wakes.take(), usize::MAX);
    }
}
