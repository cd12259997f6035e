//! The Mesos v1 HTTP API protocol layer shared by the executor, the scheduler and the embedded
//! cluster. It knows nothing about jobs.
//!
//! In the order bytes travel: [`recordio`] frames the event stream, [`proto`] holds the
//! generated messages, [`codec`] and [`json`] encode them as protobuf or Mesos-style JSON
//! ([`required`] checks proto2 required fields the way Mesos does), and [`client`] carries
//! calls and subscriptions over HTTP, or HTTPS as [`tls`] configures it, with [`backoff`] for
//! retries. [`duration`], [`uuid`] and [`states`] hold small facts both sides need.

pub mod agent_info;
pub mod backoff;
pub mod client;
pub mod codec;
pub mod duration;
pub mod json;
pub mod proto;
pub mod recordio;
pub mod required;
pub mod states;
pub mod tls;
pub mod uuid;

pub use client::{ApiError, Client, ClientConfig, Credentials, Subscription};
pub use codec::Encoding;
pub use proto::v1;
pub use tls::{ClientCertificate, TlsConfig, TlsError};
