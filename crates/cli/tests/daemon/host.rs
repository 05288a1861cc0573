//! Helpers for tests of `micronode host`: the host as a child process, its admin CLI, tenants
//! provisioned through it with their signers as separate processes, and clients of its front
//! door.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use micronode_node::PaymentStatus;
use micronode_proto::v1;
use micronode_proto::v1::lightning_client::LightningClient;
use micronode_signer_protocol::AppCredential;
use micronode_testenv::nodes::{Env, TestNode, TIMEOUT};
use micronode_testenv::wait_until;
use nwc::prelude::{nip47, NostrWalletConnectOptions, NostrWalletConnectURI, NWC};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::signer::{self, SignerProcess};
use super::tenant::{node_pays_alone, outcome_mining, UNLIMITED_VELOCITY};
use super::{forward_lines, next_event};

/// The gateway's JIT opening fee for payments up to 200,000 sat (the default: 2,000 sat or
/// 1 %, whichever is more).
pub const JIT_FEE_MSAT: u64 = 2_000_000;

/// Calls per second a tenant may make at the test hosts' front door (twice that at once).
pub const TENANT_API_RATE: u32 = 20;

/// NWC requests per second a tenant's apps may make together on the test hosts.
pub const TENANT_NWC_RATE: u32 = 5;

/// A running `micronode host run`.
pub struct HostProcess {
    pub child: Child,
    pub dir: PathBuf,
    /// Its `host_ready` line.
    pub ready: serde_json::Value,
    _lines: Receiver<String>,
}

impl HostProcess {
    /// Starts a host in `dir` on the test bitcoind (its log goes to `<dir>.log`, appended),
    /// serving NWC on `nwc_relay` if given.
    pub fn start(env: &Env, dir: &Path, nwc_relay: Option<&str>) -> HostProcess {
        Self::start_with(env, dir, nwc_relay, &[])
    }

    /// A host of a fleet: its tenants in the database `db_url` under leases of 2,000 ms,
    /// sealed with the fleet key in `key_file`, its name in the leases `holder`, every
    /// tenant's channels bought from `gateway` (`<node id>@<address>`), a node of its own;
    /// `more` flags after those.
    pub fn start_fleet(
        env: &Env,
        dir: &Path,
        db_url: &str,
        key_file: &Path,
        holder: &str,
        gateway: &str,
        more: &[&str],
    ) -> HostProcess {
        let key_file = key_file.display().to_string();
        let flags = [
            "--fleet-database",
            db_url,
            "--fleet-key-file",
            &key_file,
            "--fleet-holder",
            holder,
            "--fleet-lease-ms",
            "2000",
            "--lsp",
            gateway,
        ];
        let flags: Vec<&str> = flags.iter().chain(more).copied().collect();
        Self::start_with(env, dir, None, &flags)
    }

    /// [`HostProcess::start`] with more flags.
    pub fn start_with(
        env: &Env,
        dir: &Path,
        nwc_relay: Option<&str>,
        flags: &[&str],
    ) -> HostProcess {
        std::fs::create_dir_all(dir).expect("host dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.with_extension("log"))
            .expect("host log");
        let mut child = env
            .bitcoind
            .point_daemon(
                Command::new(env!("CARGO_BIN_EXE_micronode"))
                    .args(["host", "run", "--network", "regtest"])
                    .arg("--data-dir")
                    .arg(dir)
                    .args(["--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
                    .args([
                        "--admin-listen",
                        "127.0.0.1:0",
                        "--metrics-listen",
                        "127.0.0.1:0",
                    ])
                    .args(["--tenant-api-rate", &TENANT_API_RATE.to_string()])
                    .args(["--poll-interval-ms", "100", "--min-confirmations", "1"])
                    .args(["--anchor-reserve-sat", "0"])
                    .args(
                        nwc_relay
                            .into_iter()
                            .flat_map(|relay| ["--nwc-relay", relay]),
                    )
                    .args(["--tenant-nwc-rate", &TENANT_NWC_RATE.to_string()])
                    .args(flags),
            )
            .env(
                "MICRONODE_LOG",
                std::env::var("MICRONODE_TEST_DAEMON_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn micronode host");
        let lines = forward_lines(child.stdout.take().expect("stdout"));
        let ready = next_event(&lines, "host_ready");
        HostProcess {
            child,
            dir: dir.to_path_buf(),
            ready,
            _lines: lines,
        }
    }

    fn field(&self, name: &str) -> String {
        self.ready[name].as_str().expect(name).to_string()
    }

    /// The front door's address.
    pub fn api(&self) -> String {
        self.field("api_listen")
    }

    /// The Prometheus endpoint's text.
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let addr = self.field("metrics_listen");
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect to metrics");
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    }

    /// The gateway's node id.
    pub fn gateway_id(&self) -> String {
        self.field("gateway_node_id")
    }

    /// The gateway's P2P address.
    pub fn gateway_p2p(&self) -> std::net::SocketAddr {
        self.field("gateway_p2p").parse().expect("p2p address")
    }

    /// Runs `micronode host tenant <args>`; its JSON output, or its error text.
    pub fn admin(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_micronode"))
            .args(["host", "tenant", "--host-dir"])
            .arg(&self.dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run host tenant");
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).expect("admin prints JSON"))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The admin view of one tenant.
    pub fn show(&self, tenant: &str) -> serde_json::Value {
        self.admin(&["show", tenant]).expect("show tenant")
    }

    /// SIGKILL: the host dies where it stands.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to the host.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        let done = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(done, 0, "signal {signal}");
    }

    /// SIGTERM, and waits for the host to stop.
    pub fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the host did not stop within 60 s of SIGTERM");
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tenant provisioned on a host, with its signer process and an app's credential.
pub struct HostedTenant {
    pub id: String,
    pub name: String,
    pub node_id: String,
    pub signer: SignerProcess,
    /// A token (with its app key) the tenant's signer baked.
    pub app: AppCredential,
}

/// Creates tenant `name` through the admin CLI, starts a fresh signer for it in
/// `<env>/<name>-signer` with the enrolment bundle, waits until the tenant is active, and
/// bakes an app credential.
pub async fn provision(env: &Env, host: &HostProcess, name: &str) -> HostedTenant {
    provision_dialling(env, host, name, str::to_string).await
}

/// [`provision`], the signer dialling `addresses(<the enrolment's signer address>)` (several,
/// comma-separated, for the hosts of a fleet).
pub async fn provision_dialling(
    env: &Env,
    host: &HostProcess,
    name: &str,
    addresses: impl Fn(&str) -> String,
) -> HostedTenant {
    let enrolment = host.admin(&["create", name]).expect("create tenant");
    let tenant = &enrolment["tenant"];
    let id = tenant["id"].as_str().expect("id").to_string();
    assert_eq!(tenant["state"], "waiting_for_signer", "{enrolment}");
    assert_eq!(tenant["node_id"], "", "no node id before the signer");
    let code = enrolment["pairing_code"].as_str().expect("code");
    assert!(!code.is_empty(), "a new tenant has a pairing code");
    let address = tenant["signer_address"].as_str().expect("signer address");
    let dir = env.dir.0.join(format!("{name}-signer"));
    std::fs::create_dir_all(&dir).expect("signer dir");
    signer::init(&dir);
    signer::set_policy(&dir, &node_pays_alone(Some(UNLIMITED_VELOCITY)));
    let signer = SignerProcess::start(&dir, &addresses(address), Some(code), &env.bitcoind);
    wait_until("tenant active", TIMEOUT, || async {
        host.show(&id)["state"] == "active"
    })
    .await
    .expect("the tenant becomes active once its signer pairs");
    let shown = host.show(&id);
    assert_eq!(shown["node_id"], signer.node_id.as_str());
    assert_eq!(shown["signer_connected"], true);
    let (ok, out, err) = signer::run_once(
        &dir,
        &[
            "token",
            "bake",
            "--name",
            "app",
            "--period",
            "day",
            "--budget-sat",
            "1000000",
        ],
    );
    assert!(ok, "token bake: {err}");
    let app = AppCredential::parse(out.trim()).expect("credential");
    HostedTenant {
        id,
        name: name.to_string(),
        node_id: signer.node_id.clone(),
        signer,
        app,
    }
}

/// Credentials (and optionally a tenant) on every call.
#[derive(Clone)]
pub struct Creds {
    auth: MetadataValue<Ascii>,
    tenant: Option<MetadataValue<Ascii>>,
}

impl tonic::service::Interceptor for Creds {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut()
            .insert("authorization", self.auth.clone());
        if let Some(tenant) = &self.tenant {
            req.metadata_mut()
                .insert(micronode_proto::TENANT_METADATA, tenant.clone());
        }
        Ok(req)
    }
}

/// A client of the front door.
pub type DoorClient = LightningClient<InterceptedService<Channel, Creds>>;

/// A front-door client sending `bearer` (a token or a cookie's hex) and, if given, the tenant
/// header.
pub async fn door(api: &str, bearer: &str, tenant: Option<&str>) -> DoorClient {
    let channel = Channel::from_shared(format!("http://{api}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the front door");
    let creds = Creds {
        auth: format!("Bearer {bearer}").parse().expect("metadata"),
        tenant: tenant.map(|t| t.parse().expect("metadata")),
    };
    LightningClient::with_interceptor(channel, creds)
}

/// The code a refused call carries.
pub fn code_of(status: &tonic::Status) -> Option<micronode_proto::ErrorCode> {
    micronode_proto::ErrorCode::of_status(status)
}

/// The tenant's record of the payment the payer recorded as `paid`: one outcome on both sides.
pub async fn agrees(
    client: &mut DoorClient,
    invoice: &str,
    paid: &micronode_node::PaymentRecord,
    received_msat: u64,
) {
    let (status, amount) = inbound(client, invoice).await;
    match paid.status {
        PaymentStatus::Succeeded => {
            assert_eq!(
                (status, amount),
                (v1::PaymentStatus::Succeeded as i32, Some(received_msat)),
                "paid, so received"
            );
        }
        PaymentStatus::Failed => assert_ne!(
            status,
            v1::PaymentStatus::Succeeded as i32,
            "failed for the payer, so not received"
        ),
        PaymentStatus::Pending => panic!("no outcome: {paid:?}"),
    }
}

/// Makes an invoice of `amount_msat` through the tenant's API.
pub async fn invoice(client: &mut DoorClient, amount_msat: u64) -> String {
    client
        .create_invoice(v1::CreateInvoiceRequest {
            description_hash: None,
            amount_msat: Some(amount_msat),
            description: "hosted".into(),
            expiry_secs: Some(3600),
        })
        .await
        .expect("invoice")
        .into_inner()
        .invoice
}

/// The inbound payment of `invoice` as the tenant recorded it: (status, amount).
pub async fn inbound(client: &mut DoorClient, invoice: &str) -> (i32, Option<u64>) {
    payment(client, invoice, v1::PaymentDirection::Inbound).await
}

/// A payment of `invoice` in `direction` as the tenant recorded it: (status, amount).
pub async fn payment(
    client: &mut DoorClient,
    invoice: &str,
    direction: v1::PaymentDirection,
) -> (i32, Option<u64>) {
    let parsed: lightning_invoice::Bolt11Invoice = invoice.parse().expect("invoice parses");
    let p = client
        .get_payment(v1::GetPaymentRequest {
            id: hex::encode(parsed.payment_hash()),
            direction: Some(direction as i32),
        })
        .await
        .expect("payment")
        .into_inner();
    (p.status, p.amount_msat)
}

/// A funded outside node (the payer) and a host in `<env>/host` (serving NWC on `nwc_relay`
/// if given) whose funded gateway has the payer's channel.
pub async fn payer_and_host(
    env: &Env,
    nwc_relay: Option<&str>,
) -> (TestNode, PathBuf, HostProcess) {
    let payer = env.start_node("payer").await;
    env.fund(&payer, 2_000_000).await;
    let host_dir = env.dir.0.join("host");
    let host = HostProcess::start(env, &host_dir, nwc_relay);
    fund_gateway(env, &host, 2_000_000).await;
    open_to_gateway(env, &payer, &host).await;
    (payer, host_dir, host)
}

/// The outside node reconnects to the restarted gateway (on its new port) and its channel is
/// usable again: not force-closed.
pub async fn reconnect(payer: &TestNode, host: &HostProcess) {
    let gateway: bitcoin::secp256k1::PublicKey = host.gateway_id().parse().expect("id");
    payer
        .connect_peer(gateway, host.gateway_p2p())
        .await
        .expect("reconnect");
    wait_until("payer's channel usable again", TIMEOUT, || async {
        payer.list_channels().iter().any(|c| c.is_usable)
    })
    .await
    .expect("the payer's channel survives the crash");
}

/// Funds the gateway through the front door with the operator's gateway cookie.
pub async fn fund_gateway(env: &Env, host: &HostProcess, sat: u64) {
    let cookie = std::fs::read_to_string(host.dir.join("gateway.cookie")).expect("cookie");
    let gateway_id = host.gateway_id();
    let mut gateway = door(&host.api(), cookie.trim(), Some(&gateway_id)).await;
    let address = gateway
        .new_address(v1::NewAddressRequest {})
        .await
        .expect("address")
        .into_inner()
        .address
        .parse::<bitcoin::Address<_>>()
        .expect("address")
        .assume_checked();
    env.bitcoind
        .fund_address(&address, sat)
        .await
        .expect("fund");
    env.mine(1).await;
    wait_until("gateway funded", TIMEOUT, || {
        let mut g = gateway.clone();
        async move {
            g.onchain_balance(v1::OnchainBalanceRequest {})
                .await
                .map(|b| b.into_inner().confirmed_sat >= sat)
                .unwrap_or(false)
        }
    })
    .await
    .expect("funded");
}

/// The outside node opens a channel to the gateway and waits until it is usable.
pub async fn open_to_gateway(env: &Env, payer: &TestNode, host: &HostProcess) {
    let gateway: bitcoin::secp256k1::PublicKey = host.gateway_id().parse().expect("id");
    payer
        .connect_peer(gateway, host.gateway_p2p())
        .await
        .expect("connect");
    payer
        .open_channel(gateway, 1_000_000, 0, Some(false))
        .expect("open");
    wait_until("funding in mempool", TIMEOUT, || async {
        !env.mempool().await.is_empty()
    })
    .await
    .expect("funding broadcast");
    env.mine(6).await;
    wait_until("channel usable", TIMEOUT, || async {
        payer.list_channels().iter().any(|c| c.is_usable)
    })
    .await
    .expect("usable");
}

/// An NWC app connection for `tenant`, made with `micronode nwc connect` on the tenant's
/// NWC store in the host directory; its URI.
pub fn nwc_connect(
    host: &HostProcess,
    tenant: &HostedTenant,
    relay: &str,
) -> NostrWalletConnectURI {
    let nwc_dir = host.dir.join("tenants").join(&tenant.id).join("nwc");
    NostrWalletConnectURI::parse(super::nwc_connect(&nwc_dir, relay)).expect("uri")
}

/// A client of `uri`, once the host answers it (requests are ephemeral: the host picks a new
/// connection up within a second, so the app retries like real apps do); its `get_info`.
pub async fn nwc_app(uri: &NostrWalletConnectURI) -> (NWC, nip47::GetInfoResponse) {
    for _ in 0..20 {
        let app = NWC::with_opts(
            uri.clone(),
            NostrWalletConnectOptions::new().timeout(Duration::from_secs(3)),
        );
        if let Ok(info) = app.get_info().await {
            return (app, info);
        }
        app.shutdown().await;
    }
    panic!("the host never answered the NWC app");
}

/// The NIP-47 error code of a failed NWC call.
pub fn nwc_code(e: nwc::Error) -> nip47::ErrorCode {
    match e {
        nwc::Error::NIP47(nip47::Error::ErrorCode(err)) => err.code,
        other => panic!("expected a NIP-47 error, got {other}"),
    }
}

/// What the tenant can spend in its usable channels, through its API (msat).
pub async fn spendable_msat(client: &mut DoorClient) -> u64 {
    client
        .list_channels(v1::ListChannelsRequest {})
        .await
        .expect("channels")
        .into_inner()
        .channels
        .iter()
        .filter(|c| c.is_usable)
        .map(|c| c.outbound_capacity_msat)
        .sum()
}

/// The tenant's balance in channels, through its API.
pub async fn in_channels_sat(client: &mut DoorClient) -> u64 {
    client
        .lightning_balance(v1::LightningBalanceRequest {})
        .await
        .expect("balance")
        .into_inner()
        .in_channels_sat
}

/// `payer` pays `to`'s JIT invoice of `amount_msat`; both sides record one outcome.
pub async fn first_payment(env: &Env, payer: &TestNode, to: &mut DoorClient, amount_msat: u64) {
    let invoice = invoice(to, amount_msat).await;
    let id = payer.pay_invoice(&invoice, None, None).expect("pay");
    let paid = outcome_mining(env, payer, &id).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
    assert_eq!(
        paid.fee_msat,
        Some(0),
        "the payer pays the invoice, no more"
    );
    assert_eq!(
        inbound(to, &invoice).await,
        (
            v1::PaymentStatus::Succeeded as i32,
            Some(amount_msat - JIT_FEE_MSAT)
        )
    );
}

/// Asserts the tenant has exactly one channel, usable.
pub async fn assert_one_usable_channel(client: &mut DoorClient) {
    let channels = client
        .list_channels(v1::ListChannelsRequest {})
        .await
        .expect("channels")
        .into_inner()
        .channels;
    assert_eq!(channels.len(), 1, "{channels:?}");
    assert!(channels[0].is_usable, "{channels:?}");
}

/// A fleet's gateway as a node of its own, funded and serving JIT channels, and an outside
/// payer with a private channel to it.
pub struct FleetGateway {
    pub gateway: TestNode,
    /// The gateway's events from its start (to check that no channel closed).
    pub events: tokio::sync::broadcast::Receiver<micronode_node::NodeEvent>,
    pub payer: TestNode,
    /// `<node id>@<address>`, as hosts' `--lsp` takes it.
    pub peer: String,
}

/// Starts a [`FleetGateway`].
pub async fn fleet_gateway(env: &Env) -> FleetGateway {
    let mut config = env.node_config("gateway");
    config.liquidity.lsps2_service = Some(micronode_node::Lsps2ServiceSettings::default());
    let gateway = env.start_node_with(config).await;
    let events = gateway.subscribe_events();
    env.fund(&gateway, 2_000_000).await;
    let payer = env.start_node("payer").await;
    env.fund(&payer, 2_000_000).await;
    micronode_testenv::nodes::open_channel_with(env, &payer, &gateway, 1_000_000, false).await;
    let peer = format!(
        "{}@{}",
        gateway.node_id(),
        gateway.listen_addr().expect("listens")
    );
    FleetGateway {
        gateway,
        events,
        payer,
        peer,
    }
}
