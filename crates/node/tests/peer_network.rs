//! Lightning P2P through a SOCKS5 proxy (as through Tor), and a listener that takes peers
//! only from its allow-list. The proxy is a minimal SOCKS5 server (RFC 1928, no
//! authentication, CONNECT only) on loopback that records where it connected.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use micronode_node::edge::IpAllowList;
use micronode_node::NodeError;
use micronode_testenv::nodes::Env;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A SOCKS5 proxy on loopback; the addresses it has connected to.
struct Socks5Proxy {
    addr: SocketAddr,
    connected: Arc<Mutex<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Socks5Proxy {
    async fn start() -> Socks5Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connected = Arc::new(Mutex::new(Vec::new()));
        let log = connected.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    if let Err(e) = relay(client, log).await {
                        eprintln!("proxy: {e}");
                    }
                });
            }
        });
        Socks5Proxy {
            addr,
            connected,
            task,
        }
    }

    fn connected(&self) -> Vec<SocketAddr> {
        self.connected.lock().unwrap().clone()
    }
}

impl Drop for Socks5Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client: greeting, CONNECT, then bytes both ways.
async fn relay(mut client: TcpStream, log: Arc<Mutex<Vec<SocketAddr>>>) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await?;
    assert_eq!(head[0], 5, "SOCKS version 5");
    assert!(methods.contains(&0), "no authentication offered");
    client.write_all(&[5, 0]).await?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    assert_eq!(request[..3], [5, 1, 0], "a CONNECT request");
    let target = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            SocketAddr::new(Ipv4Addr::from(ip).into(), client.read_u16().await?)
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            SocketAddr::new(Ipv6Addr::from(ip).into(), client.read_u16().await?)
        }
        other => panic!("address type {other} is not used by the node"),
    };
    log.lock().unwrap().push(target);
    let mut upstream = TcpStream::connect(target).await?;
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_through_socks5_and_an_allow_list() {
    let env = Env::new("peer-network").await;
    let proxy = Socks5Proxy::start().await;
    let peer = env.start_node("peer").await;
    let peer_addr = peer.listen_addr().expect("listens");

    // --- Through the proxy: it connects to the peer for the node, the peer knows the node.
    let mut config = env.node_config("proxied");
    config.peer_network.socks5_proxy = Some(proxy.addr);
    let proxied = env.start_node_with(config).await;
    proxied
        .connect_peer(peer.node_id(), peer_addr)
        .await
        .expect("connected through the proxy");
    assert_eq!(proxy.connected(), vec![peer_addr]);
    assert!(peer
        .list_peers()
        .iter()
        .any(|p| p.node_id == proxied.node_id().to_string()));

    // --- The proxy down: no connection, and never a direct one.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let mut config = env.node_config("proxy-down");
    config.peer_network.socks5_proxy = Some(closed);
    let stranded = env.start_node_with(config).await;
    let refused = stranded
        .connect_peer(peer.node_id(), peer_addr)
        .await
        .expect_err("no proxy, no connection");
    assert!(matches!(refused, NodeError::Connection(_)), "{refused:?}");
    assert!(!peer
        .list_peers()
        .iter()
        .any(|p| p.node_id == stranded.node_id().to_string()));

    // --- A listener whose allow-list leaves loopback out refuses the peer; one that lists
    // it takes the peer.
    let mut config = env.node_config("guarded");
    config.peer_network.inbound_allow = IpAllowList::parse(&["10.0.0.0/8"]).expect("list");
    let guarded = env.start_node_with(config).await;
    let refused = peer
        .connect_peer(guarded.node_id(), guarded.listen_addr().expect("listens"))
        .await
        .expect_err("loopback is not in the allow-list");
    assert!(matches!(refused, NodeError::Connection(_)), "{refused:?}");
    assert!(guarded.list_peers().is_empty());
    let mut config = env.node_config("open");
    config.peer_network.inbound_allow =
        IpAllowList::parse(&["127.0.0.0/8", "10.0.0.0/8"]).expect("list");
    let open = env.start_node_with(config).await;
    peer.connect_peer(open.node_id(), open.listen_addr().expect("listens"))
        .await
        .expect("loopback is in the allow-list");
    assert_eq!(open.list_peers().len(), 1);
}
