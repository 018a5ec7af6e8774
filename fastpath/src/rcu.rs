//! RCU-style publication of immutable table versions.
//!
//! The writer (the control thread) builds a new version off the data cores and publishes it
//! with one atomic pointer swap. A reader (a data core) checks a generation number once per
//! burst — one relaxed load — and only when it changed takes the new version. Readers never
//! lock and never wait, and a reader holds one whole version for a burst, so it sees either the
//! old tables or the new ones, never a mix.
//!
//! Freeing is kept off the data cores: the writer keeps every version it replaced until no
//! reader holds it any more (its reference count is back to the writer's one), and frees it in
//! [`Publisher::reclaim`]. A reader dropping its old version only decrements a count.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

struct Shared<T> {
    current: ArcSwap<T>,
    generation: AtomicU64,
}

/// The writing side: one per table set.
pub struct Publisher<T> {
    shared: Arc<Shared<T>>,
    retired: Vec<Arc<T>>,
}

impl<T> core::fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Publisher")
            .field("generation", &self.generation())
            .field("retired", &self.retired.len())
            .finish()
    }
}

impl<T> Publisher<T> {
    /// Publishes `initial` as generation 1.
    pub fn new(initial: T) -> Publisher<T> {
        Publisher {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(initial),
                generation: AtomicU64::new(1),
            }),
            retired: Vec::new(),
        }
    }

    /// A new reader, positioned on the current version.
    pub fn reader(&self) -> Reader<T> {
        Reader {
            current: self.shared.current.load_full(),
            seen: self.shared.generation.load(Ordering::Acquire),
            shared: Arc::clone(&self.shared),
        }
    }

    /// The version readers get now.
    pub fn current(&self) -> Arc<T> {
        self.shared.current.load_full()
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Makes `next` the version readers see from their next refresh on; returns its generation.
    pub fn publish(&mut self, next: T) -> u64 {
        let old = self.shared.current.swap(Arc::new(next));
        self.retired.push(old);
        let g = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.reclaim();
        g
    }

    /// Frees replaced versions that no reader holds any more. Returns how many are still held.
    pub fn reclaim(&mut self) -> usize {
        self.retired.retain(|v| Arc::strong_count(v) > 1);
        self.retired.len()
    }
}

/// The reading side: one per data core.
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
    current: Arc<T>,
    seen: u64,
}

impl<T> core::fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reader").field("seen", &self.seen).finish()
    }
}

impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        Reader {
            shared: Arc::clone(&self.shared),
            current: Arc::clone(&self.current),
            seen: self.seen,
        }
    }
}

impl<T> Reader<T> {
    /// Moves to the newest version if there is one (call once per burst) and returns it.
    #[inline(always)]
    pub fn refresh(&mut self) -> &T {
        let g = self.shared.generation.load(Ordering::Acquire);
        if g != self.seen {
            self.take_new(g);
        }
        &self.current
    }

    #[cold]
    #[inline(never)]
    fn take_new(&mut self, g: u64) {
        // The generation is bumped after the swap, so the version loaded here is at least `g`.
        self.current = self.shared.current.load_full();
        self.seen = g;
    }

    /// The version this reader holds (as of its last refresh).
    #[inline(always)]
    pub fn get(&self) -> &T {
        &self.current
    }

    /// The generation this reader has seen.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_whole_versions_and_old_ones_are_freed_by_the_writer() {
        let mut p = Publisher::new(vec![1u32; 4]);
        let mut r = p.reader();
        assert_eq!(r.refresh(), &vec![1; 4]);
        p.publish(vec![2; 4]);
        // The reader still holds version 1 until it refreshes; the writer keeps it retired.
        assert_eq!(r.get(), &vec![1; 4]);
        assert_eq!(p.reclaim(), 1);
        assert_eq!(r.refresh(), &vec![2; 4]);
        assert_eq!(p.reclaim(), 0);
        assert_eq!(r.seen(), p.generation());
    }

    #[test]
    fn concurrent_readers_never_see_a_mix() {
        // Each version is a vector of one repeated value; a torn read would show two values.
        let mut p = Publisher::new(vec![0u64; 64]);
        let stop = Arc::new(core::sync::atomic::AtomicBool::new(false));
        let mut handles = Vec::new();
        for _ in 0..2 {
            let mut r = p.reader();
            let stop = Arc::clone(&stop);
            handles.push(std::thread::spawn(move || {
                let mut last = 0;
                let mut checks = 0u64;
                while checks == 0 || !stop.load(Ordering::Relaxed) {
                    let v = r.refresh();
                    let first = v[0];
                    assert!(v.iter().all(|&x| x == first), "torn version");
                    assert!(first >= last, "went back in time");
                    last = first;
                    checks += 1;
                }
                checks
            }));
        }
        for g in 1..=2000u64 {
            p.publish(vec![g; 64]);
        }
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            assert!(h.join().unwrap() > 0);
        }
        assert!(p.reclaim() <= 2);
    }
}
