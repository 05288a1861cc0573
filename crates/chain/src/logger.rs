//! LDK's log records, sent to `tracing` with a label (a node, or the shared graph).

use lightning::util::logger::{Level, Logger, Record};

/// Forwards LDK log records to `tracing`, tagged with the node (or shared service) they come from.
pub struct LdkLogger {
    label: String,
}

impl LdkLogger {
    /// A logger for the node with this label (usually a short node id or name).
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
        }
    }
}

impl Logger for LdkLogger {
    fn log(&self, record: Record<'_>) {
        let node = self.label.as_str();
        let module = record.module_path;
        match record.level {
            Level::Gossip | Level::Trace => {
                tracing::trace!(target: "ldk", node, module, "{}", record.args)
            }
            Level::Debug => tracing::debug!(target: "ldk", node, module, "{}", record.args),
            Level::Info => tracing::info!(target: "ldk", node, module, "{}", record.args),
            Level::Warn => tracing::warn!(target: "ldk", node, module, "{}", record.args),
            Level::Error => tracing::error!(target: "ldk", node, module, "{}", record.args),
        }
    }
}
