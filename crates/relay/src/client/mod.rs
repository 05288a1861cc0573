//! The client of a HashMail relay, for the node side: create and delete streams over HTTP,
//! write one with [`MailboxSender`], read one with [`MailboxReceiver`].
//!
//! The base URL is the relay's root, `http://host:port` (or `ws://`), optionally with a path
//! prefix where the relay is mounted. TLS (`https://`, `wss://`) is not supported yet: the
//! parsed URL keeps the scheme, and the websocket connector could take a TLS configuration.

mod http;
mod ws;

pub use http::{create_stream, delete_stream};
pub use ws::{MailboxReceiver, MailboxSender};

use axum::http::Uri;
use tokio::task::JoinHandle;

use crate::error::RelayError;

/// A relay's base URL, checked.
#[derive(Clone, Debug)]
pub(crate) struct RelayUrl {
    /// `host:port` as given, for the `Host` header.
    authority: String,
    /// `host:port` with the default port filled in, to connect to.
    connect_to: String,
    /// The path prefix, without a trailing `/`.
    base_path: String,
}

impl RelayUrl {
    pub(crate) fn parse(base_url: &str) -> Result<RelayUrl, RelayError> {
        let fail = |reason: &'static str| RelayError::Url {
            url: base_url.to_string(),
            reason,
        };
        let uri: Uri = base_url.parse().map_err(|_| fail("not a URL"))?;
        match uri.scheme_str() {
            Some("http" | "ws") => {}
            Some("https" | "wss") => return Err(fail("TLS (https, wss) is not supported yet")),
            _ => return Err(fail("the scheme must be http:// or ws://")),
        }
        if uri.query().is_some() {
            return Err(fail("a base URL has no query"));
        }
        let authority = uri.authority().ok_or_else(|| fail("the URL has no host"))?;
        if authority.as_str().contains('@') {
            return Err(fail("credentials in the URL are not supported"));
        }
        let port = authority.port_u16().unwrap_or(80);
        Ok(RelayUrl {
            authority: authority.as_str().to_string(),
            connect_to: format!("{}:{port}", authority.host()),
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// The path of a route under the base path.
    pub(crate) fn path(&self, route: &str) -> String {
        format!("{}{route}", self.base_path)
    }

    /// The websocket URL of a streaming route, in grpc-gateway's form (`?method=POST`).
    pub(crate) fn websocket(&self, route: &str) -> String {
        format!("ws://{}{}?method=POST", self.authority, self.path(route))
    }
}

/// Aborts a task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url = RelayUrl::parse("http://127.0.0.1:1234").unwrap();
        assert_eq!(url.connect_to, "127.0.0.1:1234");
        assert_eq!(url.path("/v1/x"), "/v1/x");
        assert_eq!(
            url.websocket("/v1/x"),
            "ws://127.0.0.1:1234/v1/x?method=POST"
        );
        let url = RelayUrl::parse("ws://[::1]/relay/").unwrap();
        assert_eq!(url.connect_to, "[::1]:80");
        assert_eq!(url.path("/v1/x"), "/relay/v1/x");
        for bad in [
            "https://a",
            "wss://a",
            "ftp://a",
            "nope",
            "http://a?x=1",
            "http://u@a",
        ] {
            assert!(
                matches!(RelayUrl::parse(bad), Err(RelayError::Url { .. })),
                "{bad}"
            );
        }
    }
}
