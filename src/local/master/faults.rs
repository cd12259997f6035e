//! Faults of the master's side of scheduler subscriptions, for fault suites: a connection that
//! goes silent (half-open: heartbeats and events written into it never arrive) and status
//! updates delivered again, out of order. Neither changes what the master records; both are
//! what a scheduler meets on a real network.

use shardex_mesos::proto::v1;

use super::{Master, update_event};

impl Master {
    /// Every current scheduler connection goes half-open: from now on nothing written to it
    /// arrives (no heartbeat, no event) while the master believes it delivered. The scheduler
    /// must notice the missing heartbeats and subscribe again; the new connection is sound.
    /// Returns how many connections went silent.
    pub fn silence_schedulers(&mut self) -> usize {
        let mut silenced = 0;
        for framework in self.frameworks.values_mut() {
            if let Some(connection) = framework.connection.as_mut().filter(|c| !c.silent) {
                connection.silent = true;
                silenced += 1;
            }
        }
        tracing::warn!(silenced, "fault: scheduler connections silenced");
        silenced
    }

    /// Sends again, newest first, the last `count` status updates the master forwarded (to the
    /// frameworks they were for, if connected; among the last `update_log_limit`): each
    /// arrives a second time, and after updates that followed it. Returns the updates sent.
    pub fn redeliver_updates(&mut self, count: usize) -> Vec<v1::TaskStatus> {
        let mut sent = Vec::new();
        for (framework_id, status) in self.forwarded.iter().rev().take(count) {
            if let Some(framework) = self.frameworks.get(framework_id)
                && framework.connection.as_ref().is_some_and(|c| !c.silent)
            {
                framework.send(&update_event(status.clone()));
                sent.push(status.clone());
            }
        }
        tracing::warn!(
            redelivered = sent.len(),
            "fault: status updates delivered again"
        );
        sent
    }
}
