//! The host at scale: `micronode host run` (its own process) with N tenants provisioned through
//! its admin API, the first few of them with a validating signer attached (run in this
//! process, each on its own runtime thread, dialling over real loopback links).
//!
//! For each N it reports, from the host process alone:
//! - the provisioning rate (tenants created per second through the admin API);
//! - resident memory of the gateway alone, per tenant waiting for its signer, and per active
//!   idle tenant (its LDK node running, signer attached);
//! - idle CPU (share of one core over 10 s with nothing happening);
//! - bitcoind calls per second idle and per new block (the host's own counter);
//! - the time from a new block to every active tenant synced with it (p50 and max over
//!   blocks).
//!
//! Run: `cargo bench -p micronode --bench host_scale` (env: BENCH_TENANTS, a comma-separated
//! list of host sizes [10,100]; BENCH_ACTIVE, tenants with a signer per host [10];
//! BENCH_BLOCKS, blocks timed per host [10]).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use micronode_link::PairingCode;
use micronode_proto::v1::admin_client::AdminClient;
use micronode_proto::v1::{CreateTenantRequest, ListTenantsRequest, TenantState};
use micronode_testenv::nodes::Env;

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// `micronode host run` on the test bitcoind, and its `host_ready` line.
struct HostChild {
    child: Child,
    ready: serde_json::Value,
}

impl HostChild {
    fn start(env: &Env, dir: &std::path::Path) -> HostChild {
        std::fs::create_dir_all(dir).expect("host dir");
        let log = std::fs::File::create(dir.with_extension("log")).expect("log");
        let mut child = env
            .bitcoind
            .point_daemon(
                Command::new(env!("CARGO_BIN_EXE_micronode"))
                    .args(["host", "run", "--network", "regtest", "--data-dir"])
                    .arg(dir)
                    .args(["--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
                    .args(["--admin-listen", "127.0.0.1:0"])
                    .args(["--metrics-listen", "127.0.0.1:0"])
                    .args(["--poll-interval-ms", "100", "--min-confirmations", "1"])
                    .args(["--tenant-api-rate", "0"]),
            )
            .env("MICRONODE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn the host");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = loop {
            let line = lines
                .next()
                .expect("the host printed host_ready")
                .expect("line");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["event"] == "host_ready" {
                    break v;
                }
            }
        };
        HostChild { child, ready }
    }

    fn field(&self, name: &str) -> String {
        self.ready[name].as_str().expect(name).to_string()
    }

    /// Resident memory (KiB), from /proc.
    fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }

    /// CPU time used so far (user + system, in clock ticks), from /proc.
    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("stat");
        // The fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    }

    /// One scrape of `/metrics`.
    fn metrics(&self) -> String {
        let mut stream =
            std::net::TcpStream::connect(self.field("metrics_listen")).expect("metrics");
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
            .expect("request");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("response");
        text
    }

    fn metric(&self, name: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Whether every tenant's node is at the chain's tip.
    fn all_synced(&self, tenants: usize) -> bool {
        let text = self.metrics();
        let synced = text
            .lines()
            .filter(|l| l.starts_with("micronode_tenant_block_lag{") && l.ends_with(" 0"))
            .count();
        synced >= tenants
    }
}

impl Drop for HostChild {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Admin = AdminClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>,
    >,
>;

async fn admin(host: &HostChild, dir: &std::path::Path) -> Admin {
    let cookie = micronode_api::read_cookie(dir.join("admin.cookie")).expect("cookie");
    let auth: tonic::metadata::MetadataValue<_> =
        micronode_api::bearer(&cookie).parse().expect("bearer");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", host.field("admin_listen")))
            .expect("endpoint")
            .connect()
            .await
            .expect("admin");
    AdminClient::with_interceptor(
        channel,
        Box::new(move |mut req: tonic::Request<()>| {
            req.metadata_mut()
                .insert(micronode_proto::AUTHORIZATION_METADATA, auth.clone());
            Ok(req)
        }),
    )
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

async fn measure(env: &Env, tenants: usize, active: usize, blocks: usize) {
    let dir = env.dir.0.join(format!("host-{tenants}"));
    let host = HostChild::start(env, &dir);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gateway_kib = host.rss_kib() as f64;
    let mut admin = admin(&host, &dir).await;

    // --- Provisioning.
    let started = Instant::now();
    let mut enrolments = Vec::new();
    for i in 0..tenants {
        let enrolment = admin
            .create_tenant(CreateTenantRequest {
                name: format!("tenant-{i}"),
            })
            .await
            .expect("create")
            .into_inner();
        enrolments.push(enrolment);
    }
    let provisioning = tenants as f64 / started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting_kib = host.rss_kib() as f64;

    // --- Signers for the first `active` tenants; each tenant's node starts when its signer
    // has paired.
    let active = active.min(tenants);
    let started = Instant::now();
    for (i, enrolment) in enrolments.iter().take(active).enumerate() {
        let signer_dir = env.dir.0.join(format!("signer-{tenants}-{i}"));
        let engine = Arc::new(common::bench_signer(&signer_dir, false));
        let tenant = enrolment.tenant.as_ref().expect("tenant");
        let code = PairingCode::parse(&enrolment.pairing_code).expect("code");
        common::spawn_signer(
            env,
            engine,
            signer_dir,
            tenant.signer_address.clone(),
            Some(code),
            1,
        );
    }
    loop {
        let listed = admin
            .list_tenants(ListTenantsRequest {})
            .await
            .expect("list")
            .into_inner();
        let running = listed
            .tenants
            .iter()
            .filter(|t| t.state == TenantState::Active as i32)
            .count();
        if running >= active {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{running} of {active} tenants active"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attach = started.elapsed();
    while !host.all_synced(active) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let active_kib = host.rss_kib() as f64;

    // --- Idle: CPU and bitcoind calls over 10 s with nothing happening.
    let (ticks, calls) = (
        host.cpu_ticks(),
        host.metric("micronode_bitcoind_calls_total"),
    );
    let idle = Duration::from_secs(10);
    tokio::time::sleep(idle).await;
    // SAFETY: sysconf is always safe to call.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let idle_cpu = (host.cpu_ticks() - ticks) as f64 / hz / idle.as_secs_f64();
    let idle_calls = (host.metric("micronode_bitcoind_calls_total") - calls) / idle.as_secs_f64();

    // --- Blocks: calls per block, and the time to every active tenant synced.
    let mut synced_ms = Vec::new();
    let calls = host.metric("micronode_bitcoind_calls_total");
    let blocks_started = Instant::now();
    for _ in 0..blocks {
        let tip = host.metric("micronode_chain_tip_height");
        let mined = Instant::now();
        env.bitcoind.mine(1).await.expect("mine");
        // The tip moves first (the host's feed), then each tenant catches up.
        while host.metric("micronode_chain_tip_height") <= tip {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        while !host.all_synced(active) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        synced_ms.push(mined.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let block_calls = host.metric("micronode_bitcoind_calls_total") - calls;
    // Less the idle calls made meanwhile, so what is left is the blocks' own.
    let per_block =
        (block_calls - idle_calls * blocks_started.elapsed().as_secs_f64()) / blocks as f64;
    synced_ms.sort_by(f64::total_cmp);
    let p50 = synced_ms[synced_ms.len() / 2];
    let max = synced_ms.last().copied().unwrap_or_default();

    println!(
        "{tenants:>6} tenants ({active} active) | provisioning {provisioning:>6.1}/s | \
         gateway {:>6.1} MiB | per waiting tenant {:>6.3} MiB | per active tenant {:>6.2} MiB \
         (attach {:.1} s) | idle CPU {:>5.1} % of a core | bitcoind {:>5.1} calls/s idle, \
         {:>5.1} per block | block to all synced p50 {p50:>5.0} ms, max {max:>5.0} ms",
        mib(gateway_kib),
        mib(waiting_kib - gateway_kib) / tenants as f64,
        mib(active_kib - waiting_kib) / active.max(1) as f64,
        attach.as_secs_f64(),
        idle_cpu * 100.0,
        idle_calls,
        per_block,
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sizes = env_list("BENCH_TENANTS", &[10, 100]);
    let active = env_list("BENCH_ACTIVE", &[10])[0];
    let blocks = env_list("BENCH_BLOCKS", &[10])[0];
    let env = Env::new("bench-host").await;
    println!("host_scale: sizes {sizes:?}, {active} active tenants each, {blocks} blocks");
    for tenants in sizes {
        measure(&env, tenants, active, blocks).await;
    }
}
