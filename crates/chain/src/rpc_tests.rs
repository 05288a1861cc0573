//! Unit tests of the bitcoind RPC client (no bitcoind needed).
use super::*;
use tokio::io::AsyncReadExt;

fn client(port: u16) -> BitcoindRpc {
    let auth = RpcAuth::UserPass {
        user: "u".into(),
        pass: "p".into(),
    };
    BitcoindRpc::new("127.0.0.1", port, auth).expect("user/pass never fails")
}

/// Serves an HTTP response with `status` and `body` to every connection, after reading the
/// request head.
async fn serve(status: &str, body: &str) -> u16 {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    port
}

#[test]
fn is_send_sync_and_a_utxo_source() {
    fn check<T: Send + Sync + Clone + UtxoSource>() {}
    check::<BitcoindRpc>();
}

#[test]
fn wallet_names_are_percent_encoded() {
    assert_eq!(percent_encode("testenv"), "testenv");
    assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    assert_eq!(
        client(1).with_wallet("w 1").url(),
        "http://127.0.0.1:1/wallet/w%201"
    );
}

#[test]
fn already_known_errors() {
    assert!(is_already_known(
        -27,
        "Transaction outputs already in utxo set"
    ));
    assert!(is_already_known(-26, "txn-already-known"));
    assert!(!is_already_known(-26, "min relay fee not met"));
    assert!(!is_already_known(-25, "bad-txns-inputs-missingorspent"));
}

#[tokio::test]
async fn empty_401_is_auth() {
    let port = serve("401 Unauthorized", "").await;
    let rpc = client(port);
    let err = rpc.get_block_count().await.unwrap_err();
    assert!(matches!(err, RpcError::Auth), "{err:?}");
    assert_eq!(rpc.call_count("getblockcount"), 1);
    assert_eq!(rpc.total_calls(), 1);
}

#[tokio::test]
async fn json_rpc_error_is_rpc() {
    let body = r#"{"result":null,"error":{"code":-8,"message":"no"}}"#;
    let port = serve("500 Internal Server Error", body).await;
    let err = client(port).get_block_hash(7).await.unwrap_err();
    assert!(
        matches!(err, RpcError::Rpc { code: -8, ref message } if message == "no"),
        "{err:?}"
    );
}

#[tokio::test]
async fn garbage_is_decode_not_panic() {
    let port = serve("200 OK", "hello").await;
    let err = client(port).get_best_block_hash().await.unwrap_err();
    assert!(matches!(err, RpcError::Decode { .. }), "{err:?}");
    let port = serve("200 OK", r#"{"result":42,"error":null}"#).await;
    let err = client(port).get_best_block_hash().await.unwrap_err();
    assert!(matches!(err, RpcError::Decode { ref method, .. } if method == "getbestblockhash"));
}

#[tokio::test]
async fn missing_cookie_is_an_error() {
    let err = BitcoindRpc::new(
        "127.0.0.1",
        1,
        RpcAuth::CookieFile("/nonexistent/.cookie".into()),
    )
    .unwrap_err();
    assert!(matches!(err, RpcError::Cookie { .. }), "{err:?}");
}
