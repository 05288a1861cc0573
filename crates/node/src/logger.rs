//! LDK's log records, sent to `tracing` with the node's label.

/// The node's LDK logger: the process-wide LDK logger type, labelled with the node.
pub type NodeLogger = micronode_chain::LdkLogger;
