//! placeholder
pub mod api;
pub mod config;
pub mod engine;
pub mod ids;
pub mod metrics;
pub mod placement;
pub mod producer;
pub mod reconcile;
pub mod registry;
pub mod state;
pub mod status;
pub mod store;
