//! `micronode cli`: a client of a running node's gRPC API.
//!
//! It sends a capability token (`--token` / `MICRONODE_TOKEN`, for a node initialised with
//! tokens) or else the node's API cookie as `authorization: Bearer <token>` on every call, and prints each result as aligned `key: value` lines or a table (or, with `--json`, one
//! JSON document per result and one JSON line per event). A failed call prints its gRPC code,
//! the `x-micronode-error` code and the message, and the process exits non-zero.

pub(crate) mod app;
#[cfg(test)]
mod e2e;
mod pairing;
mod render;
mod token;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use micronode_proto::v1::lightning_client::LightningClient;
use micronode_proto::v1::tokens_client::TokensClient;
use micronode_proto::v1::{self, send_onchain_request::Amount};
use micronode_proto::{ErrorCode, AUTHORIZATION_METADATA};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use self::render::{Balance, Done, Render};

/// The API address `micronode node run` listens on by default.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:10010";
/// How long to wait for the API's TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Added to a payment's own timeout for the call's deadline.
const PAYMENT_DEADLINE_SLACK: Duration = Duration::from_secs(15);
/// How often to ping the server on an open connection.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// The largest response accepted (a long payment history is the largest one).
const MAX_RESPONSE_SIZE: usize = 64 * 1024 * 1024;
/// The deadline of calls that do not wait for anything in particular.
const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// Options of `micronode cli`.
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// The node's gRPC API.
    #[arg(long, env = "MICRONODE_ENDPOINT", default_value = DEFAULT_ENDPOINT, global = true)]
    pub endpoint: String,
    /// The node's API cookie file [default: $MICRONODE_HOME/regtest/node/api.cookie, where
    /// MICRONODE_HOME defaults to ~/.micronode].
    #[arg(long, env = "MICRONODE_COOKIE", global = true)]
    pub cookie: Option<PathBuf>,
    /// A capability token, for a node initialised with `node init --stateless` (then the
    /// cookie is not used). Prefer the variable: flags show up in `ps`.
    #[arg(long, env = "MICRONODE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// On a host's front door, the tenant (node id) the call is for [default: the tenant
    /// the token names].
    #[arg(long, env = "MICRONODE_TENANT", global = true)]
    pub tenant: Option<String>,
    /// Print JSON: one document per result, one line per event.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// The calls `micronode cli` makes.
#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// The node's summary: id, network, chain tip, peers and channels.
    Getinfo,
    /// A fresh on-chain receive address.
    Newaddress,
    /// On-chain and Lightning balances.
    Balance,
    /// Send bitcoin on chain from the node's wallet.
    Sendonchain {
        /// The destination address.
        address: String,
        /// Satoshis to send (the fee comes on top), or `all` to empty the wallet.
        amount: String,
        /// Fee rate in sat/vB [default: the node's estimate].
        #[arg(long)]
        sat_per_vbyte: Option<u64>,
    },
    /// Connect to a peer.
    Connect {
        /// The peer as `<node id>@<host>:<port>`.
        peer: String,
    },
    /// Connected peers.
    Peers,
    /// Open a channel, funded from the on-chain wallet.
    Openchannel {
        /// The peer's node id, or `<node id>@<host>:<port>` to connect first.
        node_id: String,
        /// Channel size in satoshis.
        amount_sat: u64,
        /// Give this many millisatoshis to the peer at opening.
        #[arg(long, default_value_t = 0)]
        push_msat: u64,
        /// Announce the channel to the network [default: the node's setting].
        #[arg(long, conflicts_with = "private")]
        announce: bool,
        /// Do not announce the channel.
        #[arg(long)]
        private: bool,
    },
    /// Every channel.
    Channels,
    /// Close a channel.
    Closechannel {
        /// The channel id (hex), as `channels` shows it.
        channel_id: String,
        /// Broadcast our latest commitment instead of negotiating (funds wait for a timelock).
        #[arg(long)]
        force: bool,
    },
    /// Create a BOLT11 invoice.
    Invoice {
        /// The amount in millisatoshis, or `any` to let the payer choose.
        amount_msat: String,
        /// Shown to the payer.
        #[arg(long, short, default_value = "")]
        description: String,
        /// Seconds the invoice stays payable [default: 3600].
        #[arg(long)]
        expiry: Option<u32>,
    },
    /// Pay a BOLT11 invoice.
    Pay {
        /// The invoice.
        invoice: String,
        /// The amount in millisatoshis (required for an any-amount invoice).
        #[arg(long)]
        amount_msat: Option<u64>,
        /// The most to pay in routing fees, in millisatoshis.
        #[arg(long)]
        max_fee_msat: Option<u64>,
        /// Return at once with the pending payment instead of waiting for the outcome.
        #[arg(long)]
        no_wait: bool,
        /// Seconds to wait for the outcome [default: 60].
        #[arg(long)]
        timeout: Option<u32>,
    },
    /// Send a spontaneous (keysend) payment.
    Keysend {
        /// The recipient's node id.
        node_id: String,
        /// The amount in millisatoshis.
        amount_msat: u64,
        /// The most to pay in routing fees, in millisatoshis.
        #[arg(long)]
        max_fee_msat: Option<u64>,
        /// Return at once with the pending payment instead of waiting for the outcome.
        #[arg(long)]
        no_wait: bool,
        /// Seconds to wait for the outcome [default: 60].
        #[arg(long)]
        timeout: Option<u32>,
    },
    /// One payment, by id (the payment hash for invoices).
    Payment {
        /// The payment id (hex).
        id: String,
    },
    /// The payment history: everything oldest first, or with `--limit` one page newest first
    /// (the output ends with the cursor of the next page, for `--cursor`).
    Payments {
        /// Payments per page (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Continue from this cursor (printed after the previous page); needs `--limit`.
        #[arg(long, requires = "limit")]
        cursor: Option<String>,
    },
    /// Follow the node's events until interrupted.
    Events,
    /// Browser-wallet pairing sessions: list, revoke.
    Pairing {
        /// What to do.
        #[command(subcommand)]
        command: pairing::PairingCommand,
    },
    /// Capability tokens: bake (attenuate offline and register), list, revoke, inspect.
    Token {
        /// What to do.
        #[command(subcommand)]
        command: token::TokenCommand,
    },
}

/// `$MICRONODE_HOME` (default `~/.micronode`) `/regtest/node/api.cookie`.
pub fn default_cookie_path() -> PathBuf {
    let home = match std::env::var_os("MICRONODE_HOME") {
        Some(home) => PathBuf::from(home),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".micronode"),
    };
    home.join("regtest").join("node").join("api.cookie")
}

/// Adds the credentials (and, on a host's front door, the tenant) to every call.
#[derive(Clone)]
struct BearerToken(MetadataValue<Ascii>, Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut()
            .insert(AUTHORIZATION_METADATA, self.0.clone());
        if let Some(tenant) = &self.1 {
            req.metadata_mut()
                .insert(micronode_proto::TENANT_METADATA, tenant.clone());
        }
        Ok(req)
    }
}

type Client = LightningClient<InterceptedService<Channel, BearerToken>>;

/// Runs one client command, printing to stdout.
pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    execute(args, &mut Printer::stdout()).await
}

/// Where results go: stdout, or captured lines (for tests).
pub(crate) struct Printer {
    captured: Option<Vec<String>>,
}

impl Printer {
    /// Prints to stdout.
    pub(crate) fn stdout() -> Self {
        Printer { captured: None }
    }

    /// Keeps the lines.
    #[cfg(test)]
    pub(crate) fn capture() -> Self {
        Printer {
            captured: Some(Vec::new()),
        }
    }

    /// The lines kept so far.
    #[cfg(test)]
    pub(crate) fn lines(&self) -> &[String] {
        self.captured.as_deref().unwrap_or_default()
    }

    fn line(&mut self, text: String) {
        match &mut self.captured {
            Some(lines) => lines.push(text),
            None => println!("{text}"),
        }
    }

    fn result<R: Render>(&mut self, json: bool, result: &R) {
        if json {
            match serde_json::to_string_pretty(&result.json()) {
                Ok(text) => self.line(text),
                Err(e) => eprintln!("error: cannot encode the result as JSON: {e}"),
            }
        } else {
            self.line(result.text());
        }
    }
}

/// Runs one command; in JSON mode a failed call is also printed as a JSON document.
pub(crate) async fn execute(args: ClientArgs, out: &mut Printer) -> anyhow::Result<()> {
    let json = args.json;
    let result = dispatch(args, out).await;
    if let Err(e) = &result {
        if json {
            if let Some(failure) = e.downcast_ref::<CallFailed>() {
                out.line(failure.json().to_string());
            }
        }
    }
    result
}

async fn dispatch(args: ClientArgs, out: &mut Printer) -> anyhow::Result<()> {
    let ClientArgs {
        endpoint,
        cookie,
        token,
        tenant,
        json,
        command,
    } = args;
    let target = Target {
        endpoint,
        cookie,
        token,
        tenant,
    };
    match command {
        // Token commands reach the node only when they need it (not `inspect`, nor a bake with
        // `--no-register`).
        ClientCommand::Token { command } => token::run(&target, json, command, out).await,
        command => node_command(&target, json, command, out).await,
    }
}

/// The node and the credentials a command uses.
pub(crate) struct Target {
    endpoint: String,
    cookie: Option<PathBuf>,
    token: Option<String>,
    tenant: Option<String>,
}

async fn node_command(
    target: &Target,
    json: bool,
    command: ClientCommand,
    out: &mut Printer,
) -> anyhow::Result<()> {
    let mut client = connect(target).await?;
    match command {
        ClientCommand::Getinfo => {
            let info = call(client.get_info(request(v1::GetInfoRequest {}))).await?;
            out.result(json, &info);
        }
        ClientCommand::Newaddress => {
            let address = call(client.new_address(request(v1::NewAddressRequest {}))).await?;
            out.result(json, &address);
        }
        ClientCommand::Balance => {
            let onchain =
                call(client.onchain_balance(request(v1::OnchainBalanceRequest {}))).await?;
            let lightning =
                call(client.lightning_balance(request(v1::LightningBalanceRequest {}))).await?;
            out.result(json, &Balance { onchain, lightning });
        }
        ClientCommand::Sendonchain {
            address,
            amount,
            sat_per_vbyte,
        } => {
            let amount = if amount.eq_ignore_ascii_case("all") {
                Amount::SendAll(true)
            } else {
                Amount::AmountSat(parse_amount(&amount, "satoshis or `all`")?)
            };
            let mut req = request(v1::SendOnchainRequest {
                address: address.clone(),
                amount: Some(amount),
                sat_per_vbyte,
            });
            if let Some(app) = app::credential_of(target.token.as_deref())? {
                let sat = match amount {
                    Amount::AmountSat(sat) => Some(sat),
                    Amount::SendAll(_) => None,
                };
                app::sign_onchain_send(&app, &mut req, &address, sat)?;
            }
            let sent = call(client.send_onchain(req)).await?;
            out.result(json, &sent);
        }
        ClientCommand::Connect { peer } => {
            let (node_id, address) = parse_peer(&peer)?;
            connect_peer(&mut client, node_id.clone(), address.clone()).await?;
            out.result(json, &Done::connected(node_id, address));
        }
        ClientCommand::Peers => {
            let peers = call(client.list_peers(request(v1::ListPeersRequest {}))).await?;
            out.result(json, &peers);
        }
        ClientCommand::Openchannel {
            node_id,
            amount_sat,
            push_msat,
            announce,
            private,
        } => {
            let node_id = if node_id.contains('@') {
                let (node_id, address) = parse_peer(&node_id)?;
                connect_peer(&mut client, node_id.clone(), address).await?;
                node_id
            } else {
                node_id
            };
            let announce = match (announce, private) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let opened = call(client.open_channel(request(v1::OpenChannelRequest {
                node_id,
                amount_sat,
                push_msat,
                announce,
            })))
            .await?;
            out.result(json, &opened);
        }
        ClientCommand::Channels => {
            let channels = call(client.list_channels(request(v1::ListChannelsRequest {}))).await?;
            out.result(json, &channels);
        }
        ClientCommand::Closechannel { channel_id, force } => {
            call(client.close_channel(request(v1::CloseChannelRequest {
                channel_id: channel_id.clone(),
                force,
            })))
            .await?;
            out.result(json, &Done::closing(channel_id, force));
        }
        ClientCommand::Invoice {
            amount_msat,
            description,
            expiry,
        } => {
            let amount_msat = if amount_msat.eq_ignore_ascii_case("any") {
                None
            } else {
                Some(parse_amount(&amount_msat, "millisatoshis or `any`")?)
            };
            let invoice = call(client.create_invoice(request(v1::CreateInvoiceRequest {
                description_hash: None,
                amount_msat,
                description,
                expiry_secs: expiry,
            })))
            .await?;
            out.result(json, &invoice);
        }
        ClientCommand::Pay {
            invoice,
            amount_msat,
            max_fee_msat,
            no_wait,
            timeout,
        } => {
            let app = app::credential_of(target.token.as_deref())?;
            let mut req = request(v1::PayInvoiceRequest {
                invoice: invoice.clone(),
                amount_msat,
                max_fee_msat,
                wait: !no_wait,
                timeout_secs: timeout,
            });
            req.set_timeout(payment_deadline(timeout));
            if let Some(app) = &app {
                app::sign_invoice_payment(app, &mut req, &invoice, amount_msat)?;
            }
            let payment = call(client.pay_invoice(req)).await?;
            print_payment_outcome(out, json, &payment)?;
        }
        ClientCommand::Keysend {
            node_id,
            amount_msat,
            max_fee_msat,
            no_wait,
            timeout,
        } => {
            let app = app::credential_of(target.token.as_deref())?;
            let mut req = request(v1::KeysendRequest {
                preimage: None,
                node_id: node_id.clone(),
                amount_msat,
                max_fee_msat,
                wait: !no_wait,
                timeout_secs: timeout,
            });
            req.set_timeout(payment_deadline(timeout));
            if let Some(app) = &app {
                app::sign_keysend(app, &mut req, &node_id, amount_msat)?;
            }
            let payment = call(client.keysend(req)).await?;
            print_payment_outcome(out, json, &payment)?;
        }
        ClientCommand::Payment { id } => {
            let payment = call(client.get_payment(request(v1::GetPaymentRequest {
                id,
                direction: None,
            })))
            .await?;
            out.result(json, &payment);
        }
        ClientCommand::Payments { limit, cursor } => {
            let payments = call(client.list_payments(request(v1::ListPaymentsRequest {
                page_size: limit,
                cursor,
            })))
            .await?;
            out.result(json, &payments);
        }
        ClientCommand::Events => {
            // No deadline: the stream lasts until the node shuts down or we are interrupted.
            let mut events =
                call(client.subscribe_events(tonic::Request::new(v1::SubscribeEventsRequest {})))
                    .await?;
            while let Some(event) = events.message().await.map_err(CallFailed::from)? {
                if json {
                    out.line(event.json().to_string());
                } else {
                    out.line(event.text());
                }
            }
            if !json {
                eprintln!("the node closed the event stream");
            }
        }
        ClientCommand::Token { command } => token::run(target, json, command, out).await?,
        ClientCommand::Pairing { command } => pairing::run(&mut client, json, command, out).await?,
    }
    Ok(())
}

/// The credentials to send: the capability token if one was given, else the cookie's token.
fn credentials(args: &Target) -> anyhow::Result<BearerToken> {
    let token = match &args.token {
        Some(token) => app::bearer_of(token)?,
        None => {
            let cookie = args.cookie.clone().unwrap_or_else(default_cookie_path);
            micronode_api::read_cookie(&cookie).context(
                "cannot read the node's API cookie (is the node running? pass --cookie or set \
                 MICRONODE_COOKIE, or --token for a node that uses capability tokens)",
            )?
        }
    };
    let value = micronode_api::bearer(&token)
        .parse::<MetadataValue<Ascii>>()
        .context("the token is not valid metadata")?;
    let tenant = args
        .tenant
        .as_deref()
        .map(|t| t.parse::<MetadataValue<Ascii>>())
        .transpose()
        .context("the tenant is not valid metadata")?;
    Ok(BearerToken(value, tenant))
}

/// Connects to the API with the credentials of `args`.
async fn connect(args: &Target) -> anyhow::Result<Client> {
    let credentials = credentials(args)?;
    Ok(
        LightningClient::with_interceptor(channel(args).await?, credentials)
            .max_decoding_message_size(MAX_RESPONSE_SIZE),
    )
}

/// Connects to the token management service with the credentials of `args`.
async fn connect_tokens(
    args: &Target,
) -> anyhow::Result<TokensClient<InterceptedService<Channel, BearerToken>>> {
    let credentials = credentials(args)?;
    Ok(TokensClient::with_interceptor(
        channel(args).await?,
        credentials,
    ))
}

/// The connection to the node's API.
async fn channel(args: &Target) -> anyhow::Result<Channel> {
    let endpoint = if args.endpoint.contains("://") {
        args.endpoint.clone()
    } else {
        format!("http://{}", args.endpoint)
    };
    let channel = Endpoint::from_shared(endpoint.clone())
        .with_context(|| format!("{endpoint:?} is not a valid endpoint"))?
        .connect_timeout(CONNECT_TIMEOUT)
        // Notices a vanished server while `events` waits.
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .connect()
        .await
        .with_context(|| format!("cannot connect to the node's API at {endpoint}"))?;
    Ok(channel)
}

/// A request with the default deadline.
fn request<T>(message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.set_timeout(CALL_DEADLINE);
    req
}

/// The deadline of a payment call: its own timeout and some slack.
fn payment_deadline(timeout_secs: Option<u32>) -> Duration {
    Duration::from_secs(u64::from(timeout_secs.unwrap_or(60))) + PAYMENT_DEADLINE_SLACK
}

async fn connect_peer(client: &mut Client, node_id: String, address: String) -> anyhow::Result<()> {
    call(client.connect_peer(request(v1::ConnectPeerRequest { node_id, address }))).await?;
    Ok(())
}

/// Awaits a call and unwraps its response; a failure becomes a [`CallFailed`].
async fn call<T>(
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CallFailed> {
    fut.await
        .map(tonic::Response::into_inner)
        .map_err(CallFailed::from)
}

/// Prints a payment; a failed one also makes the command fail.
fn print_payment_outcome(
    out: &mut Printer,
    json: bool,
    payment: &v1::Payment,
) -> anyhow::Result<()> {
    out.result(json, payment);
    if payment.status() == v1::PaymentStatus::Failed {
        bail!(
            "payment failed: {}",
            payment
                .failure_reason
                .as_deref()
                .unwrap_or("no reason given")
        );
    }
    Ok(())
}

/// A whole number, with `_` or `,` allowed as separators.
fn parse_amount(text: &str, what: &str) -> anyhow::Result<u64> {
    let digits: String = text.chars().filter(|c| !matches!(c, '_' | ',')).collect();
    digits
        .parse()
        .map_err(|_| anyhow!("{text:?} is not an amount: expected {what}"))
}

/// Splits `<node id>@<host>:<port>`.
fn parse_peer(peer: &str) -> anyhow::Result<(String, String)> {
    match peer.split_once('@') {
        Some((node_id, address)) if !node_id.is_empty() && !address.is_empty() => {
            Ok((node_id.to_string(), address.to_string()))
        }
        _ => bail!("{peer:?} is not a peer: expected <node id>@<host>:<port>"),
    }
}

/// A failed call: its gRPC code, its `x-micronode-error` code if any, and its message.
#[derive(Debug)]
pub struct CallFailed {
    /// The gRPC code.
    pub code: tonic::Code,
    /// The API's machine-readable code, if the server gave one.
    pub error: Option<ErrorCode>,
    /// The message.
    pub message: String,
}

impl From<tonic::Status> for CallFailed {
    fn from(status: tonic::Status) -> Self {
        CallFailed {
            code: status.code(),
            error: ErrorCode::of_status(&status),
            message: status.message().to_string(),
        }
    }
}

impl CallFailed {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "grpc_code": grpc_code_name(self.code),
                "code": self.error.map(ErrorCode::as_str),
                "message": self.message,
            }
        })
    }
}

impl std::fmt::Display for CallFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", grpc_code_name(self.code))?;
        if let Some(error) = self.error {
            write!(f, " [{error}]")?;
        }
        let message = if self.message.is_empty() {
            self.code.description()
        } else {
            &self.message
        };
        write!(f, ": {message}")
    }
}

impl std::error::Error for CallFailed {}

/// The canonical name of a gRPC code, e.g. `NOT_FOUND`.
fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: ClientArgs,
    }

    #[test]
    fn parses_commands_and_global_flags() {
        let cli = Cli::try_parse_from([
            "cli",
            "--endpoint",
            "http://127.0.0.1:1",
            "pay",
            "lnbcrt1x",
            "--no-wait",
            "--max-fee-msat",
            "10",
            "--json",
        ])
        .expect("parse");
        assert!(cli.args.json);
        assert_eq!(cli.args.endpoint, "http://127.0.0.1:1");
        assert!(matches!(
            cli.args.command,
            ClientCommand::Pay {
                no_wait: true,
                max_fee_msat: Some(10),
                ..
            }
        ));
        let cli = Cli::try_parse_from(["cli", "invoice", "any", "-d", "tea"]).expect("parse");
        assert!(matches!(cli.args.command, ClientCommand::Invoice { .. }));
        assert!(Cli::try_parse_from([
            "cli",
            "openchannel",
            "02ab",
            "1000",
            "--announce",
            "--private"
        ])
        .is_err());
        for command in [
            "getinfo",
            "newaddress",
            "balance",
            "peers",
            "channels",
            "payments",
            "events",
        ] {
            Cli::try_parse_from(["cli", command]).expect(command);
        }
    }

    #[test]
    fn parses_amounts_and_peers() {
        assert_eq!(parse_amount("1_000,000", "x").expect("amount"), 1_000_000);
        assert!(parse_amount("-1", "x").is_err());
        assert!(parse_amount("1.5", "x").is_err());
        assert_eq!(
            parse_peer("02ab@127.0.0.1:9735").expect("peer"),
            ("02ab".to_string(), "127.0.0.1:9735".to_string())
        );
        assert!(parse_peer("02ab").is_err());
        assert!(parse_peer("@host:1").is_err());
    }

    #[test]
    fn failures_show_both_codes() {
        let status = ErrorCode::UnknownPeer.status("unknown peer: 02ab is not connected");
        let failed = CallFailed::from(status);
        assert_eq!(
            failed.to_string(),
            "NOT_FOUND [UNKNOWN_PEER]: unknown peer: 02ab is not connected"
        );
        assert_eq!(failed.json()["error"]["code"], "UNKNOWN_PEER");
        let bare = CallFailed::from(tonic::Status::unavailable("tcp connect error"));
        assert_eq!(bare.to_string(), "UNAVAILABLE: tcp connect error");
        assert!(bare.json()["error"]["code"].is_null());
    }

    #[test]
    fn default_cookie_lives_under_micronode_home() {
        let path = default_cookie_path();
        assert!(
            path.ends_with("regtest/node/api.cookie"),
            "{}",
            path.display()
        );
    }
}
