//! `ldk-peer`: one ldk-node (0.7.1) Lightning node on regtest, chained to a bitcoind by RPC and
//! driven by JSON lines, for micronode's interop tests.
//!
//! Protocol: after start-up the process prints one line `{"ready":{...}}` on stdout. Then it
//! reads one JSON command per line on stdin and answers each with exactly one line on stdout,
//! `{"ok":...}` or `{"error":"..."}`, in order. The commands are in [`protocol::Command`].
//! ldk-node logs to `<data-dir>/ldk_node.log`; this program's own diagnostics go to stderr.
//! Stdout carries nothing but protocol lines. End of input stops the node and exits, so the
//! peer never outlives the test that drives it.

mod handlers;
mod protocol;

use std::io::{BufRead, Write};
use std::process::ExitCode;

use ldk_node::bitcoin::Network;
use ldk_node::config::{AnchorChannelsConfig, Config};
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::Builder;

use crate::protocol::{Command, Ready};

/// Command-line arguments.
struct Args {
    data_dir: String,
    rpc_host: String,
    rpc_port: u16,
    rpc_user: String,
    rpc_password: String,
    listen: SocketAddress,
    alias: String,
    anchor_reserve_sat: u64,
}

const USAGE: &str = "usage: ldk-peer --data-dir DIR --bitcoind-rpc-host HOST --bitcoind-rpc-port PORT \
--rpc-user USER --rpc-password PASS --listen 127.0.0.1:PORT [--alias NAME] [--anchor-reserve-sat SAT]";

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut data_dir = None;
    let mut rpc_host = None;
    let mut rpc_port = None;
    let mut rpc_user = None;
    let mut rpc_password = None;
    let mut listen = None;
    let mut alias = "ldk-peer".to_string();
    let mut anchor_reserve_sat = AnchorChannelsConfig::default().per_channel_reserve_sats;
    while let Some(flag) = argv.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = argv
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |what: &str| {
            value
                .parse::<u64>()
                .map_err(|e| format!("{what} {value:?}: {e}"))
        };
        match flag.as_str() {
            "--data-dir" => data_dir = Some(value),
            "--bitcoind-rpc-host" => rpc_host = Some(value),
            "--bitcoind-rpc-port" => {
                let port = number("--bitcoind-rpc-port")?;
                rpc_port = Some(u16::try_from(port).map_err(|e| format!("port {port}: {e}"))?);
            }
            "--rpc-user" => rpc_user = Some(value),
            "--rpc-password" => rpc_password = Some(value),
            "--listen" => {
                let addr = value
                    .parse::<SocketAddress>()
                    .map_err(|e| format!("--listen {value:?}: {e:?}"))?;
                listen = Some(addr);
            }
            "--alias" => alias = value,
            "--anchor-reserve-sat" => anchor_reserve_sat = number("--anchor-reserve-sat")?,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let missing = |name: &str| format!("{name} is required\n{USAGE}");
    Ok(Args {
        data_dir: data_dir.ok_or_else(|| missing("--data-dir"))?,
        rpc_host: rpc_host.ok_or_else(|| missing("--bitcoind-rpc-host"))?,
        rpc_port: rpc_port.ok_or_else(|| missing("--bitcoind-rpc-port"))?,
        rpc_user: rpc_user.ok_or_else(|| missing("--rpc-user"))?,
        rpc_password: rpc_password.ok_or_else(|| missing("--rpc-password"))?,
        listen: listen.ok_or_else(|| missing("--listen"))?,
        alias,
        anchor_reserve_sat,
    })
}

/// Writes one protocol line on stdout and flushes it.
fn emit(line: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout means the driver is gone; the stdin loop notices and stops.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("ldk-peer: {e}");
            emit(&serde_json::json!({ "error": e }));
            return ExitCode::from(2);
        }
    };

    // ldk-node's defaults, except what a regtest peer needs: the network, where it keeps its
    // state, where it listens, an alias (without one ldk-node refuses announced channels) and
    // the per-channel anchor reserve. Anchor channels stay on, as ldk-node ships them.
    let mut config = Config {
        network: Network::Regtest,
        storage_dir_path: args.data_dir.clone(),
        ..Config::default()
    };
    config.anchor_channels_config = Some(AnchorChannelsConfig {
        per_channel_reserve_sats: args.anchor_reserve_sat,
        ..AnchorChannelsConfig::default()
    });
    let mut builder = Builder::from_config(config);
    builder.set_chain_source_bitcoind_rpc(
        args.rpc_host.clone(),
        args.rpc_port,
        args.rpc_user.clone(),
        args.rpc_password.clone(),
    );
    builder.set_gossip_source_p2p();
    // The log file in the data dir, at ldk-node's default level.
    builder.set_filesystem_logger(None, None);
    let started = builder
        .set_listening_addresses(vec![args.listen.clone()])
        .map_err(|e| format!("listening address: {e:?}"))
        .and_then(|b| {
            b.set_node_alias(args.alias.clone())
                .map_err(|e| format!("alias: {e:?}"))
        })
        .and_then(|b| {
            b.build()
                .map_err(|e| format!("building the node: {e:?}: {e}"))
        })
        .and_then(|node| {
            node.start()
                .map_err(|e| format!("starting the node: {e:?}: {e}"))
                .map(|()| node)
        });
    let node = match started {
        Ok(node) => node,
        Err(e) => {
            eprintln!("ldk-peer: {e}");
            emit(&serde_json::json!({ "error": e }));
            return ExitCode::FAILURE;
        }
    };

    let status = node.status();
    let ready = Ready {
        node_id: node.node_id().to_string(),
        listen: args.listen.to_string(),
        alias: args.alias.clone(),
        anchor_reserve_per_channel_sat: args.anchor_reserve_sat,
        best_block_height: status.current_best_block.height,
    };
    emit(&serde_json::json!({ "ready": ready }));
    eprintln!(
        "ldk-peer: node {} listening on {}",
        node.node_id(),
        args.listen
    );

    let ctx = handlers::Ctx {
        node: &node,
        anchor_reserve_sat: args.anchor_reserve_sat,
    };
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let command = match serde_json::from_str::<Command>(&line) {
            Ok(c) => c,
            Err(e) => {
                emit(&serde_json::json!({ "error": format!("bad command {line:?}: {e}") }));
                continue;
            }
        };
        let stop = matches!(command, Command::Stop {});
        let reply = match handlers::handle(&ctx, command) {
            Ok(value) => serde_json::json!({ "ok": value }),
            Err(e) => serde_json::json!({ "error": e }),
        };
        if stop {
            // Answer only once the node has stopped, so the driver can rely on it.
            if let Err(e) = node.stop() {
                eprintln!("ldk-peer: stopping: {e:?}");
            }
            emit(&reply);
            return ExitCode::SUCCESS;
        }
        emit(&reply);
    }
    eprintln!("ldk-peer: end of input, stopping");
    if let Err(e) = node.stop() {
        eprintln!("ldk-peer: stopping: {e:?}");
    }
    ExitCode::SUCCESS
}
