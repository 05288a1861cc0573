//! Shared helpers for the API's integration tests: a real bitcoind, real nodes, the API served
//! on 127.0.0.1:0 and the generated client. (Copied in part from the node's test helpers, which
//! are not exported.)
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use micronode_api::{bearer, read_cookie, Authenticator, CookieAuth, ServeOptions, ServerTask};
use micronode_proto::v1::lightning_client::LightningClient;
use micronode_proto::v1::tokens_client::TokensClient;
use micronode_proto::{ErrorCode, ERROR_CODE_METADATA};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use micronode_testenv::nodes::{Env, TestNode, TIMEOUT};

/// Adds `authorization: Bearer <token>` to every call, or nothing.
#[derive(Clone)]
pub struct Credentials(pub Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// The generated client with credentials.
pub type Client = LightningClient<InterceptedService<Channel, Credentials>>;
/// The generated token management client with credentials.
pub type Tokens = TokensClient<InterceptedService<Channel, Credentials>>;

/// A node's API, served until dropped (or [`Api::shutdown`]).
pub struct Api {
    pub addr: SocketAddr,
    pub cookie: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<ServerTask>,
}

impl Api {
    /// Serves with [`micronode_api::serve`] (default options).
    pub async fn serve(env: &Env, node: Arc<TestNode>, name: &str) -> Api {
        Self::serve_with(env, node, name, None).await
    }

    /// Serves with [`micronode_api::serve_with`] if `options` are given.
    pub async fn serve_with(
        env: &Env,
        node: Arc<TestNode>,
        name: &str,
        options: Option<ServeOptions>,
    ) -> Api {
        let cookie = env.dir.0.join(name).join("api.cookie");
        let auth = CookieAuth::create(&cookie).expect("cookie");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let addr = "127.0.0.1:0".parse().expect("addr");
        let shutdown = async move {
            let _ = stopped.await;
        };
        let (addr, task) = match options {
            None => micronode_api::serve(node, addr, Arc::new(auth), shutdown).await,
            Some(options) => {
                micronode_api::serve_with(node, addr, Arc::new(auth), shutdown, options).await
            }
        }
        .expect("serve");
        assert_ne!(addr.port(), 0, "the bound port is returned");
        Api {
            addr,
            cookie,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Serves with any authenticator (no cookie file).
    pub async fn serve_with_auth(node: Arc<TestNode>, auth: Arc<dyn Authenticator>) -> Api {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let addr = "127.0.0.1:0".parse().expect("addr");
        let (addr, task) = micronode_api::serve(node, addr, auth, async move {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
        Api {
            addr,
            cookie: PathBuf::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A token management client sending `token` (`None`: no credentials at all).
    pub async fn tokens_with(&self, token: Option<&str>) -> Tokens {
        let value = token.map(|t| bearer(t).parse().expect("ascii token"));
        TokensClient::with_interceptor(self.channel().await, Credentials(value))
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the API")
    }

    /// A client sending `token` (`None`: no credentials at all).
    pub async fn client_with(&self, token: Option<&str>) -> Client {
        let value = token.map(|t| bearer(t).parse().expect("ascii token"));
        LightningClient::with_interceptor(self.channel().await, Credentials(value))
    }

    /// A client with the cookie's token, as a real client reads it.
    pub async fn client(&self) -> Client {
        let token = read_cookie(&self.cookie).expect("read cookie");
        self.client_with(Some(&token)).await
    }

    /// Stops the server and waits (at most `limit`) for its task.
    pub async fn shutdown(&mut self, limit: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(limit, task)
                .await
                .expect("the server shuts down in time")
                .expect("server task")
                .expect("server result");
        }
    }
}

/// Asserts a failed call's gRPC code and `x-micronode-error`.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    error: ErrorCode,
) -> tonic::Status {
    let status = result.expect_err("the call must fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(
        status
            .metadata()
            .get(ERROR_CODE_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some(error.as_str()),
        "{status:?}"
    );
    status
}
