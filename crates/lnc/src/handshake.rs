//! The two handshakes, written as LNC's token machine: `Noise_XXeke+SPAKE2` on the first
//! connection (the phrase is the only shared secret) and `Noise_KK` on every later one (both
//! static keys known). Each act is one mailbox message; see `docs/pairing.md`.

use secp256k1::{PublicKey, Secp256k1, SecretKey};

use crate::cipher::{SymmetricState, MAC_LEN};
use crate::error::{LncError, Result};
use crate::keys::{ecdh, mask, unmask};
use crate::phrase::Password;
use crate::transport::Transport;

/// The handshake version we send: LNC's version 2, the one that allows KK.
pub const HANDSHAKE_VERSION: u8 = 2;
/// The prologue every LNC handshake mixes in.
const PROLOGUE: &[u8] = b"lightning-node-connect";
/// The largest auth data a responder may send in act 2.
pub const MAX_AUTH_DATA: usize = 60_000;
const PUBKEY_LEN: usize = 33;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    E,
    Me,
    S,
    Ee,
    Es,
    Se,
    Ss,
}

/// Which handshake runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// First connection: `-> me ; <- e, ee, s, es ; -> s, se`.
    Xx,
    /// Later connections: `-> e, es, ss ; <- e, ee, se`.
    Kk,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Pattern::Xx => "Noise_XXeke+SPAKE2_secp256k1_ChaChaPoly_SHA256",
            Pattern::Kk => "Noise_KK_secp256k1_ChaChaPoly_SHA256",
        }
    }

    fn acts(self) -> &'static [&'static [Token]] {
        match self {
            Pattern::Xx => &[
                &[Token::Me],
                &[Token::E, Token::Ee, Token::S, Token::Es],
                &[Token::S, Token::Se],
            ],
            Pattern::Kk => &[
                &[Token::E, Token::Es, Token::Ss],
                &[Token::E, Token::Ee, Token::Se],
            ],
        }
    }
}

/// What a finished handshake gives each side.
#[derive(Debug)]
pub struct Established {
    /// The encrypted channel.
    pub transport: Transport,
    /// The other side's static key (to keep for KK reconnects).
    pub remote_static: PublicKey,
    /// The responder's auth data (empty on the responder's own side).
    pub auth_data: Vec<u8>,
}

/// One side of one handshake.
pub struct Handshake {
    pattern: Pattern,
    initiator: bool,
    state: SymmetricState,
    local_static: SecretKey,
    local_ephemeral: SecretKey,
    remote_static: Option<PublicKey>,
    remote_ephemeral: Option<PublicKey>,
    password: Option<Password>,
    auth_data: Vec<u8>,
    received_auth: Vec<u8>,
    act: usize,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("pattern", &self.pattern)
            .field("initiator", &self.initiator)
            .field("act", &self.act)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// The client's side of the first connection, knowing only the phrase's password.
    pub fn xx_initiator(local_static: SecretKey, password: Password, ephemeral: SecretKey) -> Self {
        Self::new(
            Pattern::Xx,
            true,
            local_static,
            ephemeral,
            None,
            Some(password),
            Vec::new(),
        )
    }

    /// The node's side of the first connection: it sends `auth_data` in act 2.
    pub fn xx_responder(
        local_static: SecretKey,
        password: Password,
        ephemeral: SecretKey,
        auth_data: Vec<u8>,
    ) -> Self {
        Self::new(
            Pattern::Xx,
            false,
            local_static,
            ephemeral,
            None,
            Some(password),
            auth_data,
        )
    }

    /// The client's side of a later connection.
    pub fn kk_initiator(local_static: SecretKey, remote: PublicKey, ephemeral: SecretKey) -> Self {
        Self::new(
            Pattern::Kk,
            true,
            local_static,
            ephemeral,
            Some(remote),
            None,
            Vec::new(),
        )
    }

    /// The node's side of a later connection.
    pub fn kk_responder(
        local_static: SecretKey,
        remote: PublicKey,
        ephemeral: SecretKey,
        auth_data: Vec<u8>,
    ) -> Self {
        Self::new(
            Pattern::Kk,
            false,
            local_static,
            ephemeral,
            Some(remote),
            None,
            auth_data,
        )
    }

    /// A fresh random ephemeral key for the constructors.
    pub fn random_ephemeral() -> SecretKey {
        SecretKey::new(&mut rand::rngs::OsRng)
    }

    fn new(
        pattern: Pattern,
        initiator: bool,
        local_static: SecretKey,
        local_ephemeral: SecretKey,
        remote_static: Option<PublicKey>,
        password: Option<Password>,
        auth_data: Vec<u8>,
    ) -> Self {
        let secp = Secp256k1::signing_only();
        let mut state = SymmetricState::new(pattern.name());
        state.mix_hash(PROLOGUE);
        if let (Pattern::Kk, Some(remote)) = (pattern, remote_static) {
            let local = local_static.public_key(&secp).serialize();
            let (first, second) = if initiator {
                (local, remote.serialize())
            } else {
                (remote.serialize(), local)
            };
            state.mix_hash(&first);
            state.mix_hash(&second);
        }
        Handshake {
            pattern,
            initiator,
            state,
            local_static,
            local_ephemeral,
            remote_static,
            remote_ephemeral: None,
            password,
            auth_data,
            received_auth: Vec::new(),
            act: 0,
        }
    }

    fn is_my_turn(&self) -> bool {
        self.act.is_multiple_of(2) == self.initiator
    }

    /// Whether every act has been written or read.
    pub fn is_finished(&self) -> bool {
        self.act == self.pattern.acts().len()
    }

    /// Writes our next act.
    pub fn write_act(&mut self) -> Result<Vec<u8>> {
        if self.is_finished() || !self.is_my_turn() {
            return Err(LncError::OutOfOrder("not our act to write"));
        }
        let secp = Secp256k1::signing_only();
        let mut out = vec![HANDSHAKE_VERSION];
        for token in self.pattern.acts()[self.act] {
            match token {
                Token::E => {
                    let e = self.local_ephemeral.public_key(&secp).serialize();
                    self.state.mix_hash(&e);
                    out.extend_from_slice(&e);
                }
                Token::Me => {
                    let e = self.local_ephemeral.public_key(&secp);
                    self.state.mix_hash(&e.serialize());
                    let pw = self
                        .password
                        .as_ref()
                        .ok_or(LncError::OutOfOrder("no password"))?;
                    out.extend_from_slice(&mask(&e, pw)?.serialize());
                }
                Token::S => {
                    let s = self.local_static.public_key(&secp).serialize();
                    out.extend(self.state.encrypt_and_hash(&s)?);
                }
                dh => self.mix_dh(*dh)?,
            }
        }
        self.write_payload(&mut out)?;
        self.act += 1;
        Ok(out)
    }

    fn write_payload(&mut self, out: &mut Vec<u8>) -> Result<()> {
        if self.act == 1 {
            if self.auth_data.len() > MAX_AUTH_DATA {
                return Err(LncError::TooLong(self.auth_data.len()));
            }
            let len = (self.auth_data.len() as u32).to_be_bytes();
            out.extend(self.state.encrypt_and_hash(&len)?);
            let payload = std::mem::take(&mut self.auth_data);
            out.extend(self.state.encrypt_and_hash(&payload)?);
        } else {
            out.extend(self.state.encrypt_and_hash(&[])?);
        }
        Ok(())
    }

    /// Reads the other side's next act (one whole mailbox message).
    pub fn read_act(&mut self, act: &[u8]) -> Result<()> {
        if self.is_finished() || self.is_my_turn() {
            return Err(LncError::OutOfOrder("not the peer's act to read"));
        }
        let mut reader = ActReader { bytes: act, at: 0 };
        let version = reader.take(1, "the version byte")?[0];
        let accepted = match (self.pattern, self.act) {
            // An LNC client may open with any version it speaks; we answer with 2.
            (Pattern::Xx, 0) => version <= HANDSHAKE_VERSION,
            _ => version == HANDSHAKE_VERSION,
        };
        if !accepted {
            return Err(LncError::Version(version));
        }
        for token in self.pattern.acts()[self.act] {
            match token {
                Token::E => {
                    let bytes = reader.take(PUBKEY_LEN, "an ephemeral key")?;
                    let e = PublicKey::from_slice(bytes).map_err(LncError::BadKey)?;
                    self.state.mix_hash(&e.serialize());
                    self.remote_ephemeral = Some(e);
                }
                Token::Me => {
                    let bytes = reader.take(PUBKEY_LEN, "a masked ephemeral key")?;
                    let me = PublicKey::from_slice(bytes).map_err(LncError::BadKey)?;
                    let pw = self
                        .password
                        .as_ref()
                        .ok_or(LncError::OutOfOrder("no password"))?;
                    let e = unmask(&me, pw)?;
                    self.state.mix_hash(&e.serialize());
                    self.remote_ephemeral = Some(e);
                }
                Token::S => {
                    let sealed = reader.take(PUBKEY_LEN + MAC_LEN, "a static key")?;
                    let s = self.state.decrypt_and_hash(sealed)?;
                    self.remote_static = Some(PublicKey::from_slice(&s).map_err(LncError::BadKey)?);
                }
                dh => self.mix_dh(*dh)?,
            }
        }
        if self.act == 1 {
            let len_bytes = self
                .state
                .decrypt_and_hash(reader.take(4 + MAC_LEN, "a length")?)?;
            let len_bytes: [u8; 4] =
                len_bytes
                    .try_into()
                    .map_err(|b: Vec<u8>| LncError::Length {
                        what: "a length",
                        got: b.len(),
                        expected: 4,
                    })?;
            let len = u32::from_be_bytes(len_bytes) as usize;
            if len > MAX_AUTH_DATA {
                return Err(LncError::TooLong(len));
            }
            let payload = reader.take(len + MAC_LEN, "the auth data")?;
            self.received_auth = self.state.decrypt_and_hash(payload)?;
        } else {
            self.state
                .decrypt_and_hash(reader.take(MAC_LEN, "a tag")?)?;
        }
        reader.finish()?;
        self.act += 1;
        Ok(())
    }

    fn mix_dh(&mut self, token: Token) -> Result<()> {
        let missing = LncError::OutOfOrder("a key the pattern needs is not known yet");
        let remote_e = self.remote_ephemeral.ok_or(missing);
        let missing = LncError::OutOfOrder("a key the pattern needs is not known yet");
        let remote_s = self.remote_static.ok_or(missing);
        let shared = match (token, self.initiator) {
            (Token::Ee, _) => ecdh(&remote_e?, &self.local_ephemeral),
            (Token::Ss, _) => ecdh(&remote_s?, &self.local_static),
            (Token::Es, true) | (Token::Se, false) => ecdh(&remote_s?, &self.local_ephemeral),
            (Token::Es, false) | (Token::Se, true) => ecdh(&remote_e?, &self.local_static),
            _ => return Err(LncError::OutOfOrder("not a DH token")),
        };
        self.state.mix_key(&shared);
        Ok(())
    }

    /// The transport and what was learned, once every act is done.
    pub fn finish(self) -> Result<Established> {
        if !self.is_finished() {
            return Err(LncError::OutOfOrder("the handshake is not finished"));
        }
        let remote_static = self
            .remote_static
            .ok_or(LncError::OutOfOrder("no remote static key"))?;
        let (initiator_send, initiator_recv) = self.state.split();
        let transport = if self.initiator {
            Transport::new(initiator_send, initiator_recv)
        } else {
            Transport::new(initiator_recv, initiator_send)
        };
        Ok(Established {
            transport,
            remote_static,
            auth_data: self.received_auth,
        })
    }
}

struct ActReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> ActReader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or(LncError::Length {
            what,
            got: self.bytes.len() - self.at,
            expected: n,
        })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn finish(&self) -> Result<()> {
        if self.at != self.bytes.len() {
            return Err(LncError::Length {
                what: "a handshake act",
                got: self.bytes.len(),
                expected: self.at,
            });
        }
        Ok(())
    }
}
