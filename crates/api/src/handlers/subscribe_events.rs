//! `SubscribeEvents`: the node's events as a server stream.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use micronode_node::{KeysBackend, Node, NodeEvent};
use micronode_proto::v1::{Event, SubscribeEventsRequest};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use super::{stopped, ShutdownSignal};
use crate::adapter;
use crate::error::ApiError;

/// The stream of events a subscriber gets.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, tonic::Status>> + Send>>;

/// Handles `SubscribeEvents`. The stream follows the node's event channel from now on; it
/// ends when the server shuts down (so a graceful shutdown does not wait for subscribers) and
/// tells a subscriber that fell behind how many events it missed.
pub async fn handle_subscribe_events<K: KeysBackend>(
    node: &Arc<Node<K>>,
    stop: ShutdownSignal,
    _req: SubscribeEventsRequest,
) -> Result<EventStream, ApiError> {
    let events = node.subscribe_events();
    Ok(Box::pin(futures::stream::unfold(
        (events, stop),
        next_event,
    )))
}

async fn next_event(
    (mut events, mut stop): (Receiver<NodeEvent>, ShutdownSignal),
) -> Option<(
    Result<Event, tonic::Status>,
    (Receiver<NodeEvent>, ShutdownSignal),
)> {
    let received = tokio::select! {
        biased;
        _ = stopped(&mut stop) => return None,
        received = events.recv() => received,
    };
    let event = match received {
        Ok(event) => adapter::event(event),
        Err(RecvError::Lagged(missed)) => adapter::events_lagged(missed),
        Err(RecvError::Closed) => return None,
    };
    Some((Ok(event), (events, stop)))
}
