//! The tower service that puts an [`Authenticator`] in front of a gRPC service.
//!
//! tonic's interceptors do not see the request path, and authorisation is per method, so this
//! wraps the generated server instead: it takes the RPC's name from the path, asks the
//! authenticator, and either answers with its status at once (the request is never decoded and
//! the handler never runs) or inserts the [`Grant`](super::Grant) into the request's
//! extensions, where the service finds it.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready};
use tonic::body::Body;
use tonic::codegen::{http, Service};
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;

use super::Authenticator;

/// A gRPC service whose every call must first pass an [`Authenticator`].
#[derive(Clone)]
pub(crate) struct AuthGuard<S> {
    inner: S,
    auth: Arc<dyn Authenticator>,
}

impl<S> AuthGuard<S> {
    /// Guards `inner` with `auth`.
    pub(crate) fn new(inner: S, auth: Arc<dyn Authenticator>) -> Self {
        Self { inner, auth }
    }
}

/// The RPC's name: the last segment of `/<package>.<Service>/<Method>`.
fn method_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}

impl<S, B> Service<http::Request<B>> for AuthGuard<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<http::Response<Body>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // Borrow the headers as metadata without copying them, then put them back.
        let metadata = MetadataMap::from_headers(std::mem::take(req.headers_mut()));
        let decision = self.auth.authorize(method_of(req.uri().path()), &metadata);
        *req.headers_mut() = metadata.into_headers();
        match decision {
            Ok(grant) => {
                req.extensions_mut().insert(grant);
                Either::Right(self.inner.call(req))
            }
            Err(status) => Either::Left(futures::future::ready(Ok(status.into_http()))),
        }
    }
}

impl<S: NamedService> NamedService for AuthGuard<S> {
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    #[test]
    fn method_is_the_last_path_segment() {
        assert_eq!(
            super::method_of("/micronode.v1.Lightning/PayInvoice"),
            "PayInvoice"
        );
        assert_eq!(super::method_of("/"), "");
        assert_eq!(super::method_of(""), "");
    }
}
