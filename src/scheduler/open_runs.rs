//! The runs not settled yet, with what changed since the last commit tracked per item.
//!
//! A wide job's run holds one item per shard; a status update changes one task of one item. A
//! run stored as one row would be rewritten whole for each update (a 1,000-shard run: about
//! 600 KB per commit), so an open run is stored as a header row (`runs`) and one row per item
//! (`run_items`), and a change marks only what it touched. Like [`super::tracked::Tracked`],
//! every way to change a run goes through a method here, so nothing changed can be missed by
//! the next commit.

use std::collections::{BTreeMap, BTreeSet};

use super::runs::{ItemRun, Outcome, Run, RunId};
use super::state::Millis;

/// A header (`None`) or one item of a run.
pub type Part = (RunId, Option<u32>);

/// The store key of an item row: `{run:020}@{item:010}`.
pub fn item_key(id: RunId, item: u32) -> String {
    format!("{id:020}@{item:010}")
}

/// The run and item of an item row's key.
pub fn parse_item_key(key: &str) -> Option<(RunId, u32)> {
    let (id, item) = key.split_once('@')?;
    Some((id.parse().ok()?, item.parse().ok()?))
}

#[derive(Debug, Clone, Default)]
pub struct OpenRuns {
    runs: BTreeMap<RunId, Run>,
    changed: BTreeSet<Part>,
}

/// Equal when the runs are: what changed since the last commit is bookkeeping.
impl PartialEq for OpenRuns {
    fn eq(&self, other: &Self) -> bool {
        self.runs == other.runs
    }
}

impl OpenRuns {
    /// Runs as loaded: nothing changed yet.
    pub fn loaded(runs: impl IntoIterator<Item = Run>) -> OpenRuns {
        OpenRuns {
            runs: runs.into_iter().map(|r| (r.id, r)).collect(),
            changed: BTreeSet::new(),
        }
    }

    pub fn get(&self, id: RunId) -> Option<&Run> {
        self.runs.get(&id)
    }

    pub fn contains(&self, id: RunId) -> bool {
        self.runs.contains_key(&id)
    }

    /// Every open run, oldest first.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Run> {
        self.runs.values()
    }

    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Headers and items changed since the last commit; with [`OpenRuns::get`] a commit
    /// writes each (or deletes it when its run or item is gone).
    pub fn changed(&self) -> &BTreeSet<Part> {
        &self.changed
    }

    fn mark_all(&mut self, run: &Run) {
        self.changed.insert((run.id, None));
        for item in &run.items {
            self.changed.insert((run.id, Some(item.item)));
        }
    }

    pub fn insert(&mut self, run: Run) {
        self.mark_all(&run);
        if let Some(old) = self.runs.insert(run.id, run) {
            self.mark_all(&old);
        }
    }

    pub fn remove(&mut self, id: RunId) -> Option<Run> {
        let run = self.runs.remove(&id)?;
        self.mark_all(&run);
        Some(run)
    }

    /// One item of a run to change (added when the run had none of it yet).
    pub fn item_mut(&mut self, id: RunId, item: u32) -> Option<&mut ItemRun> {
        let run = self.runs.get_mut(&id)?;
        self.changed.insert((id, Some(item)));
        Some(run.item_mut(item))
    }

    /// The run launched at `now`.
    pub fn set_launched(&mut self, id: RunId, now: Millis) {
        if let Some(run) = self.runs.get_mut(&id) {
            run.launched_at = Some(now);
            self.changed.insert((id, None));
        }
    }

    /// The run ends without having launched.
    pub fn cancel(&mut self, id: RunId, now: Millis) {
        if let Some(run) = self.runs.get_mut(&id) {
            run.cancel(now);
            self.changed.insert((id, None));
        }
    }

    /// Closes `closed` items as failed (parked), then settles the run if it can be
    /// ([`Run::try_settle`]); returns whether it settled.
    pub fn settle(
        &mut self,
        id: RunId,
        now: Millis,
        closed: &[u32],
        waiting: impl Fn(u32, Option<&str>) -> bool,
    ) -> bool {
        let Some(run) = self.runs.get_mut(&id) else {
            return false;
        };
        for item in closed {
            run.item_mut(*item).closed = Some(Outcome::Failed);
            self.changed.insert((id, Some(*item)));
        }
        let settled = run.try_settle(now, waiting);
        if settled {
            self.changed.insert((id, None));
        }
        settled
    }

    /// Everything counts as changed: the next commit writes every run (to a new store).
    pub fn all_changed(&mut self) {
        let all: Vec<Part> = self
            .runs
            .values()
            .flat_map(|run| {
                std::iter::once((run.id, None))
                    .chain(run.items.iter().map(move |i| (run.id, Some(i.item))))
            })
            .collect();
        self.changed.extend(all);
    }

    pub fn committed(&mut self) {
        self.changed.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::Trigger;

    #[test]
    fn a_change_marks_only_what_it_touched() {
        let mut runs = OpenRuns::default();
        let mut run = Run::new(7, "j", "a", Trigger::Cron, 0);
        run.item_mut(0);
        run.item_mut(1);
        runs.insert(run);
        assert_eq!(
            runs.changed().iter().copied().collect::<Vec<_>>(),
            [(7, None), (7, Some(0)), (7, Some(1))]
        );
        runs.committed();
        runs.item_mut(7, 1).unwrap().closed = Some(Outcome::Killed);
        assert_eq!(
            runs.changed().iter().copied().collect::<Vec<_>>(),
            [(7, Some(1))]
        );
        runs.committed();
        runs.set_launched(7, 5);
        assert_eq!(
            runs.changed().iter().copied().collect::<Vec<_>>(),
            [(7, None)]
        );
        runs.committed();
        runs.remove(7);
        assert_eq!(
            runs.changed().len(),
            3,
            "the header and both items are deleted"
        );
        assert_eq!(item_key(7, 2), "00000000000000000007@0000000002");
        assert_eq!(parse_item_key(&item_key(7, 2)), Some((7, 2)));
    }
}
