//! The Mesos side of the scheduler: the SUBSCRIBE loop and the call sender.
//!
//! Connection states, all in [`run`]: disconnected → subscribing → subscribed → (stream ends,
//! errors, or goes silent) → disconnected, with exponential backoff capped near the master's
//! heartbeat (HEARTBEAT in Mesos' `docs/scheduler-http-api.md`) between attempts, reset after each SUBSCRIBED.
//!
//! - SUBSCRIBE carries the stored framework id in both `Call.framework_id` and
//!   `framework_info.id`, `checkpoint`, the failover timeout, and the `PARTITION_AWARE` and
//!   `TASK_KILLING_STATE` capabilities.
//! - A 307 names the leading master: follow it at once.
//! - Several masters (`master = [..]`): when subscribing to one fails, try the next at once;
//!   back off only after each has failed in a row ([`Masters`]).
//! - Watchdog: no event for `missed_heartbeats` × `heartbeat_interval_seconds` drops the
//!   connection and resubscribes.
//! - A stream that breaks (malformed RecordIO, an undecodable event) or a SUBSCRIBED that cannot
//!   be used (no framework id: `subscribed.rs`) drops the connection and resubscribes too.
//! - `ERROR "Framework has been removed"`: the owner forgets the id, resubscribe without one.
//!   `ERROR "Framework failed over"`: another scheduler subscribed with our id; stop for good
//!   (fencing) and report it, so the process exits non-zero.
//! - Events go to the owner in order; the owner's calls come back on a channel and are sent one
//!   after another on the call connection with this subscription's `Mesos-Stream-Id`.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use shardex_mesos::backoff::Backoff;
use shardex_mesos::proto::v1::scheduler::{Call, Event, call, event};
use shardex_mesos::proto::v1::{FrameworkId, FrameworkInfo, framework_info};
use shardex_mesos::{ApiError, Client};

use super::Msg;
use super::config::Config;
use super::crash_point::{self, Moment};
use super::ha::Gate;
use super::subscribed;

/// How a driver ended.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(
        "another scheduler subscribed with framework id {framework_id} (\"Framework failed \
         over\"); this one stops so that only one scheduler acts for the framework"
    )]
    FencedOut { framework_id: String },
    #[error("the master refused the subscription for good: {0}")]
    Refused(String),
    #[error("the scheduler's owner task is gone")]
    OwnerGone,
}

/// Everything the driver needs besides the client.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub user: String,
    pub name: String,
    pub role: Option<String>,
    pub failover_timeout: Duration,
    pub hostname: Option<String>,
    pub webui_url: Option<String>,
    /// `FrameworkInfo.principal`.
    pub principal: Option<String>,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub missed_heartbeats: u32,
    /// Closed while this scheduler may not act (an HA leader whose session is suspect): no
    /// SUBSCRIBE and no call goes out until it opens.
    pub gate: Gate,
    /// `master = "zk://…"`: the leading master's scheduler endpoint as ZooKeeper says
    /// (`detector.rs`); the driver subscribes there and resubscribes when it changes.
    pub leader: Option<watch::Receiver<Option<String>>>,
    /// `master = [..]`: the masters' endpoints, tried in turn.
    pub masters: Masters,
}

/// The masters' scheduler endpoints, tried in turn: when subscribing to one fails, the next is
/// tried at once; only when every one of them failed in a row does the driver back off.
/// (A 307 from a master that does not lead is followed as it comes, whichever master sent it.)
#[derive(Debug, Clone, Default)]
pub struct Masters {
    endpoints: Vec<String>,
    at: usize,
    failed_in_a_row: usize,
}

impl Masters {
    /// From the `master` setting: `host:port` (reached with `scheme`) or endpoint URLs,
    /// comma-separated.
    pub fn parse(master: &str, scheme: &str) -> Masters {
        Masters {
            endpoints: master
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(|m| master_endpoint(m, scheme))
                .collect(),
            at: 0,
            failed_in_a_row: 0,
        }
    }

    /// The endpoint to subscribe to first.
    pub fn first(&self) -> Option<&str> {
        self.endpoints.first().map(String::as_str)
    }

    /// Subscribing failed: the endpoint to try next, and whether every endpoint has failed
    /// since the last success (then back off before trying it).
    fn failed(&mut self) -> (Option<&str>, bool) {
        if self.endpoints.is_empty() {
            return (None, true);
        }
        self.failed_in_a_row += 1;
        self.at = (self.at + 1) % self.endpoints.len();
        let round_done = self.failed_in_a_row >= self.endpoints.len();
        if round_done {
            self.failed_in_a_row = 0;
        }
        (Some(&self.endpoints[self.at]), round_done)
    }

    /// Subscribed: the next failure starts a new round.
    fn subscribed(&mut self) {
        self.failed_in_a_row = 0;
    }
}

impl DriverConfig {
    pub fn from_config(config: &Config, webui_url: Option<String>) -> DriverConfig {
        let user = config.framework.user.clone().unwrap_or_else(current_user);
        DriverConfig {
            user,
            name: config.framework.name.clone(),
            role: config.framework.role.clone(),
            failover_timeout: config.framework.failover_timeout.0,
            hostname: config.framework.hostname.clone(),
            webui_url: config.framework.webui_url.clone().or(webui_url),
            principal: config.framework.principal.clone(),
            backoff_initial: config.mesos.resubscribe_backoff_initial.0,
            backoff_max: config.mesos.resubscribe_backoff_max.0,
            missed_heartbeats: config.mesos.missed_heartbeats,
            gate: Gate::always_open(),
            leader: None,
            masters: Masters::default(),
        }
    }

    /// The SUBSCRIBE call for `framework_id` (none on the first subscription).
    pub fn subscribe_call(&self, framework_id: Option<&str>) -> Call {
        let id = framework_id.map(|value| FrameworkId {
            value: value.to_owned(),
        });
        let capability = |kind: framework_info::capability::Type| framework_info::Capability {
            r#type: Some(kind as i32),
        };
        #[allow(deprecated)] // `role`: Shardex is not MULTI_ROLE, so the single role field applies.
        let framework_info = FrameworkInfo {
            user: self.user.clone(),
            name: self.name.clone(),
            id: id.clone(),
            failover_timeout: Some(self.failover_timeout.as_secs_f64()),
            checkpoint: Some(true),
            role: self.role.clone(),
            hostname: self.hostname.clone(),
            webui_url: self.webui_url.clone(),
            principal: self.principal.clone(),
            capabilities: vec![
                capability(framework_info::capability::Type::PartitionAware),
                capability(framework_info::capability::Type::TaskKillingState),
            ],
            ..FrameworkInfo::default()
        };
        Call {
            framework_id: id,
            r#type: Some(call::Type::Subscribe as i32),
            subscribe: Some(call::Subscribe {
                framework_info,
                suppressed_roles: Vec::new(),
            }),
            ..Call::default()
        }
    }
}

/// The user running the scheduler: `$USER`, else the name of the process' uid.
fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| "root".into())
}

/// Master URLs may be given as `host:port` (reached with `scheme`, `http` or `https`),
/// `http(s)://host:port` or the full endpoint.
pub fn master_endpoint(master: &str, scheme: &str) -> String {
    let master = master.trim().trim_end_matches('/');
    let with_scheme = if master.contains("://") {
        master.to_owned()
    } else {
        format!("{scheme}://{master}")
    };
    if with_scheme.ends_with("/api/v1/scheduler") {
        with_scheme
    } else {
        format!("{with_scheme}/api/v1/scheduler")
    }
}

async fn send(owner: &mpsc::Sender<Msg>, msg: Msg) -> Result<(), DriverError> {
    owner.send(msg).await.map_err(|_| DriverError::OwnerGone)
}

/// Sends the owner's calls one after another on this subscription's call connection.
async fn call_sender(client: Client, mut calls: mpsc::UnboundedReceiver<Call>, gate: Gate) {
    while let Some(call) = calls.recv().await {
        gate.open().await;
        let kind = call
            .r#type
            .and_then(|t| call::Type::try_from(t).ok())
            .map(|t| t.as_str_name())
            .unwrap_or("UNKNOWN");
        crash_point::reached(Moment::Before, &call);
        match client.call(&call).await {
            Ok(_) => {
                tracing::trace!(call = kind, "call accepted");
                crash_point::reached(Moment::After, &call);
            }
            // Nothing is lost: updates are re-sent until acknowledged, kills and
            // reconciliation are retried, launches are reconciled.
            Err(error) => tracing::warn!(call = kind, %error, "call failed"),
        }
    }
}

/// Completes when ZooKeeper names a leading master other than `current` (never without
/// ZooKeeper detection).
async fn leader_moved(
    leader: Option<&mut watch::Receiver<Option<String>>>,
    current: &str,
) -> Option<String> {
    let Some(leader) = leader else {
        return std::future::pending().await;
    };
    let moved = leader
        .wait_for(|endpoint| endpoint.as_deref() != Some(current))
        .await
        .map(|endpoint| endpoint.clone());
    match moved {
        Ok(endpoint) => endpoint,
        Err(_) => std::future::pending().await,
    }
}

enum StreamEnd {
    Reconnect,
    Removed,
}

fn error_end(message: &str, framework_id: Option<&str>) -> Result<StreamEnd, DriverError> {
    if message.contains("Framework failed over") {
        return Err(DriverError::FencedOut {
            framework_id: framework_id.unwrap_or_default().to_owned(),
        });
    }
    if message.contains("Framework has been removed") {
        return Ok(StreamEnd::Removed);
    }
    tracing::error!(message, "the master sent ERROR; resubscribing");
    Ok(StreamEnd::Reconnect)
}

/// Runs until cancelled (Ok) or fenced out / the owner is gone (Err).
pub async fn run(
    mut client: Client,
    mut config: DriverConfig,
    owner: mpsc::Sender<Msg>,
    cancel: CancellationToken,
) -> Result<(), DriverError> {
    let mut backoff = Backoff::exponential(config.backoff_initial, config.backoff_max);
    let mut redirects = 0u32;
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        if let Some(leader) = config.leader.as_mut() {
            // Subscribe to the master ZooKeeper says leads, once one does.
            let endpoint = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                found = async {
                    leader
                        .wait_for(Option::is_some)
                        .await
                        .map(|endpoint| endpoint.clone().unwrap_or_default())
                } => match found {
                    Ok(endpoint) => endpoint,
                    Err(_) => return Err(DriverError::OwnerGone),
                },
            };
            if endpoint != client.url()
                && let Err(error) = client.set_url(endpoint)
            {
                tracing::error!(%error, "unusable master endpoint from ZooKeeper");
            }
        }
        let (reply, framework_id) = oneshot::channel();
        send(&owner, Msg::GetFrameworkId(reply)).await?;
        let framework_id = framework_id.await.map_err(|_| DriverError::OwnerGone)?;
        let call = config.subscribe_call(framework_id.as_deref());
        client.set_stream_id(None);
        tracing::info!(
            master = client.url(),
            framework_id = framework_id.as_deref().unwrap_or("(new)"),
            "subscribing"
        );
        let subscription = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            result = async {
                config.gate.open().await;
                client.subscribe::<Call, Event>(&call).await
            } => result,
        };
        let mut subscription = match subscription {
            Ok(subscription) => subscription,
            Err(ApiError::Redirect { location, .. }) if redirects < 10 => {
                redirects += 1;
                tracing::info!(leader = %location, "following the redirect to the leading master");
                if let Err(error) = client.set_url(location) {
                    tracing::error!(%error, "unusable redirect location");
                }
                continue;
            }
            Err(error) => {
                redirects = 0;
                if let ApiError::Tls { .. } | ApiError::TlsSetup { .. } = &error {
                    // Retried like any failure (the master's certificate may be replaced, another
                    // master may do), but nothing changes here by itself: say it loudly.
                    tracing::error!(%error, "cannot subscribe: TLS with the master failed");
                }
                if let ApiError::Status { status: 401, .. } = &error {
                    tracing::error!(
                        principal = config.principal.as_deref().unwrap_or("(none)"),
                        "the master refused this framework's credentials (401): check \
                         framework.principal and framework.secret_file against the master's \
                         --credentials"
                    );
                }
                let (next, round_done) = config.masters.failed();
                if let Some(next) = next
                    && next != client.url()
                    && let Err(error) = client.set_url(next.to_owned())
                {
                    tracing::error!(%error, "unusable master endpoint");
                }
                if !round_done {
                    tracing::warn!(%error, next = client.url(), "subscription failed; trying the next master");
                    continue;
                }
                let delay = backoff.next_delay();
                tracing::warn!(%error, ?delay, "subscription failed; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        redirects = 0;
        config.masters.subscribed();
        let stream_id = subscription.stream_id().map(str::to_owned);
        let mut stream_client = client.clone();
        stream_client.set_stream_id(stream_id.as_deref());
        // Until SUBSCRIBED says otherwise, Mesos' default 15 s heartbeat.
        let mut watchdog = subscribed::default_watchdog(config.missed_heartbeats);
        let mut calls: Option<mpsc::UnboundedSender<Call>> = None;
        let mut sender_task = None;
        let mut subscribed_id: Option<String> = framework_id.clone();
        let end: Result<StreamEnd, DriverError> = loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => break Ok(StreamEnd::Reconnect),
                moved = leader_moved(config.leader.as_mut(), client.url()) => {
                    tracing::info!(
                        master = moved.as_deref().unwrap_or("(none)"),
                        "ZooKeeper names another leading master; resubscribing there"
                    );
                    break Ok(StreamEnd::Reconnect);
                }
                next = tokio::time::timeout(watchdog, subscription.next_event()) => next,
            };
            let event = match next {
                Err(_) => {
                    tracing::warn!(
                        silent_for = ?watchdog,
                        "no event (not even a heartbeat) from the master; resubscribing"
                    );
                    break Ok(StreamEnd::Reconnect);
                }
                Ok(Ok(Some(event))) => event,
                Ok(Ok(None)) => {
                    tracing::warn!("the master ended the event stream");
                    break Ok(StreamEnd::Reconnect);
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "event stream failed");
                    break Ok(StreamEnd::Reconnect);
                }
            };
            let kind = event
                .r#type
                .and_then(|t| event::Type::try_from(t).ok())
                .unwrap_or(event::Type::Unknown);
            match kind {
                event::Type::Subscribed => {
                    let subscribed = match subscribed::check(
                        event.subscribed,
                        client.url(),
                        config.missed_heartbeats,
                    ) {
                        Ok(subscribed) => subscribed,
                        Err(error) => {
                            tracing::warn!(%error, "unusable event from the master; resubscribing");
                            break Ok(StreamEnd::Reconnect);
                        }
                    };
                    if let Some(sent) = subscribed.unusable_interval {
                        tracing::warn!(
                            heartbeat_interval_seconds = sent,
                            "unusable heartbeat interval from the master; using 15 s"
                        );
                    }
                    let id = subscribed.framework_id;
                    let interval = subscribed.heartbeat_seconds;
                    watchdog = subscribed.watchdog;
                    tracing::info!(framework_id = %id, stream_id = stream_id.as_deref().unwrap_or(""), heartbeat_seconds = interval, "subscribed");
                    backoff.reset();
                    let (tx, rx) = mpsc::unbounded_channel();
                    sender_task = Some(tokio::spawn(call_sender(
                        stream_client.clone(),
                        rx,
                        config.gate.clone(),
                    )));
                    calls = Some(tx.clone());
                    subscribed_id = Some(id.clone());
                    if let Err(e) = send(
                        &owner,
                        Msg::Subscribed {
                            framework_id: id,
                            calls: tx,
                        },
                    )
                    .await
                    {
                        break Err(e);
                    }
                }
                event::Type::Heartbeat => {}
                event::Type::Error => {
                    let message = event.error.map(|e| e.message).unwrap_or_default();
                    break error_end(&message, subscribed_id.as_deref());
                }
                _ => {
                    if let Err(e) = send(&owner, Msg::Event(Box::new(event))).await {
                        break Err(e);
                    }
                }
            }
        };
        drop(calls);
        drop(sender_task);
        let disconnected = send(&owner, Msg::Disconnected).await;
        if let Err(error) = client.reset_connections() {
            tracing::warn!(%error, "could not reset connections");
        }
        match end? {
            StreamEnd::Removed => {
                send(&owner, Msg::FrameworkRemoved).await?;
                backoff.reset();
            }
            StreamEnd::Reconnect => {}
        }
        disconnected?;
        if cancel.is_cancelled() {
            return Ok(());
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_urls_are_normalised() {
        assert_eq!(
            master_endpoint("10.0.0.1:5050", "http"),
            "http://10.0.0.1:5050/api/v1/scheduler"
        );
        assert_eq!(
            master_endpoint("http://m:5050/", "http"),
            "http://m:5050/api/v1/scheduler"
        );
        assert_eq!(
            master_endpoint("http://m:5050/api/v1/scheduler", "http"),
            "http://m:5050/api/v1/scheduler"
        );
        // mesos.tls.enabled: masters without a scheme use https; explicit ones keep theirs.
        assert_eq!(
            master_endpoint("10.0.0.1:5050", "https"),
            "https://10.0.0.1:5050/api/v1/scheduler"
        );
        assert_eq!(
            master_endpoint("https://m:5050", "http"),
            "https://m:5050/api/v1/scheduler"
        );
    }

    #[test]
    fn several_masters_are_tried_in_turn_backing_off_after_each_failed_once() {
        let mut masters = Masters::parse("m1:5050, http://m2:5050,", "http");
        assert_eq!(masters.first(), Some("http://m1:5050/api/v1/scheduler"));
        assert_eq!(
            masters.failed(),
            (Some("http://m2:5050/api/v1/scheduler"), false)
        );
        assert_eq!(
            masters.failed(),
            (Some("http://m1:5050/api/v1/scheduler"), true)
        );
        assert_eq!(
            masters.failed(),
            (Some("http://m2:5050/api/v1/scheduler"), false)
        );
        // A subscription in between starts a new round.
        masters.subscribed();
        assert_eq!(
            masters.failed(),
            (Some("http://m1:5050/api/v1/scheduler"), false)
        );
        let mut one = Masters::parse("m1:5050", "http");
        assert_eq!(
            one.failed(),
            (Some("http://m1:5050/api/v1/scheduler"), true)
        );
        assert_eq!(Masters::parse(" , ", "http").first(), None);
    }

    #[test]
    fn subscribe_sets_the_id_twice_and_the_capabilities() {
        let config = DriverConfig::from_config(&Config::default(), Some("http://x/".into()));
        let call = config.subscribe_call(Some("fw-1"));
        let info = &call.subscribe.as_ref().unwrap().framework_info;
        assert_eq!(call.framework_id.as_ref().unwrap().value, "fw-1");
        assert_eq!(info.id.as_ref().unwrap().value, "fw-1");
        assert_eq!(info.checkpoint, Some(true));
        assert_eq!(info.failover_timeout, Some(604_800.0));
        assert_eq!(info.name, "shardex");
        let caps: Vec<i32> = info.capabilities.iter().filter_map(|c| c.r#type).collect();
        assert_eq!(
            caps,
            vec![
                framework_info::capability::Type::PartitionAware as i32,
                framework_info::capability::Type::TaskKillingState as i32
            ]
        );
        let first = config.subscribe_call(None);
        assert!(first.framework_id.is_none());
        assert!(first.subscribe.unwrap().framework_info.id.is_none());
    }

    #[test]
    fn errors_fence_or_restart() {
        assert!(matches!(
            error_end("Framework failed over", Some("f")),
            Err(DriverError::FencedOut { .. })
        ));
        assert!(matches!(
            error_end("Framework has been removed", Some("f")),
            Ok(StreamEnd::Removed)
        ));
        assert!(matches!(
            error_end("something else", None),
            Ok(StreamEnd::Reconnect)
        ));
    }
}
