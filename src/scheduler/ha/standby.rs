//! What a standby answers on the REST API, while another scheduler leads.
//!
//! - Reads (`GET` of apps, jobs and the task queues) come from the shared state in ZooKeeper,
//!   answered exactly as the leader would answer them from the same state. The state is read
//!   at most once per [`SNAPSHOT_TTL`] (table by table, so a read may be up to that old and
//!   see a task in the middle of moving from one table to the next).
//! - `/health`: 503 `{"status": "standby", "role": "standby", "leader": "<its REST URL>"}`.
//! - `/metrics`: the gauges of the shared state, this process' counters (zero: a standby
//!   decides nothing), `shardex_leader 0` and the store's election count.
//! - Writes: 503 naming the leader's REST API, to be sent there.

use std::time::Duration;

use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::election;
use crate::api::{ApiFailure, ApiReply, ApiRequest, ApiResult};
use crate::store::ZkStore;
use crate::{Config, Engine, metrics, now_millis};

/// How long a standby answers reads from one snapshot of the shared state.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(1);

/// A standby's view of the shared state.
#[derive(Debug)]
pub struct Standby {
    client: zookeeper_client::Client,
    election: String,
    config: Config,
    snapshot: Mutex<Snapshot>,
    history: crate::store::HistoryReader,
}

#[derive(Debug)]
struct Snapshot {
    store: ZkStore,
    /// The engine over the last state read, and when it was read.
    engine: Option<(Instant, Engine)>,
}

/// Whether a request only reads.
fn reads(request: &ApiRequest) -> bool {
    matches!(
        request,
        ApiRequest::ListApps
            | ApiRequest::GetApp(_)
            | ApiRequest::ListJobs
            | ApiRequest::GetJob(_)
            | ApiRequest::Running
            | ApiRequest::Ready
            | ApiRequest::Failover
            | ApiRequest::Parked
            | ApiRequest::JobRuns { .. }
            | ApiRequest::GetRun(_)
            | ApiRequest::GetTask(_)
            | ApiRequest::Metrics
    )
}

impl Standby {
    /// Reads the run history from the shared store.
    pub fn history_reader(&self) -> crate::store::HistoryReader {
        self.history.clone()
    }

    /// A standby reading through `store` (never its writer) and naming the leader found under
    /// `election`.
    pub fn new(
        client: zookeeper_client::Client,
        election: String,
        store: ZkStore,
        config: Config,
    ) -> Standby {
        Standby {
            client,
            election,
            config,
            history: crate::store::HistoryReader::ZooKeeper(store.reader()),
            snapshot: Mutex::new(Snapshot {
                store,
                engine: None,
            }),
        }
    }

    /// The leader's REST URL, when one leads.
    async fn leader(&self) -> Option<String> {
        election::leader(&self.client, &self.election)
            .await
            .ok()
            .flatten()
            .map(|leader| leader.rest)
    }

    pub async fn answer(&self, request: ApiRequest) -> ApiResult {
        if matches!(request, ApiRequest::Health) {
            let leader = self.leader().await;
            return Ok(ApiReply::Json(
                503,
                json!({ "status": "standby", "role": "standby", "leader": leader }),
            ));
        }
        if !reads(&request) {
            let why = match self.leader().await {
                Some(rest) => format!(
                    "this scheduler is a standby and only answers reads; send writes to the \
                     leader's REST API at {rest}"
                ),
                None => "this scheduler is a standby and no scheduler leads yet; retry shortly"
                    .to_owned(),
            };
            return Err(ApiFailure::new(503, why));
        }
        let is_metrics = matches!(request, ApiRequest::Metrics);
        let mut snapshot = self.snapshot.lock().await;
        let Snapshot { store, engine } = &mut *snapshot;
        let fresh = engine
            .as_ref()
            .is_some_and(|(read_at, _)| read_at.elapsed() < SNAPSHOT_TTL);
        if !fresh {
            let read_at = Instant::now();
            let state = store.load().await.map_err(|error| {
                ApiFailure::new(
                    503,
                    format!("this standby cannot read the shared state: {error}"),
                )
            })?;
            *engine = Some((
                read_at,
                Engine::new(state, self.config.clone(), now_millis()),
            ));
        }
        let Some((_, engine)) = engine.as_mut() else {
            return Err(ApiFailure::new(503, "no snapshot of the shared state"));
        };
        let elections = if is_metrics {
            store
                .current_epoch()
                .await
                .ok()
                .map(|(epoch, _)| u64::try_from(epoch).unwrap_or(0))
        } else {
            None
        };
        // A read decides nothing: no call comes back, and the snapshot is never committed.
        let (_, mut result) = engine.on_api(request, now_millis());
        if let Ok(ApiReply::Metrics(text)) = &mut result {
            metrics::render_leadership(text, false, elections);
        }
        result
    }
}
