//! The seam between a capture loop in this process (`trawl tap`) and the
//! API: the loop publishes its store's boundaries (which carry the kernel
//! and store drop counters that the files on disk do not) after every
//! flush, and the API asks it to flush before it cuts a snapshot, so that a
//! snapshot ending "now" holds the packets captured until now rather than
//! those of the last periodic flush.
//!
//! The capture loop is synchronous and must never wait for the API: it
//! polls [`LiveNode::flush_wanted`] once per ring poll (a load of two
//! atomics) and acknowledges with [`LiveNode::flushed`]; the API side waits
//! asynchronously with a deadline.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use trawl_rawstore::Boundaries;

/// How often a waiting request looks whether its flush was done: short
/// next to the capture loop's poll timeout (200 ms), which bounds the wait.
const FLUSH_POLL: Duration = Duration::from_millis(10);

/// The node a tap in this process captures into.
#[derive(Debug)]
pub struct LiveNode {
    node: String,
    boundaries: Mutex<Boundaries>,
    /// Flush generations: the API bumps `requested`; the capture loop sets
    /// `done` to the generation it flushed for.
    requested: AtomicU64,
    done: AtomicU64,
}

impl LiveNode {
    pub fn new(node: &str) -> LiveNode {
        LiveNode {
            node: node.to_owned(),
            boundaries: Mutex::new(Boundaries {
                node: node.to_owned(),
                ..Boundaries::default()
            }),
            requested: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Capture loop: the store's boundaries after a flush.
    pub fn publish(&self, b: Boundaries) {
        if let Ok(mut g) = self.boundaries.lock() {
            *g = b;
        }
    }

    pub fn boundaries(&self) -> Boundaries {
        self.boundaries
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Capture loop: the generation to flush for, when the API asked for a
    /// flush that has not been done yet.
    pub fn flush_wanted(&self) -> Option<u64> {
        let r = self.requested.load(Ordering::Acquire);
        (r > self.done.load(Ordering::Acquire)).then_some(r)
    }

    /// Capture loop: the store was flushed for generation `generation`.
    pub fn flushed(&self, generation: u64) {
        self.done.fetch_max(generation, Ordering::AcqRel);
    }

    /// API: asks the capture loop to flush and waits until it has, or until
    /// `timeout` (then the snapshot holds what the last periodic flush
    /// wrote, at most a second old). Returns whether the flush happened.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let generation = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let waited = tokio::time::timeout(timeout, async {
            while self.done.load(Ordering::Acquire) < generation {
                tokio::time::sleep(FLUSH_POLL).await;
            }
        })
        .await;
        waited.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flush_waits_for_the_capture_loop() {
        let live = std::sync::Arc::new(LiveNode::new("n1"));
        assert_eq!(live.flush_wanted(), None);
        // Nobody flushes: the request times out.
        assert!(!live.flush(Duration::from_millis(30)).await);
        // A capture loop on another thread acknowledges.
        let l2 = live.clone();
        let loop_thread = std::thread::spawn(move || {
            for _ in 0..2500 {
                if let Some(g) = l2.flush_wanted() {
                    l2.flushed(g);
                    if g >= 2 {
                        return true;
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            false
        });
        // The timed-out request above (generation 1) may be acknowledged
        // first; the loop goes on until it has flushed for this one.
        assert!(live.flush(Duration::from_secs(5)).await);
        assert!(loop_thread.join().unwrap());
        assert_eq!(live.flush_wanted(), None);
    }
}
