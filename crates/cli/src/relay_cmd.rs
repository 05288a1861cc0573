//! `micronode relay`: run a HashMail mailbox relay (Lightning Node Connect's, see
//! docs/pairing.md) and the browser wallet's page until Ctrl-C or SIGTERM. Streams live in
//! memory only.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use micronode_relay::{Relay, RelayConfig};
use tokio::net::TcpListener;

/// Options of `micronode relay`. Every limit defaults to [`RelayConfig::default`]'s.
#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// Address to listen on, e.g. 0.0.0.0:8443 (port 0 picks a free port). The relay speaks
    /// plain HTTP and websockets; put a TLS-terminating proxy in front of it for browsers.
    #[arg(long)]
    listen: SocketAddr,
    /// Messages per second each stream's writer may keep up.
    #[arg(long, default_value_t = RelayConfig::default().rate_per_sec)]
    rate: f64,
    /// Messages a stream's writer may send at once after a quiet spell.
    #[arg(long, default_value_t = RelayConfig::default().burst)]
    burst: u32,
    /// The largest message, in bytes.
    #[arg(long, default_value_t = RelayConfig::default().max_message_bytes)]
    max_message_bytes: usize,
    /// How long a stream lives after it is created, in seconds.
    #[arg(long, default_value_t = RelayConfig::default().stream_ttl.as_secs())]
    ttl_secs: u64,
    /// Delete a stream with nobody attached after this many seconds.
    #[arg(long, default_value_t = RelayConfig::default().idle_timeout.as_secs())]
    idle_secs: u64,
    /// The most streams the relay holds.
    #[arg(long, default_value_t = RelayConfig::default().max_streams)]
    max_streams: usize,
}

impl RelayArgs {
    fn config(&self) -> RelayConfig {
        RelayConfig {
            rate_per_sec: self.rate,
            burst: self.burst,
            max_message_bytes: self.max_message_bytes,
            stream_ttl: Duration::from_secs(self.ttl_secs),
            idle_timeout: Duration::from_secs(self.idle_secs),
            max_streams: self.max_streams,
            ..RelayConfig::default()
        }
    }
}

/// Runs the relay until Ctrl-C or SIGTERM.
pub async fn run(args: RelayArgs) -> anyhow::Result<()> {
    let relay = Relay::new(args.config()).context("the relay's settings")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    println!("relay listening on http://{addr} (the wallet is at http://{addr}/)");
    relay
        .serve_with(
            listener,
            micronode_webapp::router(),
            crate::daemon::wait_for_shutdown_signal(),
        )
        .await
        .context("serving the relay")
}
