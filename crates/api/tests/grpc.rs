//! The gRPC API end to end: a real node on a real regtest bitcoind, served on 127.0.0.1:0 and
//! called with the generated client. Covers authentication, the error mapping (gRPC code plus
//! `x-micronode-error`), the RPCs a node without channels can answer, an event stream, garbage
//! on the wire, and a graceful shutdown with a subscriber attached.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_error, Api, Env, TIMEOUT};
use micronode_api::{read_cookie, ApiError, CookieAuth, ServeOptions};
use micronode_proto::v1::send_onchain_request::Amount;
use micronode_proto::v1::{self, event::Event as Ev};
use micronode_proto::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

fn unknown_node_id() -> String {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let key = bitcoin::secp256k1::SecretKey::from_slice(&[7u8; 32]).expect("key");
    bitcoin::secp256k1::PublicKey::from_secret_key(&secp, &key).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_needs_the_cookie_token() {
    let env = Env::new("auth").await;
    let node = Arc::new(env.start_node("a").await);
    let api = Api::serve(&env, node.clone(), "a").await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&api.cookie)
            .expect("cookie written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the cookie is private");
    }

    let mut client = api.client().await;
    let info = client
        .get_info(v1::GetInfoRequest {})
        .await
        .expect("get_info with the cookie")
        .into_inner();
    assert_eq!(info.node_id, node.node_id().to_string());
    assert_eq!(info.network, "regtest");
    assert_eq!(info.alias, "a");
    assert!(info.listen_addr.is_some());

    let mut anonymous = api.client_with(None).await;
    assert_error(
        anonymous.get_info(v1::GetInfoRequest {}).await,
        Code::Unauthenticated,
        ErrorCode::Unauthenticated,
    );
    assert_error(
        anonymous.new_address(v1::NewAddressRequest {}).await,
        Code::Unauthenticated,
        ErrorCode::Unauthenticated,
    );
    assert_error(
        anonymous
            .subscribe_events(v1::SubscribeEventsRequest {})
            .await,
        Code::Unauthenticated,
        ErrorCode::Unauthenticated,
    );

    let token = read_cookie(&api.cookie).expect("cookie");
    let wrong = format!(
        "{}{}",
        if token.starts_with('0') { "1" } else { "0" },
        &token[1..]
    );
    let mut impostor = api.client_with(Some(&wrong)).await;
    assert_error(
        impostor.get_info(v1::GetInfoRequest {}).await,
        Code::Unauthenticated,
        ErrorCode::Unauthenticated,
    );
    let mut garbled = api.client_with(Some("not-a-token")).await;
    assert_error(
        garbled
            .list_payments(v1::ListPaymentsRequest::default())
            .await,
        Code::Unauthenticated,
        ErrorCode::Unauthenticated,
    );

    // A new cookie (as on a restart) replaces the old token.
    let other_cookie = env.dir.0.join("other.cookie");
    let other = CookieAuth::create(&other_cookie).expect("cookie");
    assert_ne!(other.token(), token);

    // The address is taken: serve says so instead of failing later.
    let taken = micronode_api::serve(
        node.clone(),
        api.addr,
        Arc::new(other),
        std::future::pending(),
    )
    .await;
    assert!(matches!(taken, Err(ApiError::Bind { .. })), "{taken:?}");

    // Still serving.
    client
        .get_info(v1::GetInfoRequest {})
        .await
        .expect("get_info again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_answer_and_errors_carry_codes() {
    let env = Env::new("rpcs").await;
    let a = Arc::new(env.start_node("a").await);
    let b = Arc::new(env.start_node("b").await);
    env.fund(&a, 500_000).await;
    let api = Api::serve(&env, a.clone(), "a").await;
    let mut c = api.client().await;

    // --- On chain.
    let balance = c
        .onchain_balance(v1::OnchainBalanceRequest {})
        .await
        .expect("balance")
        .into_inner();
    assert_eq!(balance.confirmed_sat, 500_000);
    assert_eq!(balance.total_sat, 500_000);
    let address = c
        .new_address(v1::NewAddressRequest {})
        .await
        .expect("address")
        .into_inner()
        .address;
    assert!(address.starts_with("bcrt1"), "{address}");
    let send = |amount: Option<Amount>, address: &str, fee: Option<u64>| v1::SendOnchainRequest {
        address: address.to_string(),
        amount,
        sat_per_vbyte: fee,
    };
    assert_error(
        c.send_onchain(send(Some(Amount::AmountSat(10_000_000)), &address, None))
            .await,
        Code::FailedPrecondition,
        ErrorCode::InsufficientFunds,
    );
    for bad in [
        send(None, &address, None),
        send(Some(Amount::SendAll(false)), &address, None),
        send(Some(Amount::AmountSat(0)), &address, None),
        send(Some(Amount::AmountSat(u64::MAX)), &address, None),
        send(Some(Amount::AmountSat(10_000)), "", None),
        send(Some(Amount::AmountSat(10_000)), "not an address", None),
        send(
            Some(Amount::AmountSat(10_000)),
            // A mainnet address: the wrong network.
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            None,
        ),
        send(Some(Amount::AmountSat(10_000)), &address, Some(0)),
        send(Some(Amount::AmountSat(10_000)), &address, Some(1_000_000)),
    ] {
        assert_error(
            c.send_onchain(bad).await,
            Code::InvalidArgument,
            ErrorCode::InvalidInput,
        );
    }
    let sent = c
        .send_onchain(send(Some(Amount::AmountSat(20_000)), &address, Some(2)))
        .await
        .expect("send on chain")
        .into_inner();
    assert_eq!(sent.txid.len(), 64);
    env.mine(1).await;

    // --- Peers.
    let b_id = b.node_id().to_string();
    let b_addr = b.listen_addr().expect("b listens").to_string();
    for (node_id, address) in [
        ("02abc", b_addr.as_str()),
        ("", b_addr.as_str()),
        (b_id.as_str(), "nowhere"),
        (b_id.as_str(), ""),
        (b_id.as_str(), "host:notaport"),
    ] {
        assert_error(
            c.connect_peer(v1::ConnectPeerRequest {
                node_id: node_id.into(),
                address: address.into(),
            })
            .await,
            Code::InvalidArgument,
            ErrorCode::InvalidInput,
        );
    }

    // --- Channels: an unknown peer, malformed fields, too much, then a real open.
    let open = |node_id: &str, amount_sat: u64, push_msat: u64| v1::OpenChannelRequest {
        node_id: node_id.into(),
        amount_sat,
        push_msat,
        announce: None,
    };
    assert_error(
        c.open_channel(open(&unknown_node_id(), 100_000, 0)).await,
        Code::NotFound,
        ErrorCode::UnknownPeer,
    );
    for bad in [
        open("zz", 100_000, 0),
        open(&"05".repeat(33), 100_000, 0),
        open(&b_id, 0, 0),
        open(&b_id, u64::MAX, 0),
        open(&b_id, 100_000, 100_000_001),
    ] {
        assert_error(
            c.open_channel(bad).await,
            Code::InvalidArgument,
            ErrorCode::InvalidInput,
        );
    }
    c.connect_peer(v1::ConnectPeerRequest {
        node_id: b_id.clone(),
        address: b_addr.clone(),
    })
    .await
    .expect("connect");
    let peers = c
        .list_peers(v1::ListPeersRequest {})
        .await
        .expect("peers")
        .into_inner()
        .peers;
    assert!(
        peers.iter().any(|p| p.node_id == b_id && !p.inbound),
        "{peers:?}"
    );
    assert_error(
        c.open_channel(open(&b_id, 5_000_000, 0)).await,
        Code::FailedPrecondition,
        ErrorCode::InsufficientFunds,
    );

    let mut events = c
        .subscribe_events(v1::SubscribeEventsRequest {})
        .await
        .expect("subscribe")
        .into_inner();
    let opened = c
        .open_channel(open(&b_id, 100_000, 0))
        .await
        .expect("open channel")
        .into_inner();
    assert_eq!(opened.temporary_channel_id.len(), 64);
    let pending = tokio::time::timeout(TIMEOUT, async {
        loop {
            let event = events.message().await.expect("stream").expect("an event");
            if let Some(Ev::ChannelPending(p)) = event.event {
                return p;
            }
        }
    })
    .await
    .expect("ChannelPending arrives on the stream");
    assert_eq!(pending.counterparty, b_id);
    let channels = c
        .list_channels(v1::ListChannelsRequest {})
        .await
        .expect("channels")
        .into_inner()
        .channels;
    assert_eq!(channels.len(), 1, "{channels:?}");
    assert_eq!(channels[0].channel_id, pending.channel_id);
    assert_eq!(channels[0].capacity_sat, 100_000);
    assert!(channels[0].is_outbound && !channels[0].is_usable);

    for bad in ["", "xyz", "abcd", &"g".repeat(64)] {
        assert_error(
            c.close_channel(v1::CloseChannelRequest {
                channel_id: bad.into(),
                force: false,
            })
            .await,
            Code::InvalidArgument,
            ErrorCode::InvalidInput,
        );
    }
    assert_error(
        c.close_channel(v1::CloseChannelRequest {
            channel_id: "ab".repeat(32),
            force: true,
        })
        .await,
        Code::NotFound,
        ErrorCode::UnknownChannel,
    );

    // --- Invoices and payments.
    let invoice = c
        .create_invoice(v1::CreateInvoiceRequest {
            description_hash: None,
            amount_msat: Some(10_000),
            description: "coffee".into(),
            expiry_secs: None,
        })
        .await
        .expect("invoice")
        .into_inner();
    assert!(invoice.invoice.starts_with("lnbcrt"), "{}", invoice.invoice);
    // An invoice committing to a description's hash (LNURL-pay's metadata) carries the hash.
    let hashed = c
        .create_invoice(v1::CreateInvoiceRequest {
            description_hash: Some("5a".repeat(32)),
            amount_msat: Some(20_000),
            description: String::new(),
            expiry_secs: None,
        })
        .await
        .expect("an invoice with a description hash")
        .into_inner();
    let parsed: lightning_invoice::Bolt11Invoice = hashed.invoice.parse().expect("bolt11");
    match parsed.description() {
        lightning_invoice::Bolt11InvoiceDescriptionRef::Hash(h) => {
            assert_eq!(AsRef::<[u8]>::as_ref(&h.0), [0x5a; 32].as_slice())
        }
        other => panic!("the invoice carries {other:?}, not the hash"),
    }
    let payment = c
        .get_payment(v1::GetPaymentRequest {
            id: invoice.payment_hash.clone(),
            direction: None,
        })
        .await
        .expect("the invoice's payment")
        .into_inner();
    assert_eq!(payment.direction(), v1::PaymentDirection::Inbound);
    assert_eq!(payment.status(), v1::PaymentStatus::Pending);
    assert_eq!(payment.kind(), v1::PaymentKind::Bolt11);
    assert_eq!(payment.invoice.as_deref(), Some(invoice.invoice.as_str()));
    assert_error(
        c.get_payment(v1::GetPaymentRequest {
            id: invoice.payment_hash.clone(),
            direction: Some(v1::PaymentDirection::Outbound.into()),
        })
        .await,
        Code::NotFound,
        ErrorCode::UnknownPayment,
    );
    for (id, direction) in [
        ("nothex", None),
        ("", None),
        (&*invoice.payment_hash, Some(42)),
    ] {
        assert_error(
            c.get_payment(v1::GetPaymentRequest {
                id: id.into(),
                direction,
            })
            .await,
            Code::InvalidArgument,
            ErrorCode::InvalidInput,
        );
    }
    for bad in [
        v1::CreateInvoiceRequest {
            description_hash: None,
            amount_msat: Some(0),
            description: String::new(),
            expiry_secs: None,
        },
        v1::CreateInvoiceRequest {
            description_hash: None,
            amount_msat: None,
            description: String::new(),
            expiry_secs: Some(0),
        },
        v1::CreateInvoiceRequest {
            description_hash: None,
            amount_msat: None,
            description: "x".repeat(1000),
            expiry_secs: None,
        },
        v1::CreateInvoiceRequest {
            description_hash: Some("ab".repeat(31)),
            amount_msat: None,
            description: String::new(),
            expiry_secs: None,
        },
        v1::CreateInvoiceRequest {
            description_hash: Some("ab".repeat(32)),
            amount_msat: None,
            description: "both".into(),
            expiry_secs: None,
        },
    ] {
        assert_error(
            c.create_invoice(bad).await,
            Code::InvalidArgument,
            ErrorCode::InvalidInput,
        );
    }

    let pay = |invoice: &str| v1::PayInvoiceRequest {
        invoice: invoice.into(),
        amount_msat: None,
        max_fee_msat: None,
        wait: true,
        timeout_secs: Some(5),
    };
    for bad in ["lnbcrt1garbage", "", "hello", &"lnbcrt1".repeat(5000)] {
        let status = assert_error(
            c.pay_invoice(pay(bad)).await,
            Code::InvalidArgument,
            ErrorCode::InvalidInput,
        );
        assert!(status.message().len() < 400, "bounded message");
    }
    let mut zero_timeout = pay(&invoice.invoice);
    zero_timeout.timeout_secs = Some(0);
    assert_error(
        c.pay_invoice(zero_timeout).await,
        Code::InvalidArgument,
        ErrorCode::InvalidInput,
    );
    // B's invoice: the channel is not usable yet, so there is nothing to send with.
    let b_invoice = b
        .create_invoice(Some(5_000_000), "tea", 600)
        .expect("b's invoice");
    assert_error(
        c.pay_invoice(pay(&b_invoice.invoice)).await,
        Code::FailedPrecondition,
        ErrorCode::InsufficientFunds,
    );

    let keysend = |node_id: &str, amount_msat: u64| v1::KeysendRequest {
        preimage: None,
        node_id: node_id.into(),
        amount_msat,
        max_fee_msat: None,
        wait: true,
        timeout_secs: Some(5),
    };
    for bad in [
        keysend("nope", 1_000),
        keysend(&b_id, 0),
        keysend(&b_id, u64::MAX),
        v1::KeysendRequest {
            preimage: Some("ab".repeat(31)),
            ..keysend(&b_id, 1_000)
        },
    ] {
        assert_error(
            c.keysend(bad).await,
            Code::InvalidArgument,
            ErrorCode::InvalidInput,
        );
    }
    // No usable channel, so no route.
    assert_error(
        c.keysend(keysend(&b_id, 1_000)).await,
        Code::FailedPrecondition,
        ErrorCode::PaymentError,
    );

    let payments = c
        .list_payments(v1::ListPaymentsRequest::default())
        .await
        .expect("payments")
        .into_inner()
        .payments;
    assert!(payments.iter().any(|p| p.id == invoice.payment_hash));
    assert!(payments
        .iter()
        .any(|p| p.kind() == v1::PaymentKind::Keysend && p.status() == v1::PaymentStatus::Failed));

    let lightning = c
        .lightning_balance(v1::LightningBalanceRequest {})
        .await
        .expect("lightning balance")
        .into_inner();
    assert_eq!(
        lightning.claimable_sat,
        lightning.in_channels_sat + lightning.pending_on_chain_sat
    );
}

/// Reads from `stream` until the server closes it (EOF or reset); fails if it stays open.
async fn expect_closed(stream: &mut tokio::net::TcpStream, what: &str) {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server closes the connection after {what}"
    );
}

/// The `grpc-status` of a raw response: in its headers (trailers-only) or its trailers.
async fn grpc_status(response: tonic::codegen::http::Response<tonic::body::Body>) -> Option<i32> {
    use tonic::codegen::Body as _;
    let parse = |h: &tonic::codegen::http::HeaderMap| {
        h.get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    };
    if let Some(code) = parse(response.headers()) {
        return Some(code);
    }
    let mut body = response.into_body();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(trailers) = frame.ok()?.into_trailers() {
            return parse(&trailers);
        }
    }
    None
}

/// Sends one raw gRPC request (`body` is the framed message, as text) and returns its status.
async fn raw_call(api: &Api, path: &str, token: Option<&str>, body: &str) -> Option<i32> {
    use tonic::codegen::Service as _;
    let mut channel = api.channel().await;
    let mut request = tonic::codegen::http::Request::builder()
        .method("POST")
        .uri(format!("{}{path}", api.endpoint()))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        request = request.header("authorization", micronode_api::bearer(token));
    }
    let request = request
        .body(tonic::body::Body::new(body.to_string()))
        .expect("request");
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .expect("ready");
    let response = tokio::time::timeout(Duration::from_secs(10), channel.call(request))
        .await
        .expect("the server answers")
        .expect("an HTTP/2 response");
    grpc_status(response).await
}

/// A gRPC frame: flag, big-endian length, message; `declared` may lie about the length.
fn frame(compressed: bool, declared: u32, message: &str) -> String {
    let mut bytes = vec![u8::from(compressed)];
    bytes.extend_from_slice(&declared.to_be_bytes());
    bytes.extend_from_slice(message.as_bytes());
    String::from_utf8(bytes).expect("all bytes below 0x80")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_refused_and_the_server_survives() {
    let env = Env::new("garbage").await;
    let node = Arc::new(env.start_node("a").await);
    let grace = Duration::from_secs(2);
    let mut api = Api::serve_with(
        &env,
        node.clone(),
        "a",
        Some(ServeOptions {
            shutdown_grace: grace,
            ..Default::default()
        }),
    )
    .await;
    let token = read_cookie(&api.cookie).expect("cookie");
    let mut client = api.client().await;

    // Plain junk on the TCP port: not HTTP/2 at all.
    for junk in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(api.addr)
            .await
            .expect("tcp connect");
        let _ = tcp.write_all(&junk).await;
        expect_closed(&mut tcp, "junk").await;
    }
    // A connection that says nothing does not block others.
    let silent = tokio::net::TcpStream::connect(api.addr)
        .await
        .expect("tcp connect");

    // Well-formed HTTP/2, broken gRPC.
    let get_info = "/micronode.v1.Lightning/GetInfo";
    let pay = "/micronode.v1.Lightning/PayInvoice";
    let ok = frame(false, 0, "");
    assert_eq!(raw_call(&api, get_info, Some(&token), &ok).await, Some(0));
    // No credentials: refused before the body is even looked at.
    let corrupt = frame(false, 3, "\x0a\x7f\x01");
    assert_eq!(
        raw_call(&api, get_info, None, &corrupt).await,
        Some(Code::Unauthenticated as i32)
    );
    for (path, body, what) in [
        (get_info, corrupt.clone(), "a truncated protobuf field"),
        (pay, frame(false, 3, "\x0a\x7f\x01"), "a truncated string"),
        (pay, frame(false, 2, "\x0f\x01"), "a bad wire type"),
        (
            get_info,
            frame(false, 100, "\x0a\x01"),
            "a frame shorter than declared",
        ),
        (
            get_info,
            frame(true, 2, "\x0a\x00"),
            "a compressed flag without compression",
        ),
        (get_info, "\x00\x00".to_string(), "half a frame header"),
        (get_info, String::new(), "no message at all"),
        (
            "/micronode.v1.Lightning/NoSuchCall",
            ok.clone(),
            "an unknown method",
        ),
        ("/no.such.Service/Call", ok.clone(), "an unknown service"),
    ] {
        let status = raw_call(&api, path, Some(&token), &body).await;
        assert!(
            matches!(status, Some(code) if code != 0),
            "{what}: refused with a gRPC status, got {status:?}"
        );
    }

    // Larger than the decoding limit (1 MiB).
    let too_big = client
        .pay_invoice(v1::PayInvoiceRequest {
            invoice: "x".repeat(2 * 1024 * 1024),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(too_big.code(), Code::OutOfRange, "{too_big:?}");

    // The server is still there, for old and new connections.
    client
        .get_info(v1::GetInfoRequest {})
        .await
        .expect("get_info after the garbage");
    api.client()
        .await
        .get_info(v1::GetInfoRequest {})
        .await
        .expect("get_info on a new connection");

    // A graceful shutdown does not wait for an event subscriber (its stream just ends), nor
    // longer than the grace period for the silent connection, which never did its handshake.
    let mut events = client
        .subscribe_events(v1::SubscribeEventsRequest {})
        .await
        .expect("subscribe")
        .into_inner();
    let started = std::time::Instant::now();
    api.shutdown(grace + Duration::from_secs(10)).await;
    assert!(
        started.elapsed() >= grace,
        "the silent connection had its grace period"
    );
    let end = tokio::time::timeout(Duration::from_secs(5), events.message())
        .await
        .expect("the stream ends");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    assert!(
        tokio::net::TcpStream::connect(api.addr).await.is_err(),
        "no longer listening"
    );
    drop(silent);
}
