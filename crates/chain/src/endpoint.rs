//! Where a bitcoind's RPC is and how to log in, from what a user typed: used by the node's
//! config and by the tenant's signer (its own view of the chain).

use std::path::PathBuf;

use bitcoin::Network;

use crate::rpc::{BitcoindRpc, RpcAuth, RpcError};

/// Why an RPC endpoint could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The address is not `host:port`.
    #[error("bitcoind RPC address {0:?} needs host:port")]
    BadAddress(String),
    /// The port is not a number.
    #[error("bitcoind RPC port in {0:?} is not a number")]
    BadPort(String),
    /// Credentials were given in an unusable combination.
    #[error("give either a bitcoind RPC user and password, or a cookie file")]
    Credentials,
}

/// A resolved bitcoind RPC endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcEndpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// How to log in.
    pub auth: RpcAuth,
}

impl RpcEndpoint {
    /// Resolves `rpc` (`host:port`, default: loopback and the network's port) and the login:
    /// a user and password, or a cookie file (default: bitcoind's own for the network).
    pub fn resolve(
        network: Network,
        rpc: Option<&str>,
        user: Option<String>,
        password: Option<String>,
        cookie: Option<PathBuf>,
    ) -> Result<Self, EndpointError> {
        let (host, port) = match rpc {
            Some(s) => split_host_port(s)?,
            None => ("127.0.0.1".to_string(), default_rpc_port(network)),
        };
        let auth = match (user, password, cookie) {
            (Some(user), Some(pass), None) => RpcAuth::UserPass { user, pass },
            (None, None, Some(cookie)) => RpcAuth::CookieFile(cookie),
            (None, None, None) => RpcAuth::CookieFile(default_cookie(network)),
            _ => return Err(EndpointError::Credentials),
        };
        Ok(Self { host, port, auth })
    }

    /// A client for this endpoint.
    pub fn client(&self) -> Result<BitcoindRpc, RpcError> {
        BitcoindRpc::new(&self.host, self.port, self.auth.clone())
    }
}

fn default_rpc_port(network: Network) -> u16 {
    match network {
        Network::Bitcoin => 8332,
        Network::Testnet => 18332,
        Network::Testnet4 => 48332,
        Network::Signet => 38332,
        _ => 18443,
    }
}

fn default_cookie(network: Network) -> PathBuf {
    let base = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".bitcoin");
    match network {
        Network::Bitcoin => base.join(".cookie"),
        Network::Testnet => base.join("testnet3/.cookie"),
        Network::Testnet4 => base.join("testnet4/.cookie"),
        Network::Signet => base.join("signet/.cookie"),
        _ => base.join("regtest/.cookie"),
    }
}

fn split_host_port(s: &str) -> Result<(String, u16), EndpointError> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| EndpointError::BadAddress(s.to_string()))?;
    let port = port
        .parse()
        .map_err(|_| EndpointError::BadPort(s.to_string()))?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_resolve_with_defaults_and_typed_errors() {
        let e = RpcEndpoint::resolve(Network::Regtest, None, None, None, None).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 18443));
        assert!(matches!(e.auth, RpcAuth::CookieFile(p) if p.ends_with("regtest/.cookie")));
        let e = RpcEndpoint::resolve(
            Network::Bitcoin,
            Some("10.0.0.2:8339"),
            Some("u".into()),
            Some("p".into()),
            None,
        )
        .unwrap();
        assert_eq!((e.host.as_str(), e.port), ("10.0.0.2", 8339));
        assert_eq!(
            RpcEndpoint::resolve(Network::Regtest, Some("nope"), None, None, None),
            Err(EndpointError::BadAddress("nope".into()))
        );
        assert_eq!(
            RpcEndpoint::resolve(Network::Regtest, Some("h:x"), None, None, None),
            Err(EndpointError::BadPort("h:x".into()))
        );
        assert_eq!(
            RpcEndpoint::resolve(Network::Regtest, None, Some("u".into()), None, None),
            Err(EndpointError::Credentials)
        );
    }
}
