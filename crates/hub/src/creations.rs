//! Snapshot creation as a job: `POST /api/v1/snapshots` claims the id and
//! writes the `creating` manifest ([`trawl_rawstore::snapshot::begin_snapshot`]),
//! then copies the packets on a blocking thread while this table holds how
//! far it got, which `GET /api/v1/snapshots/{id}` adds to the manifest as
//! `progress`. Used by the node handlers of [`crate::api`]; a cluster hub
//! sums its workers' `progress` ([`crate::cluster`]).
//!
//! The table lives in memory: after a restart a finished snapshot is on
//! disk as `ready` or `failed`, and its progress is no longer known.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use trawl_rawstore::snapshot::CreateProgress;

/// One creation: where it is, and whether it still runs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Creation {
    pub(crate) progress: CreateProgress,
    pub(crate) running: bool,
}

/// The snapshot creations of this process, by snapshot id. Finished ones
/// stay (a few integers each) so that their final progress can be shown,
/// until the snapshot is deleted.
#[derive(Debug, Default)]
pub struct Creations {
    by_id: Mutex<HashMap<String, Arc<Mutex<Creation>>>>,
}

impl Creations {
    /// Registers a running creation of `id`; the returned handle is updated
    /// by the copying thread.
    pub(crate) fn start(&self, id: &str) -> Arc<Mutex<Creation>> {
        let c = Arc::new(Mutex::new(Creation {
            progress: CreateProgress::default(),
            running: true,
        }));
        if let Ok(mut m) = self.by_id.lock() {
            m.insert(id.to_owned(), Arc::clone(&c));
        }
        c
    }

    /// The creation of `id`, if this process ran it.
    pub(crate) fn get(&self, id: &str) -> Option<Creation> {
        let c = self.by_id.lock().ok()?.get(id).cloned()?;
        let g = c.lock().map(|g| *g).unwrap_or_else(|p| *p.into_inner());
        Some(g)
    }

    /// Forgets the creation of a deleted snapshot.
    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut m) = self.by_id.lock() {
            m.remove(id);
        }
    }
}

/// Sets a creation's fields, poisoned or not (a panicking copier must not
/// hide the progress of the others).
pub(crate) fn update(c: &Arc<Mutex<Creation>>, f: impl FnOnce(&mut Creation)) {
    match c.lock() {
        Ok(mut g) => f(&mut g),
        Err(p) => f(&mut p.into_inner()),
    }
}

/// The `progress` object of the API: the counters and `fraction` (bytes
/// copied of those the window covers, 0 to 1; 1 when there is nothing to
/// copy and the creation is over).
pub(crate) fn progress_json(p: &CreateProgress, finished: bool) -> Value {
    let fraction = if p.bytes_total == 0 {
        if finished { 1.0 } else { 0.0 }
    } else {
        (p.bytes_done as f64 / p.bytes_total as f64).min(1.0)
    };
    json!({
        "segments_done": p.segments_done,
        "segments_total": p.segments_total,
        "bytes_done": p.bytes_done,
        "bytes_total": p.bytes_total,
        "fraction": fraction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_a_fraction_of_bytes_and_whole_when_empty_and_over() {
        let p = CreateProgress {
            segments_done: 1,
            segments_total: 4,
            bytes_done: 250,
            bytes_total: 1000,
        };
        assert_eq!(progress_json(&p, false)["fraction"], 0.25);
        let empty = CreateProgress::default();
        assert_eq!(progress_json(&empty, false)["fraction"], 0.0);
        assert_eq!(progress_json(&empty, true)["fraction"], 1.0);
        let t = Creations::default();
        let h = t.start("s1");
        update(&h, |c| {
            c.progress = p;
            c.running = false;
        });
        let got = t.get("s1").unwrap();
        assert_eq!((got.progress, got.running), (p, false));
        t.forget("s1");
        assert!(t.get("s1").is_none());
    }
}
