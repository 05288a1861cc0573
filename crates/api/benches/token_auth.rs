//! The added cost of capability-token authorisation per API call.
//!
//! Measures, on one thread, what the API's auth guard runs before a request is decoded:
//! `Authenticator::authorize(method, metadata)` with the cookie (a constant-time compare) and
//! with a capability token of 3 blocks (the authority block and two attenuations: methods and
//! expiry, then a budget and a per-payment maximum), which is a base64 decode, 3 Ed25519
//! signature checks, a revocation lookup and a Datalog evaluation. It also measures the two
//! parts separately, and the budget reservation a metered payment adds (a SQLite transaction
//! with fsync, in the system temp directory).
//!
//! `cargo bench -p micronode-api --bench token_auth` (`BENCH_ITERATIONS` to change the count).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use micronode_api::tokens::verify::{Phase, Verifier};
use micronode_api::tokens::{attenuate, Budget, Caveats, Period};
use micronode_api::{bearer, Authenticator, CookieAuth, TokenAuthority};
use tonic::metadata::MetadataMap;

const TENANT: &str = "02aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

struct Stats {
    mean: Duration,
    p50: Duration,
    p99: Duration,
}

/// Times `f` `n` times after `n / 10` untimed runs.
fn measure(n: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..n / 10 {
        f();
    }
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    let total = start.elapsed();
    samples.sort();
    Stats {
        mean: total / u32::try_from(n).unwrap_or(u32::MAX),
        p50: samples[n / 2],
        p99: samples[n * 99 / 100],
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn row(what: &str, n: usize, s: &Stats) {
    println!(
        "| {what} | {n} | {:.2} | {:.2} | {:.2} |",
        us(s.mean),
        us(s.p50),
        us(s.p99)
    );
}

fn metadata(token: &str) -> MetadataMap {
    let mut map = MetadataMap::new();
    map.insert("authorization", bearer(token).parse().expect("ascii token"));
    map
}

fn main() {
    let n: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("micronode-bench-tokens-{}", std::process::id()));
    let _cleanup = Cleanup(dir.clone());

    let cookie = CookieAuth::create(dir.join("api.cookie")).expect("cookie");
    let cookie_md = metadata(cookie.token());

    let admin = TokenAuthority::init_stateless(&dir, TENANT).expect("init");
    let authority = TokenAuthority::open(&dir, TENANT).expect("open");
    let first = attenuate(
        &admin,
        &Caveats {
            methods: vec!["read".into(), "pay".into()],
            expires_at: Some(SystemTime::now() + Duration::from_secs(86_400)),
            ..Caveats::default()
        },
    )
    .expect("first attenuation");
    let token = attenuate(
        &first,
        &Caveats {
            budgets: vec![Budget {
                limit_sat: u64::MAX / 1_000_000,
                period: Period::Day,
            }],
            max_payment_sat: Some(1_000_000),
            ..Caveats::default()
        },
    )
    .expect("second attenuation");
    assert_eq!(
        micronode_api::tokens::inspect(&token)
            .expect("inspect")
            .blocks
            .len(),
        3
    );
    let token_md = metadata(&token);
    // Both must authorise, or the comparison is meaningless.
    cookie
        .authorize("GetInfo", &cookie_md)
        .expect("cookie authorises");
    authority
        .authorize("GetInfo", &token_md)
        .expect("token authorises");

    println!(
        "token of {} characters, 3 blocks; {n} iterations each\n",
        token.len()
    );
    println!("| step | iterations | mean µs | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|");
    let cookie_stats = measure(n * 10, || {
        black_box(
            cookie
                .authorize(black_box("GetInfo"), black_box(&cookie_md))
                .is_ok(),
        );
    });
    row("cookie: authorize", n * 10, &cookie_stats);
    let root: biscuit_auth::PublicKey = authority.root_public_key().parse().expect("root key");
    let verifier = Verifier::new(root, TENANT).expect("verifier");
    let cold_stats = measure(n, || {
        let token = verifier.verify(black_box(&token)).expect("verifies");
        black_box(
            verifier
                .authorize(&token, black_box("GetInfo"), Phase::Call)
                .is_ok(),
        );
    });
    row(
        "token (3 blocks), first sight: verify + authorize",
        n,
        &cold_stats,
    );
    let verify_stats = measure(n, || {
        black_box(biscuit_auth::Biscuit::from_base64(black_box(&token), root).is_ok());
    });
    row("  of which: parse + signature checks", n, &verify_stats);
    let token_stats = measure(n, || {
        black_box(
            authority
                .authorize(black_box("GetInfo"), black_box(&token_md))
                .is_ok(),
        );
    });
    row(
        "token (3 blocks), seen before: Authenticator::authorize (signatures cached)",
        n,
        &token_stats,
    );
    let pay_stats = measure(n / 10, || {
        let grant = authority.check("PayInvoice", &token).expect("grant");
        black_box(grant.reserve_spend(1_000, None).expect("reserve"));
    });
    row(
        "token: PayInvoice authorize + budget reservation (SQLite, fsync)",
        n / 10,
        &pay_stats,
    );
    println!(
        "\nadded cost of a token over the cookie per call (mean / p50): first sight {:.1} / {:.1} µs, seen before {:.1} / {:.1} µs",
        us(cold_stats.mean.saturating_sub(cookie_stats.mean)),
        us(cold_stats.p50.saturating_sub(cookie_stats.p50)),
        us(token_stats.mean.saturating_sub(cookie_stats.mean)),
        us(token_stats.p50.saturating_sub(cookie_stats.p50))
    );
}

struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
