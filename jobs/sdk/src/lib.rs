//! Shardex job plugin SDK (placeholder until the plugin ABI lands).
