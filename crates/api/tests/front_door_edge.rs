//! The front door's edge: an allow-list that closes connections from other addresses, and a
//! limit on each address's calls over all tenants, checked before a call is routed (an empty
//! directory answers an admitted call with `UNKNOWN_TENANT`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use micronode_api::{serve_front_door, RateLimit, ServeOptions, TenantDirectory};
use micronode_node::edge::IpAllowList;
use micronode_proto::v1::lightning_client::LightningClient;
use micronode_proto::v1::GetInfoRequest;
use micronode_proto::{ErrorCode, TENANT_METADATA};
use tonic::transport::{Channel, Endpoint};

/// A client of `door` whose connection comes from `from`.
async fn client_from(door: SocketAddr, from: &str) -> Result<LightningClient<Channel>, String> {
    let from: IpAddr = from.parse().expect("ip");
    Endpoint::from_shared(format!("http://{door}"))
        .expect("endpoint")
        .local_address(Some(from))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map(LightningClient::new)
        .map_err(|e| format!("{e:?}"))
}

/// A call for a tenant the door does not have; its error code.
async fn call(client: &mut LightningClient<Channel>) -> Result<Option<ErrorCode>, tonic::Status> {
    let mut request = tonic::Request::new(GetInfoRequest {});
    request
        .metadata_mut()
        .insert(TENANT_METADATA, "02".repeat(33).parse().expect("metadata"));
    match client.get_info(request).await {
        Ok(_) => Ok(None),
        Err(status) => match ErrorCode::of_status(&status) {
            Some(code) => Ok(Some(code)),
            None => Err(status),
        },
    }
}

#[tokio::test]
async fn an_allow_list_closes_other_addresses() {
    let options = ServeOptions {
        allow: IpAllowList::parse(&["127.0.0.2"]).expect("list"),
        ..Default::default()
    };
    let (door, _task) = serve_front_door(
        TenantDirectory::new(),
        ([127, 0, 0, 1], 0).into(),
        options,
        std::future::pending(),
    )
    .await
    .expect("serve");

    let mut listed = client_from(door, "127.0.0.2").await.expect("connects");
    assert_eq!(
        call(&mut listed).await.expect("answered"),
        Some(ErrorCode::UnknownTenant)
    );

    // The connection is closed before HTTP/2 starts: the call fails in transport, with no
    // answer of the door's.
    let refused = match client_from(door, "127.0.0.1").await {
        Err(_) => true,
        Ok(mut client) => call(&mut client).await.is_err(),
    };
    assert!(refused, "127.0.0.1 is not in the allow-list");
}

#[tokio::test]
async fn each_address_is_limited_over_all_tenants() {
    let directory = TenantDirectory::new().with_ip_rate_limit(RateLimit {
        per_second: 1,
        burst: 3,
    });
    let (door, _task) = serve_front_door(
        directory,
        ([127, 0, 0, 1], 0).into(),
        ServeOptions::default(),
        std::future::pending(),
    )
    .await
    .expect("serve");

    let mut flooding = client_from(door, "127.0.0.3").await.expect("connects");
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(call(&mut flooding).await.expect("an answer of the door's"));
    }
    let limited = codes
        .iter()
        .filter(|c| **c == Some(ErrorCode::RateLimited))
        .count();
    assert!(limited >= 2, "{codes:?}");
    assert_eq!(codes[0], Some(ErrorCode::UnknownTenant), "{codes:?}");

    // Another address has its own bucket, even on a new connection from the first one's
    // neighbour.
    let mut other = client_from(door, "127.0.0.4").await.expect("connects");
    assert_eq!(
        call(&mut other).await.expect("answered"),
        Some(ErrorCode::UnknownTenant)
    );
}
