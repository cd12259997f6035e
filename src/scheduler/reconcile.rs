//! Reconciliation bookkeeping (Mesos `docs/reconciliation.md`): explicit RECONCILE of every task
//! the store holds, re-sent with truncated exponential backoff for the tasks that got no answer
//! since the request (a master whose agents are still re-registering sends nothing for them),
//! then one implicit RECONCILE.
//!
//! After every (re)subscription a round *gates* launching: nothing launches until every stored
//! task has been answered, so a task that is still running somewhere is never started twice.
//! Periodic rounds do not gate.

use std::collections::BTreeMap;

use super::state::Millis;

/// What the caller should send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Nothing,
    /// Explicit RECONCILE of these `(task id, agent id)`.
    Explicit(Vec<(String, String)>),
    /// Every task answered: send the implicit RECONCILE; a gating round is over.
    Implicit,
}

#[derive(Debug, Clone)]
struct Round {
    pending: BTreeMap<String, String>,
    gating: bool,
    next_retry: Millis,
    delay_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Reconciler {
    initial_ms: u64,
    max_ms: u64,
    round: Option<Round>,
}

impl Reconciler {
    pub fn new(initial_ms: u64, max_ms: u64) -> Reconciler {
        Reconciler {
            initial_ms,
            max_ms: max_ms.max(initial_ms),
            round: None,
        }
    }

    /// Starts a round over `tasks` (`(task id, agent id)`), replacing any round in progress.
    pub fn start(&mut self, tasks: Vec<(String, String)>, gating: bool, now: Millis) -> Step {
        if tasks.is_empty() {
            self.round = None;
            return Step::Implicit;
        }
        let step = Step::Explicit(tasks.clone());
        self.round = Some(Round {
            pending: tasks.into_iter().collect(),
            gating,
            next_retry: now.saturating_add(self.initial_ms as i64),
            delay_ms: self.initial_ms,
        });
        step
    }

    /// Notes an answer (any update) about `task_id`.
    pub fn answered(&mut self, task_id: &str) -> Step {
        let Some(round) = &mut self.round else {
            return Step::Nothing;
        };
        round.pending.remove(task_id);
        if round.pending.is_empty() {
            self.round = None;
            return Step::Implicit;
        }
        Step::Nothing
    }

    /// Re-sends the unanswered part when its retry time has come.
    pub fn tick(&mut self, now: Millis) -> Step {
        let Some(round) = &mut self.round else {
            return Step::Nothing;
        };
        if now < round.next_retry {
            return Step::Nothing;
        }
        round.delay_ms = (round.delay_ms.saturating_mul(2)).min(self.max_ms);
        round.next_retry = now.saturating_add(round.delay_ms as i64);
        Step::Explicit(
            round
                .pending
                .iter()
                .map(|(t, a)| (t.clone(), a.clone()))
                .collect(),
        )
    }

    /// Whether launching must wait.
    pub fn gating(&self) -> bool {
        self.round.as_ref().is_some_and(|r| r.gating)
    }

    /// Tasks still waiting for an answer.
    pub fn pending(&self) -> usize {
        self.round.as_ref().map_or(0, |r| r.pending.len())
    }

    pub fn cancel(&mut self) {
        self.round = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(ids: &[&str]) -> Vec<(String, String)> {
        ids.iter()
            .map(|t| (t.to_string(), "S0".to_string()))
            .collect()
    }

    #[test]
    fn retries_the_unanswered_with_backoff_then_goes_implicit() {
        let mut r = Reconciler::new(1000, 4000);
        assert_eq!(
            r.start(tasks(&["a", "b"]), true, 0),
            Step::Explicit(tasks(&["a", "b"]))
        );
        assert!(r.gating());
        assert_eq!(r.answered("a"), Step::Nothing);
        assert_eq!(r.tick(999), Step::Nothing);
        assert_eq!(r.tick(1000), Step::Explicit(tasks(&["b"])));
        assert_eq!(r.tick(2999), Step::Nothing, "next retry after 2 s");
        assert_eq!(r.tick(3000), Step::Explicit(tasks(&["b"])));
        assert_eq!(r.tick(6999), Step::Nothing, "then 4 s (the cap)");
        assert_eq!(r.tick(7000), Step::Explicit(tasks(&["b"])));
        assert_eq!(r.answered("b"), Step::Implicit);
        assert!(!r.gating());
        assert_eq!(r.tick(100_000), Step::Nothing);
    }

    #[test]
    fn an_empty_store_goes_straight_to_implicit() {
        let mut r = Reconciler::new(1000, 4000);
        assert_eq!(r.start(vec![], true, 0), Step::Implicit);
        assert!(!r.gating());
    }

    #[test]
    fn periodic_rounds_do_not_gate() {
        let mut r = Reconciler::new(1000, 4000);
        r.start(tasks(&["a"]), false, 0);
        assert!(!r.gating());
        assert_eq!(r.pending(), 1);
        assert_eq!(r.answered("a"), Step::Implicit);
    }
}
