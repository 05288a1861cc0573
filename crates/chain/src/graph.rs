//! One Lightning network graph per process, shared by every node in it.
//!
//! Gossip is public, so tenants gain nothing from private copies, and a copy per node cannot
//! scale: LDK pre-sizes each graph for the mainnet network, and a real mainnet graph holds tens
//! of MiB. Each node still keeps its own scorer (what it learned from its own payments).
//! The graph is persisted here, by its one owner, rather than by every node.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::constants::ChainHash;
use bitcoin::Network;
use lightning::routing::gossip::NetworkGraph;
use lightning::util::ser::{ReadableArgs, Writeable};

/// The logger type of the shared graph (the process-wide LDK logger).
pub type GraphLogger = crate::logger::LdkLogger;

/// The network graph every node in the process shares.
pub type SharedNetworkGraph = NetworkGraph<Arc<GraphLogger>>;

/// How often the graph is written to its file and pruned of stale entries.
const PERSIST_INTERVAL: Duration = Duration::from_secs(600);

/// Loads the graph from `path`, or starts an empty one (also when the file is unreadable, which
/// only costs a gossip re-sync).
pub fn load_graph(path: Option<&Path>, network: Network) -> Arc<SharedNetworkGraph> {
    let logger = Arc::new(GraphLogger::new("graph"));
    if let Some(path) = path {
        match std::fs::read(path) {
            Ok(bytes) => match SharedNetworkGraph::read(&mut &bytes[..], logger.clone()) {
                Ok(graph) if graph.get_chain_hash() == ChainHash::using_genesis_block(network) => {
                    return Arc::new(graph)
                }
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "stored graph is for another network; starting empty")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = ?e, "stored graph unreadable; starting empty")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the stored graph")
            }
        }
    }
    Arc::new(SharedNetworkGraph::new(network, logger))
}

/// Writes the graph to `path` atomically.
pub fn save_graph(graph: &SharedNetworkGraph, path: &Path) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, graph.encode())?;
    std::fs::rename(&tmp, path)
}

/// Prunes and persists the graph every few minutes on `runtime`, until the graph is dropped.
pub fn spawn_graph_maintenance(
    graph: &Arc<SharedNetworkGraph>,
    path: Option<PathBuf>,
    runtime: &tokio::runtime::Handle,
) {
    let weak = Arc::downgrade(graph);
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(PERSIST_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(graph) = weak.upgrade() else { break };
            graph.remove_stale_channels_and_tracking();
            if let Some(path) = &path {
                if let Err(e) = save_graph(&graph, path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot persist the network graph");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_file_round_trips_and_bad_files_start_empty() {
        let dir = std::env::temp_dir().join(format!("mn-graph-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("network_graph.bin");

        // Missing file: a fresh graph for the network.
        let graph = load_graph(Some(&path), Network::Regtest);
        assert_eq!(
            graph.get_chain_hash(),
            ChainHash::using_genesis_block(Network::Regtest)
        );
        save_graph(&graph, &path).expect("save");
        let reloaded = load_graph(Some(&path), Network::Regtest);
        assert_eq!(reloaded.encode(), graph.encode());

        // A graph of another network is not used.
        let other = load_graph(Some(&path), Network::Signet);
        assert_eq!(
            other.get_chain_hash(),
            ChainHash::using_genesis_block(Network::Signet)
        );

        // Garbage is not fatal.
        std::fs::write(&path, b"not a graph").expect("write");
        let fresh = load_graph(Some(&path), Network::Regtest);
        assert_eq!(fresh.read_only().channels().len(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
