//! Cron → ready queue for transient jobs; daemon jobs are queued once by the engine.
//!
//! Each enabled transient job has its next fire time. A fire adds one pending run when the job
//! has misfire on (up to `queues.ready_runs_per_job`), and makes sure one is pending when it has
//! misfire off (coalescing). Fire times are computed from "now" whenever a job is (re)scheduled,
//! so fires missed while a job was disabled, or while the scheduler was down, are never caught
//! up: re-enabling causes no burst.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};

use shardex_common::cron::Schedule;

use super::runs::Trigger;
use super::state::{Millis, State};

/// What one fire did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
    /// Pending runs after the fire.
    Queued { pending: u32 },
    /// Misfire off and a run already pending: nothing added.
    Coalesced,
    /// The per-job limit was reached: the fire is dropped.
    Full { limit: u32 },
}

/// Next fire time of each scheduled transient job.
#[derive(Debug, Default)]
pub struct Producer {
    next: BTreeMap<String, (Schedule, Millis)>,
    /// The same fire times in time order, so a tick looks only at the jobs that are due (the
    /// owner ticks ten times a second; with 100,000 jobs, scanning them all cost ~1 ms a tick).
    queue: BTreeSet<(Millis, String)>,
}

fn to_datetime(millis: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or_else(Utc::now)
}

impl Producer {
    /// (Re)computes the next fire of `job` from `now`; unschedules it when it is not an enabled
    /// transient job.
    pub fn schedule(&mut self, state: &State, job: &str, now: Millis) {
        self.unschedule(job);
        let Some(config) = state.registry().jobs.get(job) else {
            return;
        };
        if config.is_daemon() || !state.registry().job_enabled(job) {
            return;
        }
        // A manual job: only triggers run it.
        let Some(cron) = &config.cron else {
            return;
        };
        // Validated at registration; a stored expression that no longer parses (stored by an
        // older version with looser rules, such as both day fields set) is skipped.
        let schedule = match Schedule::parse(cron) {
            Ok(schedule) => schedule,
            Err(error) => {
                tracing::error!(
                    job,
                    %error,
                    "stored cron does not parse; job not scheduled until it is updated (PUT or \
                     PATCH /api/jobs/{job})"
                );
                return;
            }
        };
        if let Some(at) = schedule.next_after(to_datetime(now)) {
            let at = at.timestamp_millis();
            self.queue.insert((at, job.to_owned()));
            self.next.insert(job.to_owned(), (schedule, at));
        }
    }

    /// Reschedules every job.
    pub fn schedule_all(&mut self, state: &State, now: Millis) {
        self.next.clear();
        self.queue.clear();
        let jobs: Vec<String> = state.registry().jobs.keys().cloned().collect();
        for job in jobs {
            self.schedule(state, &job, now);
        }
    }

    pub fn unschedule(&mut self, job: &str) {
        if let Some((_, at)) = self.next.remove(job) {
            self.queue.remove(&(at, job.to_owned()));
        }
    }

    /// The next fire time of `job`.
    pub fn next_fire(&self, job: &str) -> Option<Millis> {
        self.next.get(job).map(|(_, at)| *at)
    }

    /// Jobs whose fire time has come, each once, with their next fire moved past `now`.
    pub fn due(&mut self, now: Millis) -> Vec<String> {
        let mut fired = Vec::new();
        while let Some((at, job)) = self.queue.first().cloned() {
            if at > now {
                break;
            }
            self.queue.pop_first();
            if let Some((schedule, next_at)) = self.next.get_mut(&job) {
                match schedule.next_after(to_datetime(now)) {
                    Some(next) => {
                        *next_at = next.timestamp_millis();
                        self.queue.insert((*next_at, job.clone()));
                    }
                    None => *next_at = Millis::MAX,
                }
            }
            fired.push(job);
        }
        // In job order, as fires due at one tick always were.
        fired.sort();
        fired
    }
}

/// Adds one fire of a transient job to the ready queue.
pub fn enqueue_fire(
    state: &mut State,
    job: &str,
    misfire: bool,
    limit: u32,
    now: Millis,
) -> FireOutcome {
    let pending = state.ready_count(job);
    if !misfire {
        if pending > 0 {
            return FireOutcome::Coalesced;
        }
        state.set_ready(job, 1, Trigger::Cron, now);
        return FireOutcome::Queued { pending: 1 };
    }
    if pending >= limit {
        return FireOutcome::Full { limit };
    }
    state.set_ready(job, pending + 1, Trigger::Cron, now);
    FireOutcome::Queued {
        pending: pending + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExecutionTypeConfig;
    use crate::config::tests_support::{app_record, job};

    fn state() -> State {
        let mut state = State::default();
        state
            .registry_mut()
            .apps
            .insert("app", app_record("app", 1));
        let mut j = job("j", "app");
        j.cron = Some("0/5 * * * * ?".into());
        state.registry_mut().jobs.insert("j", j);
        let mut d = job("d", "app");
        d.execution_type = ExecutionTypeConfig::Daemon;
        state.registry_mut().jobs.insert("d", d);
        state
    }

    // 2026-11-23T10:00:01Z
    const T0: Millis = 1_795_428_001_000;

    #[test]
    fn fires_on_the_cron_and_not_twice_for_one_time() {
        let s = state();
        let mut p = Producer::default();
        p.schedule_all(&s, T0);
        assert_eq!(p.next_fire("j"), Some(T0 + 4000));
        assert_eq!(p.next_fire("d"), None, "daemons fire inside the executor");
        assert!(p.due(T0 + 3999).is_empty());
        assert_eq!(p.due(T0 + 4000), vec!["j".to_string()]);
        assert!(p.due(T0 + 4000).is_empty());
        // Late by three periods: one fire, not three.
        assert_eq!(p.due(T0 + 20_000), vec!["j".to_string()]);
        assert_eq!(p.next_fire("j"), Some(T0 + 24_000));
    }

    #[test]
    fn a_tick_fires_exactly_the_due_jobs_in_job_order_whatever_their_times() {
        let mut s = state();
        // z fires at :02, a at :03, m every 5 s (:05), as j.
        for (name, cron) in [
            ("z", "2 * * * * ?"),
            ("a", "3 * * * * ?"),
            ("m", "0/5 * * * * ?"),
        ] {
            let mut j = job(name, "app");
            j.cron = Some(cron.into());
            s.registry_mut().jobs.insert(name, j);
        }
        let mut p = Producer::default();
        p.schedule_all(&s, T0);
        assert_eq!(p.due(T0 + 1000), vec!["z".to_string()]);
        assert_eq!(p.due(T0 + 4000), ["a", "j", "m"].map(String::from));
        // Rescheduling or dropping a job moves or removes its place in line.
        p.unschedule("m");
        s.registry_mut().jobs.get_mut("z").unwrap().cron = Some("0/5 * * * * ?".into());
        p.schedule(&s, "z", T0 + 4000);
        assert_eq!(p.due(T0 + 9000), ["j", "z"].map(String::from));
        assert_eq!(p.next_fire("m"), None);
        assert_eq!(p.due(T0 + 62_000), ["a", "j", "z"].map(String::from));
    }

    #[test]
    fn disabled_jobs_are_not_scheduled_and_reenabling_starts_from_now() {
        let mut s = state();
        let mut p = Producer::default();
        s.registry_mut().jobs.get_mut("j").unwrap().disabled = true;
        p.schedule(&s, "j", T0);
        assert_eq!(p.next_fire("j"), None);
        s.registry_mut().jobs.get_mut("j").unwrap().disabled = false;
        p.schedule(&s, "j", T0 + 60_000);
        assert_eq!(p.next_fire("j"), Some(T0 + 64_000));
    }

    #[test]
    fn misfire_counts_and_no_misfire_coalesces() {
        let mut s = state();
        assert_eq!(
            enqueue_fire(&mut s, "j", false, 3, 0),
            FireOutcome::Queued { pending: 1 }
        );
        assert_eq!(
            enqueue_fire(&mut s, "j", false, 3, 0),
            FireOutcome::Coalesced
        );
        assert_eq!(s.ready_count("j"), 1);
        assert_eq!(
            enqueue_fire(&mut s, "j", true, 3, 0),
            FireOutcome::Queued { pending: 2 }
        );
        assert_eq!(
            enqueue_fire(&mut s, "j", true, 3, 0),
            FireOutcome::Queued { pending: 3 }
        );
        assert_eq!(
            enqueue_fire(&mut s, "j", true, 3, 0),
            FireOutcome::Full { limit: 3 }
        );
        assert_eq!(s.ready_count("j"), 3);
    }
}
