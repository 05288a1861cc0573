//! The micronode gRPC API: the code generated from `proto/micronode/v1/lightning.proto` and
//! `proto/micronode/v1/tokens.proto`, and a host's `proto/micronode/v1/admin.proto`.
//!
//! The `.proto` files are the API's source of truth and document every message and field; this
//! crate compiles them. [`v1::lightning_client::LightningClient`] is the client and
//! [`v1::lightning_server::LightningServer`] wraps a [`v1::lightning_server::Lightning`]
//! implementation (see the `micronode-api` crate) into a tonic service; `v1::tokens_client` and
//! `v1::tokens_server` do the same for token management. [`ErrorCode`] spells the
//! machine-readable error codes a failed call carries in its `x-micronode-error` metadata.
#![deny(missing_docs)]

pub mod errors;

pub use errors::{ErrorCode, AUTHORIZATION_METADATA, ERROR_CODE_METADATA};

/// Version 1 of the API (protobuf package `micronode.v1`).
pub mod v1 {
    #![allow(missing_docs)]
    #![allow(clippy::all)]
    tonic::include_proto!("micronode.v1");
}

/// The protobuf package name of [`v1`].
pub const V1_PACKAGE: &str = "micronode.v1";

/// The fully qualified name of the `Lightning` service, as it appears in request paths
/// (`/micronode.v1.Lightning/GetInfo`).
pub const LIGHTNING_SERVICE: &str = "micronode.v1.Lightning";

/// The fully qualified name of the `Tokens` service (`/micronode.v1.Tokens/ListTokens`).
pub const TOKENS_SERVICE: &str = "micronode.v1.Tokens";

/// The fully qualified name of a host's `Admin` service (`/micronode.v1.Admin/ListTenants`).
pub const ADMIN_SERVICE: &str = "micronode.v1.Admin";

/// The request header that names the tenant a call is for on a host's front door (its node
/// id). Without it the front door reads the tenant a capability token names.
pub const TENANT_METADATA: &str = "x-micronode-tenant";

#[cfg(test)]
mod tests {
    #[test]
    fn service_name_matches_the_generated_one() {
        assert_eq!(
            super::LIGHTNING_SERVICE,
            super::v1::lightning_server::SERVICE_NAME
        );
        assert!(super::LIGHTNING_SERVICE.starts_with(super::V1_PACKAGE));
        assert_eq!(
            super::TOKENS_SERVICE,
            super::v1::tokens_server::SERVICE_NAME
        );
        assert_eq!(super::ADMIN_SERVICE, super::v1::admin_server::SERVICE_NAME);
    }
}
