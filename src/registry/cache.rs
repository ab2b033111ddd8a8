//! An in-memory cache of manifest reads, so a pull of a hot tag does not touch the
//! database.
//!
//! Coherence: every write of this process that can change what a read returns calls
//! [`ManifestCache::invalidate_tag`] or [`ManifestCache::clear_repository`] after it
//! commits; writes of other processes on a shared database arrive as notifications and
//! make the same calls (`registry::replicas`), so another process's change is served stale
//! at most until its notification arrives (milliseconds). A read that missed remembers the generation it started at and may fill
//! the cache only if no invalidation happened since; check and fill happen under the same
//! lock as invalidation. So a stale value can be inserted only before the invalidation that
//! removes it.

use crate::db::StoredManifest;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Cache key: repository name and reference (tag or digest string).
type Key = (String, String);

pub struct ManifestCache {
    inner: Mutex<Inner>,
    budget: usize,
}

struct Inner {
    generation: u64,
    entries: HashMap<Key, Arc<StoredManifest>>,
    /// Insertion order, for eviction when over budget.
    order: VecDeque<Key>,
    bytes: usize,
}

/// Proof of when a read started, needed to fill the cache afterwards.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl ManifestCache {
    /// A cache holding at most `budget` bytes of manifests.
    pub fn new(budget: usize) -> Self {
        ManifestCache {
            inner: Mutex::new(Inner {
                generation: 0,
                entries: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached manifest, or a ticket to fill the cache with what the database says.
    pub fn get(&self, repo: &str, reference: &str) -> Result<Arc<StoredManifest>, Ticket> {
        let inner = self.lock();
        match inner
            .entries
            .get(&(repo.to_string(), reference.to_string()))
        {
            Some(m) => Ok(m.clone()),
            None => Err(Ticket(inner.generation)),
        }
    }

    /// Fills the cache after a miss, unless something was invalidated since the ticket.
    pub fn fill(&self, ticket: Ticket, repo: &str, reference: &str, m: Arc<StoredManifest>) {
        let size = m.content.len() + reference.len() + repo.len();
        if size > self.budget / 8 {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != ticket.0 {
            return;
        }
        let key = (repo.to_string(), reference.to_string());
        if inner.entries.insert(key.clone(), m).is_some() {
            return;
        }
        inner.order.push_back(key);
        inner.bytes += size;
        while inner.bytes > self.budget {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(e) = inner.entries.remove(&old) {
                inner.bytes -= e.content.len() + old.0.len() + old.1.len();
            }
        }
    }

    /// After a tag was written or deleted.
    pub fn invalidate_tag(&self, repo: &str, tag: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        let key = (repo.to_string(), tag.to_string());
        if let Some(e) = inner.entries.remove(&key) {
            inner.bytes -= e.content.len() + key.0.len() + key.1.len();
            inner.order.retain(|k| k != &key);
        }
    }

    /// After a manifest was deleted: drops everything cached for the repository.
    pub fn clear_repository(&self, repo: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        let Inner {
            entries,
            order,
            bytes,
            ..
        } = &mut *inner;
        entries.retain(|(r, reference), e| {
            let keep = r != repo;
            if !keep {
                *bytes -= e.content.len() + r.len() + reference.len();
            }
            keep
        });
        order.retain(|(r, _)| r != repo);
    }

    /// When changes may have been missed (another process's, see `db::Change`): drops
    /// everything.
    pub fn clear_all(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
        inner.order.clear();
        inner.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(content: &str) -> Arc<StoredManifest> {
        Arc::new(StoredManifest {
            digest: "sha256:x".into(),
            media_type: "t".into(),
            content: content.as_bytes().to_vec(),
        })
    }

    #[test]
    fn a_fill_racing_an_invalidation_is_dropped() {
        let c = ManifestCache::new(1 << 20);
        let ticket = c.get("r", "v1").unwrap_err();
        c.invalidate_tag("r", "v1"); // a write committed while the read was in flight
        c.fill(ticket, "r", "v1", m("old"));
        assert!(c.get("r", "v1").is_err(), "stale read was not cached");
        let ticket = c.get("r", "v1").unwrap_err();
        c.fill(ticket, "r", "v1", m("new"));
        assert_eq!(c.get("r", "v1").unwrap().content, b"new");
    }

    #[test]
    fn invalidation_and_budget() {
        let c = ManifestCache::new(800);
        for i in 0..20 {
            let t = c.get("r", &format!("t{i}")).unwrap_err();
            c.fill(t, "r", &format!("t{i}"), m(&"x".repeat(90)));
        }
        assert!(c.get("r", "t0").is_err(), "oldest evicted");
        assert!(c.get("r", "t19").is_ok());
        c.clear_repository("r");
        assert!(c.get("r", "t19").is_err());
        assert_eq!(c.lock().bytes, 0);
    }
}
