//! The allocator of the embedded master: outstanding offers, refuse filters, DECLINE, and the
//! allocation run that offers a single agent's free resources (`src/master/allocator/`).
//!
//! One framework holds at most one offer for the agent; the free remainder goes whole to the
//! first subscribed, unsuppressed framework (in id order) whose unexpired refuse filters do not
//! cover it. A filter covers an offer only if it contains all of it, so resources freed by a
//! finished task come back at the next allocation tick even inside a 5 s filter.

use std::time::{Duration, Instant};

use super::{DEFAULT_REFUSE, Filter, MAX_REFUSE_SECONDS, Master, Offer};
use crate::resources::{Resources, inject_allocation_info};
use crate::runtime::Ctx;
use crate::validation::{framework_takes_default_role, has_capability};
use shardex_mesos::proto::v1::{self, framework_info::capability::Type as Capability, scheduler};

impl Master {
    /// Removes a framework's outstanding offers; `rescind` also tells it (RESCIND events).
    pub(super) fn remove_offers_of(&mut self, framework_id: &str, rescind: bool) {
        let ids: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, offer)| offer.framework_id == framework_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.offers.remove(&id);
            if rescind && let Some(framework) = self.frameworks.get(framework_id) {
                framework.send(&scheduler::Event {
                    r#type: Some(scheduler::event::Type::Rescind as i32),
                    rescind: Some(scheduler::event::Rescind {
                        offer_id: v1::OfferId { value: id },
                    }),
                    ..Default::default()
                });
            }
        }
    }

    /// Rescinds every outstanding offer (they are all for the one agent), telling each holder.
    pub(super) fn rescind_agent_offers(&mut self) {
        for (offer_id, offer) in std::mem::take(&mut self.offers) {
            if let Some(framework) = self.frameworks.get(&offer.framework_id) {
                framework.send(&scheduler::Event {
                    r#type: Some(scheduler::event::Type::Rescind as i32),
                    rescind: Some(scheduler::event::Rescind {
                        offer_id: v1::OfferId { value: offer_id },
                    }),
                    ..Default::default()
                });
            }
        }
    }

    /// Resources of the agent held by tasks, executors and outstanding offers.
    pub(super) fn used(&self) -> Resources {
        let mut used = Resources::default();
        for framework in self.frameworks.values() {
            for task in framework.tasks.values() {
                if task.holds_resources() {
                    used = used.plus(&task.resources);
                }
            }
        }
        for executors in self.agent.executors.values() {
            for (_, resources) in executors.values() {
                used = used.plus(resources);
            }
        }
        for offer in self.offers.values() {
            used = used.plus(&offer.resources);
        }
        used
    }

    /// Offers what is free to subscribed, unsuppressed frameworks without an outstanding
    /// offer, skipping those whose refuse filter still covers it. One framework takes the
    /// whole remainder, as the hierarchical allocator does with a single agent.
    pub(super) fn allocate(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
        if !self.agent.connected {
            return;
        }
        let now = Instant::now();
        let mut available = self.agent.total.minus(&self.used());
        let ids: Vec<String> = self.frameworks.keys().cloned().collect();
        for framework_id in ids {
            if available.is_empty() {
                return;
            }
            let has_offer = self
                .offers
                .values()
                .any(|offer| offer.framework_id == framework_id);
            let Some(framework) = self.frameworks.get_mut(&framework_id) else {
                continue;
            };
            framework.filters.retain(|filter| filter.until > now);
            if framework.connection.is_none()
                || framework.suppressed
                || has_offer
                || !framework_takes_default_role(&framework.info)
                || framework
                    .filters
                    .iter()
                    .any(|filter| filter.resources.contains(&available))
            {
                continue;
            }
            let offer_id = format!("{}-O{}", self.id, self.next_offer);
            self.next_offer += 1;
            let multi_role = has_capability(&framework.info, Capability::MultiRole);
            let mut resources = available.to_offer_protos();
            if multi_role {
                inject_allocation_info(&mut resources);
            }
            let executor_ids = self
                .agent
                .executors
                .get(&framework_id)
                .map(|executors| {
                    executors
                        .keys()
                        .map(|id| v1::ExecutorId { value: id.clone() })
                        .collect()
                })
                .unwrap_or_default();
            let offer = v1::Offer {
                id: v1::OfferId {
                    value: offer_id.clone(),
                },
                framework_id: v1::FrameworkId {
                    value: framework_id.clone(),
                },
                agent_id: v1::AgentId {
                    value: self.agent.id.clone(),
                },
                hostname: self.agent.hostname.clone(),
                url: Some(v1::Url {
                    scheme: "http".to_owned(),
                    address: v1::Address {
                        hostname: Some(self.agent.hostname.clone()),
                        ip: Some(self.agent.ip.to_string()),
                        port: i32::from(self.agent.port),
                    },
                    path: Some("/slave(1)".to_owned()),
                    query: Vec::new(),
                    fragment: None,
                }),
                resources,
                executor_ids,
                allocation_info: multi_role.then(|| v1::resource::AllocationInfo {
                    role: Some("*".to_owned()),
                }),
                ..Default::default()
            };
            framework.send(&scheduler::Event {
                r#type: Some(scheduler::event::Type::Offers as i32),
                offers: Some(scheduler::event::Offers {
                    offers: vec![offer],
                }),
                ..Default::default()
            });
            self.offers.insert(
                offer_id,
                Offer {
                    framework_id: framework_id.clone(),
                    resources: available.clone(),
                },
            );
            available = Resources::default();
        }
    }

    pub(super) fn refuse_duration(filters: Option<&v1::Filters>) -> Duration {
        let seconds = filters.and_then(|f| f.refuse_seconds).unwrap_or(5.0);
        if !seconds.is_finite() || seconds < 0.0 {
            return DEFAULT_REFUSE;
        }
        Duration::from_secs_f64(seconds.min(MAX_REFUSE_SECONDS))
    }

    pub(super) fn add_filter(
        &mut self,
        framework_id: &str,
        resources: Resources,
        refuse: Duration,
    ) {
        if refuse.is_zero() || resources.is_empty() {
            return;
        }
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            framework.filters.push(Filter {
                resources,
                until: Instant::now() + refuse,
            });
        }
    }

    pub(super) fn decline(
        &mut self,
        framework_id: &str,
        offer_ids: &[v1::OfferId],
        filters: Option<v1::Filters>,
    ) {
        let refuse = Self::refuse_duration(filters.as_ref());
        for offer_id in offer_ids {
            match self.offers.get(&offer_id.value) {
                Some(offer) if offer.framework_id == framework_id => {
                    if let Some(offer) = self.offers.remove(&offer_id.value) {
                        self.add_filter(framework_id, offer.resources, refuse);
                    }
                }
                _ => {
                    tracing::warn!(offer = %offer_id.value, "ignoring DECLINE of an unknown offer")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuse_seconds_default_cap_and_negative() {
        let filters = |s: f64| v1::Filters {
            refuse_seconds: Some(s),
        };
        assert_eq!(Master::refuse_duration(None), Duration::from_secs(5));
        assert_eq!(
            Master::refuse_duration(Some(&v1::Filters::default())),
            Duration::from_secs(5)
        );
        assert_eq!(
            Master::refuse_duration(Some(&filters(0.5))),
            Duration::from_millis(500)
        );
        assert_eq!(
            Master::refuse_duration(Some(&filters(-1.0))),
            DEFAULT_REFUSE
        );
        assert_eq!(
            Master::refuse_duration(Some(&filters(1e12))),
            Duration::from_secs(31_536_000)
        );
    }
}
