//! The host's Prometheus endpoint (`GET /metrics`, text format 0.0.4).
//!
//! It reports tenants by state, each tenant's signer connectivity, channels and block lag, the
//! gateway's channels, payments summed over every tenant (never one tenant's), and bitcoind
//! calls. Tenants are labelled by their host id only. It has no authentication, like most
//! Prometheus exporters: it listens on loopback unless configured otherwise, and shows no
//! balance and nothing of one tenant's payments.
//!
//! Hand-written rather than with a metrics crate: the format is a few lines of text and every
//! value is read fresh from the host at scrape time, so there is no registry to keep.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use micronode_node::{PaymentDirection, PaymentStatus};
use tokio::task::JoinHandle;

use crate::error::HostError;
use crate::host::{Host, TenantStatus};

/// The bitcoind methods counted one by one (the rest are in the total).
const COUNTED_METHODS: [&str; 6] = [
    "getbestblockhash",
    "getblockheader",
    "getblock",
    "getrawmempool",
    "estimatesmartfee",
    "sendrawtransaction",
];

fn status_label(status: &TenantStatus) -> &'static str {
    match status {
        TenantStatus::WaitingForSigner => "waiting_for_signer",
        TenantStatus::Active => "active",
        TenantStatus::Suspended => "suspended",
        TenantStatus::Deleting => "deleting",
        TenantStatus::Failed(_) => "failed",
    }
}

/// The host's metrics in Prometheus' text format. Reads every running tenant's node: call it
/// off the async workers.
pub fn render(host: &Host) -> String {
    let mut out = String::new();
    let views = host.list_tenants();
    let tip = host.chain().feed.tip().height;

    let _ = writeln!(
        out,
        "# HELP micronode_tenants Tenants of the host by state."
    );
    let _ = writeln!(out, "# TYPE micronode_tenants gauge");
    for state in [
        "waiting_for_signer",
        "active",
        "suspended",
        "deleting",
        "failed",
    ] {
        let n = views
            .iter()
            .filter(|v| status_label(&v.status) == state)
            .count();
        let _ = writeln!(out, "micronode_tenants{{state=\"{state}\"}} {n}");
    }

    let _ = writeln!(
        out,
        "# HELP micronode_tenant_signer_connected Whether the tenant's signer is connected."
    );
    let _ = writeln!(out, "# TYPE micronode_tenant_signer_connected gauge");
    for v in &views {
        let _ = writeln!(
            out,
            "micronode_tenant_signer_connected{{tenant=\"{}\"}} {}",
            v.record.id,
            u8::from(v.signer_connected)
        );
    }
    let _ = writeln!(
        out,
        "# HELP micronode_tenant_channels The tenant's channels."
    );
    let _ = writeln!(out, "# TYPE micronode_tenant_channels gauge");
    for v in &views {
        let _ = writeln!(
            out,
            "micronode_tenant_channels{{tenant=\"{}\"}} {}",
            v.record.id, v.channels
        );
    }

    let _ = writeln!(
        out,
        "# HELP micronode_tenant_block_lag Blocks the tenant's node is behind the chain feed."
    );
    let _ = writeln!(out, "# TYPE micronode_tenant_block_lag gauge");
    let mut payments = [[0u64; 3]; 2];
    for v in &views {
        let Ok(node) = host.tenant_node(&v.record.id) else {
            continue;
        };
        let height = node.info().block_height;
        let _ = writeln!(
            out,
            "micronode_tenant_block_lag{{tenant=\"{}\"}} {}",
            v.record.id,
            tip.saturating_sub(height)
        );
        for p in node.list_payments() {
            let d = usize::from(p.direction == PaymentDirection::Outbound);
            let s = match p.status {
                PaymentStatus::Pending => 0,
                PaymentStatus::Succeeded => 1,
                PaymentStatus::Failed => 2,
            };
            payments[d][s] += 1;
        }
    }

    let _ = writeln!(
        out,
        "# HELP micronode_payments Payments of every tenant together, by direction and status."
    );
    let _ = writeln!(out, "# TYPE micronode_payments gauge");
    for (d, direction) in ["inbound", "outbound"].iter().enumerate() {
        for (s, status) in ["pending", "succeeded", "failed"].iter().enumerate() {
            let _ = writeln!(
                out,
                "micronode_payments{{direction=\"{direction}\",status=\"{status}\"}} {}",
                payments[d][s]
            );
        }
    }

    // In a fleet the gateway is a node of its own, with its own metrics.
    if let Some(gateway) = host.gateway() {
        let _ = writeln!(
            out,
            "# HELP micronode_gateway_channels The gateway's channels."
        );
        let _ = writeln!(out, "# TYPE micronode_gateway_channels gauge");
        let _ = writeln!(
            out,
            "micronode_gateway_channels {}",
            gateway.info().num_channels
        );
    }
    let _ = writeln!(
        out,
        "# HELP micronode_chain_tip_height The chain feed's tip."
    );
    let _ = writeln!(out, "# TYPE micronode_chain_tip_height gauge");
    let _ = writeln!(out, "micronode_chain_tip_height {tip}");

    let rpc = &host.chain().rpc;
    let _ = writeln!(
        out,
        "# HELP micronode_bitcoind_calls_total bitcoind RPC calls of the host, all methods."
    );
    let _ = writeln!(out, "# TYPE micronode_bitcoind_calls_total counter");
    let _ = writeln!(out, "micronode_bitcoind_calls_total {}", rpc.total_calls());
    let _ = writeln!(
        out,
        "# HELP micronode_bitcoind_method_calls_total bitcoind RPC calls by method."
    );
    let _ = writeln!(out, "# TYPE micronode_bitcoind_method_calls_total counter");
    for method in COUNTED_METHODS {
        let _ = writeln!(
            out,
            "micronode_bitcoind_method_calls_total{{method=\"{method}\"}} {}",
            rpc.call_count(method)
        );
    }
    out
}

/// Serves `GET /metrics` for `host` on `addr` (port 0 picks one) until `shutdown` resolves.
pub async fn serve_metrics(
    host: Arc<Host>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, JoinHandle<()>), HostError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(HostError::io(format!(
            "binding the metrics endpoint on {addr}"
        )))?;
    let bound = listener
        .local_addr()
        .map_err(HostError::io("reading the metrics endpoint's address"))?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let host = host.clone();
            async move {
                match tokio::task::spawn_blocking(move || render(&host)).await {
                    Ok(text) => (
                        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        text,
                    )
                        .into_response(),
                    Err(e) => {
                        tracing::error!(error = %e, "rendering metrics failed");
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    }
                }
            }
        }),
    );
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "metrics endpoint listening");
    Ok((bound, task))
}
