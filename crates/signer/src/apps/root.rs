//! The root of trust of the tenant's app credentials: a biscuit key pair derived from the
//! tenant's seed. Tokens signed with it verify at the node, which keeps only the public key, so
//! the operator can check every token and mint none. The same seed always gives the same
//! root, so a restored signer keeps every token it baked valid.

use biscuit_auth::builder::{fact, string, Algorithm};
use biscuit_auth::{
    AuthorizerBuilder, AuthorizerLimits, Biscuit, KeyPair, PrivateKey, UnverifiedBiscuit,
};
use lightning_signer::bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
use zeroize::Zeroizing;

/// Domain of the derivation: no other key of the seed is derived with it.
const ROOT_TAG: &[u8] = b"micronode/app-token-root/v1";
/// The longest token the signer reads (the node accepts no longer ones either).
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// The most blocks a token may have (as at the node).
const MAX_BLOCKS: usize = 16;

/// What a token baked by this root says about its app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    /// The app the token was baked for.
    pub app_id: String,
    /// The app's client key (x-only, hex): requests must be signed by it.
    pub client_key: String,
}

/// The tenant's app-token root key pair.
pub struct AppRoot {
    keys: KeyPair,
}

impl AppRoot {
    /// The root of the signer seed `seed`: HMAC-SHA256 keyed by the seed over a fixed tag,
    /// used as an Ed25519 private key.
    pub fn from_seed(seed: &[u8; 32]) -> AppRoot {
        let mut engine = hmac::HmacEngine::<sha256::Hash>::new(seed);
        engine.input(ROOT_TAG);
        let secret = Zeroizing::new(hmac::Hmac::from_engine(engine).to_byte_array());
        // 32 bytes are always a valid Ed25519 secret key.
        let private = PrivateKey::from_bytes(&secret[..], Algorithm::Ed25519)
            .unwrap_or_else(|_| unreachable!("any 32 bytes are an Ed25519 secret key"));
        AppRoot {
            keys: KeyPair::from(&private),
        }
    }

    /// The public key as the node stores it (`ed25519/<hex>`).
    pub fn public_key(&self) -> String {
        self.keys.public().to_string()
    }

    /// Bakes the authority block of an app's token: the tenant, the token's id, its rights
    /// (method groups, as the node names them), the app and its client key.
    pub fn bake(
        &self,
        tenant: &str,
        app_id: &str,
        rights: &[String],
        client_key: &str,
    ) -> Result<String, String> {
        let mut builder = Biscuit::builder()
            .fact(fact("tenant", &[string(tenant)]))
            .and_then(|b| b.fact(fact("token_id", &[string(app_id)])))
            .and_then(|b| b.fact(fact("app_id", &[string(app_id)])))
            .and_then(|b| b.fact(fact("client_key", &[string(client_key)])))
            .map_err(|e| e.to_string())?;
        for right in rights {
            builder = builder
                .fact(fact("right", &[string(right)]))
                .map_err(|e| e.to_string())?;
        }
        builder
            .build(&self.keys)
            .and_then(|t| t.to_base64())
            .map_err(|e| e.to_string())
    }

    /// Verifies that `token` chains to this root and reads what its first block (the only one
    /// the root signed) says of its app. Facts of later blocks are never trusted.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, String> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_LEN {
            return Err(format!(
                "the token is longer than {MAX_TOKEN_LEN} characters"
            ));
        }
        let unverified =
            UnverifiedBiscuit::from_base64(token).map_err(|e| format!("not a token: {e}"))?;
        if unverified.block_count() > MAX_BLOCKS {
            return Err(format!("the token has more than {MAX_BLOCKS} blocks"));
        }
        let biscuit = unverified
            .verify(self.keys.public())
            .map_err(|e| format!("the token is not signed by this tenant's root ({e})"))?;
        // biscuit's default time limit (1 ms) fails under load; only tokens this root signed
        // get here, so a wider one costs nothing an outsider can ask for.
        let mut authorizer = AuthorizerBuilder::new()
            .set_limits(AuthorizerLimits {
                max_facts: 1000,
                max_iterations: 100,
                max_time: std::time::Duration::from_millis(200),
            })
            .build(&biscuit)
            .map_err(|e| e.to_string())?;
        // Queries see the authority block and the authorizer only: an attenuation block cannot
        // add a client key.
        let single = |rows: Vec<(String,)>, what: &str| -> Result<String, String> {
            match rows.as_slice() {
                [(value,)] => Ok(value.clone()),
                [] => Err(format!("the token names no {what}")),
                _ => Err(format!("the token names more than one {what}")),
            }
        };
        let keys: Vec<(String,)> = authorizer
            .query("data($k) <- client_key($k)")
            .map_err(|e| e.to_string())?;
        let apps: Vec<(String,)> = authorizer
            .query("data($a) <- app_id($a)")
            .map_err(|e| e.to_string())?;
        Ok(TokenClaims {
            app_id: single(apps, "app")?,
            client_key: single(keys, "client key")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_seeds_and_only_its_tokens_verify() {
        let root = AppRoot::from_seed(&[1u8; 32]);
        assert_eq!(
            root.public_key(),
            AppRoot::from_seed(&[1u8; 32]).public_key()
        );
        let token = root
            .bake("node", "app1", &["pay".into()], &"ab".repeat(32))
            .unwrap();
        let claims = root.verify(&token).unwrap();
        assert_eq!(claims.app_id, "app1");
        assert_eq!(claims.client_key, "ab".repeat(32));
        let other = AppRoot::from_seed(&[2u8; 32]);
        assert_ne!(other.public_key(), root.public_key());
        let err = other.verify(&token).unwrap_err();
        assert!(err.contains("not signed by this tenant's root"), "{err}");
        // An attenuation block naming another client key is not trusted.
        let biscuit = Biscuit::from_base64(&token, root.keys.public()).unwrap();
        let attenuated = biscuit
            .append(
                biscuit_auth::builder::BlockBuilder::new()
                    .fact(fact("client_key", &[string(&"cd".repeat(32))]))
                    .unwrap(),
            )
            .unwrap()
            .to_base64()
            .unwrap();
        assert_eq!(
            root.verify(&attenuated).unwrap().client_key,
            "ab".repeat(32)
        );
        assert!(root.verify("garbage").is_err());
    }
}
