//! The consumer-group state the listener keeps (the membership core and the offset store)
//! behind their locks, and the wake-ups of requests waiting on a group. Depends on nothing
//! of the listener, so the listener's context can hold it without depending on the handlers.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use std::time::Instant;

use kafka_protocol::ResponseError;
use strand_node::PartitionReplica;
use tokio::sync::watch;

use super::membership::Membership;
use super::offsets::OffsetStore;

/// The coordinator's state for every group this broker coordinates.
#[derive(Default)]
pub struct Groups {
    members: Mutex<Members>,
    offsets: OffsetStore,
}

/// The membership core and, per group, the channel its waiting joins and syncs watch.
#[derive(Default)]
struct Members {
    core: Membership,
    changed: HashMap<String, watch::Sender<u64>>,
}

impl Members {
    /// Wakes the waiters of `group` if it changed since they last looked; a group no longer
    /// held drops its channel, which wakes them too.
    fn publish(&mut self, group: &str) {
        let Some(changes) = self.core.group(group).map(|g| g.changes()) else {
            self.changed.remove(group);
            return;
        };
        match self.changed.get(group) {
            Some(sender) => {
                sender.send_if_modified(|seen| {
                    let moved = *seen != changes;
                    *seen = changes;
                    moved
                });
            }
            None => {
                self.changed
                    .insert(group.to_string(), watch::channel(changes).0);
            }
        }
    }
}

impl Groups {
    fn members(&self) -> MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the membership core.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Membership) -> T) -> T {
        f(&self.members().core)
    }

    /// Runs `f` on the membership core, then wakes the waiters of `group` if it changed.
    pub(crate) fn update<T>(&self, group: &str, f: impl FnOnce(&mut Membership) -> T) -> T {
        let mut members = self.members();
        let out = f(&mut members.core);
        members.publish(group);
        out
    }

    /// Like [`Groups::update`], and a receiver that sees the group's next change, taken under
    /// the same lock so no change after `f` is missed; `None` if the group is not held.
    pub(crate) fn update_and_watch<T>(
        &self,
        group: &str,
        f: impl FnOnce(&mut Membership) -> T,
    ) -> (T, Option<watch::Receiver<u64>>) {
        let mut members = self.members();
        let out = f(&mut members.core);
        members.publish(group);
        let watching = members.changed.get(group).map(|s| s.subscribe());
        (out, watching)
    }

    /// Runs `f` on every group (the sweep), then wakes the waiters of each that changed.
    pub(crate) fn update_all<T>(&self, f: impl FnOnce(&mut Membership) -> T) -> T {
        let mut members = self.members();
        let out = f(&mut members.core);
        let held: Vec<String> = members
            .core
            .groups()
            .map(|(id, _)| id.clone())
            .chain(members.changed.keys().cloned())
            .collect();
        for group in held {
            members.publish(&group);
        }
        out
    }

    /// The offset store.
    pub(crate) fn offsets(&self) -> &OffsetStore {
        &self.offsets
    }

    /// Loads `__consumer_offsets` partition `partition`, which `replica` leads in `term`,
    /// unless this term has: its offsets into the store and its groups' stored records into
    /// the membership core, replacing the groups `owned` the core held, all before any
    /// request of the term sees either. COORDINATOR_LOAD_IN_PROGRESS until the partition's
    /// entries are all committed.
    pub(crate) fn ensure_loaded(
        &self,
        replica: &PartitionReplica,
        term: i32,
        partition: u32,
        owned: impl Fn(&str) -> bool,
    ) -> Result<(), ResponseError> {
        self.offsets.ensure(replica, term, partition, |cache| {
            let mut members = self.members();
            let mut touched: Vec<String> = members
                .core
                .groups()
                .map(|(id, _)| id.clone())
                .filter(|id| owned(id))
                .collect();
            touched.extend(cache.records().keys().cloned());
            members
                .core
                .restore(&owned, cache.records(), Instant::now());
            if !cache.records().is_empty() {
                tracing::info!(
                    partition,
                    term,
                    groups = cache.records().len(),
                    "consumer groups taken over from their stored records"
                );
            }
            for group in touched {
                members.publish(&group);
            }
        })
    }
}
