//! The owner task: the only holder of the [`Engine`] and the [`Store`].
//!
//! Each step of its loop:
//!
//! 1. waits for an open [`Gate`] (an HA leader whose lease is in doubt decides nothing);
//! 2. takes one input (a clock tick or a message), then every message already queued behind it,
//!    up to [`BATCH`], applying each to the engine in order and keeping the calls and answers
//!    they produce;
//! 3. commits all their changes to the store **in one write** (one redb transaction, one
//!    ZooKeeper `multi`);
//! 4. only then answers the REST requests and, once the lease is confirmed again, sends the
//!    calls to Mesos in the order they were produced.
//!
//! So the rule "a launch is recorded before its ACCEPT, an update's effect before its
//! ACKNOWLEDGE" holds for every message of the batch, and a burst of status updates costs one
//! round trip to the store, not one each: what keeps the ZooKeeper backend's throughput near
//! the local file's.
//!
//! A batch never spans a change of subscription: a message that changes where calls go
//! (subscribed, disconnected, framework removed) ends the batch before it and starts the next,
//! so no call is sent on a stream other than the one current when it was decided.

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use shardex_mesos::proto::v1::scheduler::Call;

use super::ha::Gate;
use super::store::Store;
use super::{ApiFailure, ApiResult, Engine, Msg, SchedulerError, TICK, now_millis};

/// The most messages applied before one commit. The channel holds 1,024; a batch of this
/// size keeps one commit below a few MB of changes even when every message is an update.
pub const BATCH: usize = 512;

/// An answer decided by a message, sent once the batch is committed.
enum Answer {
    Api(oneshot::Sender<ApiResult>, ApiResult),
    FrameworkId(oneshot::Sender<Option<String>>, Option<String>),
}

impl Answer {
    fn send(self) {
        // A requester that went away has nothing left to hear.
        match self {
            Answer::Api(to, result) => drop(to.send(result)),
            Answer::FrameworkId(to, id) => drop(to.send(id)),
        }
    }

    /// The batch could not be recorded: a REST request hears so, and that nothing of it took
    /// effect (the scheduler stops without acting on it).
    fn refuse(self, error: &dyn std::fmt::Display) {
        if let Answer::Api(to, _) = self {
            drop(to.send(Err(refusal(error))));
        }
    }
}

/// The answer to a REST request when the store cannot be written.
fn refusal(error: &dyn std::fmt::Display) -> ApiFailure {
    ApiFailure::new(
        503,
        format!(
            "nothing of this request took effect: the scheduler cannot write its store and is \
             stopping: {error}"
        ),
    )
}

/// What one batch decided.
#[derive(Default)]
struct Decided {
    calls: Vec<Call>,
    answers: Vec<Answer>,
}

/// Whether a message changes where calls go.
fn changes_subscription(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Subscribed { .. } | Msg::Disconnected | Msg::FrameworkRemoved
    )
}

/// Applies every message to the engine, commits, then acts; until cancelled, the channel
/// closes, or a commit fails.
pub async fn run_owner(
    mut engine: Engine,
    mut store: Store,
    mut rx: mpsc::Receiver<Msg>,
    cancel: CancellationToken,
    gate: Gate,
) -> Result<(), SchedulerError> {
    let mut calls_tx: Option<mpsc::UnboundedSender<Call>> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // A subscription change taken off the queue that must start the next batch.
    let mut held: Option<Msg> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                if gate.is_open() {
                    store.commit(&mut engine.state).await?;
                }
                return Ok(());
            }
            _ = gate.open() => {}
        }
        let mut decided = Decided::default();
        let first = match held.take() {
            Some(msg) => Some(msg),
            None => tokio::select! {
                _ = cancel.cancelled() => {
                    store.commit(&mut engine.state).await?;
                    return Ok(());
                }
                _ = tick.tick() => {
                    decided.calls = engine.on_tick(now_millis());
                    None
                }
                msg = rx.recv() => match msg {
                    None => {
                        store.commit(&mut engine.state).await?;
                        return Ok(());
                    }
                    Some(msg) => Some(msg),
                },
            },
        };
        if let Some(msg) = first {
            apply(&mut engine, msg, &mut calls_tx, &mut decided);
        }
        // Everything already queued joins this commit, up to a subscription change.
        let mut taken = 1;
        while taken < BATCH {
            let Ok(msg) = rx.try_recv() else { break };
            if changes_subscription(&msg) {
                held = Some(msg);
                break;
            }
            apply(&mut engine, msg, &mut calls_tx, &mut decided);
            taken += 1;
        }

        // Durable first: nothing below may get ahead of the store.
        if let Err(error) = store.commit(&mut engine.state).await {
            tracing::error!(%error, "cannot persist the scheduler state; stopping");
            for answer in decided.answers {
                answer.refuse(&error);
            }
            // Requests already queued behind the batch hear the same.
            rx.close();
            while let Ok(msg) = rx.try_recv() {
                if let Msg::Api(_, to) = msg {
                    drop(to.send(Err(refusal(&error))));
                }
            }
            return Err(error.into());
        }
        for answer in decided.answers {
            answer.send();
        }
        // The commit above may have taken a while: the calls wait for a lease that holds.
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = gate.open() => {}
        }
        if let Some(tx) = &calls_tx {
            for call in decided.calls {
                if tx.send(call).is_err() {
                    break;
                }
            }
        } else if !decided.calls.is_empty() {
            tracing::debug!(
                calls = decided.calls.len(),
                "not subscribed; calls dropped (they are retried)"
            );
        }
    }
}

/// One message applied to the engine: its calls and answer join the batch's.
fn apply(
    engine: &mut Engine,
    msg: Msg,
    calls_tx: &mut Option<mpsc::UnboundedSender<Call>>,
    decided: &mut Decided,
) {
    let calls = match msg {
        Msg::Subscribed {
            framework_id,
            calls,
        } => {
            *calls_tx = Some(calls);
            engine.on_subscribed(&framework_id, now_millis())
        }
        Msg::Event(event) => engine.on_event(*event, now_millis()),
        Msg::Disconnected => {
            *calls_tx = None;
            engine.on_disconnected();
            Vec::new()
        }
        Msg::FrameworkRemoved => {
            *calls_tx = None;
            engine.on_framework_removed(now_millis())
        }
        Msg::GetFrameworkId(answer) => {
            let id = engine.framework_id().map(str::to_owned);
            decided.answers.push(Answer::FrameworkId(answer, id));
            Vec::new()
        }
        Msg::Api(request, answer) => {
            let (calls, result) = engine.on_api(*request, now_millis());
            decided.answers.push(Answer::Api(answer, result));
            calls
        }
    };
    decided.calls.extend(calls);
}
