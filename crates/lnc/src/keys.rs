//! secp256k1 pieces of the handshake: ECDH as LNC (and BOLT 8) define it, and the SPAKE2-style
//! mask `me = e + pw·N` on the initiator's first ephemeral key.

use secp256k1::ecdh::SharedSecret;
use secp256k1::{PublicKey, Scalar, Secp256k1, SecretKey};

use crate::error::{LncError, Result};
use crate::phrase::Password;

/// LNC's point N (compressed): nothing-up-my-sleeve, by try-and-increment from
/// SHA-256("Lightning Node Connect") (lightning-node-connect `mailbox/numsgen`).
pub const N_POINT: [u8; 33] = [
    0x02, 0x54, 0xa5, 0x8c, 0xd0, 0xf3, 0x1c, 0x00, 0x8f, 0xd0, 0xbc, 0x9b, 0x2d, 0xd5, 0xba, 0x58,
    0x61, 0x44, 0x93, 0x38, 0x29, 0xf6, 0xda, 0x33, 0xac, 0x41, 0x30, 0xb5, 0x55, 0xfb, 0x5e, 0xa3,
    0x2c,
];

/// The curve order n, big-endian.
const CURVE_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

/// `SHA-256(compressed(secret · point))`: the ECDH of LNC and BOLT 8 (secp256k1's default).
pub fn ecdh(point: &PublicKey, secret: &SecretKey) -> [u8; 32] {
    SharedSecret::new(point, secret).secret_bytes()
}

/// The password as a scalar: its 32 bytes big-endian, reduced mod n (as btcec's
/// `ModNScalar::SetByteSlice`). One subtraction suffices because 2^256 < 2n.
fn password_scalar(pw: &Password) -> Result<Scalar> {
    let mut value = *pw.as_bytes();
    if value >= CURVE_ORDER {
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let diff = i16::from(value[i]) - i16::from(CURVE_ORDER[i]) - borrow;
            borrow = i16::from(diff < 0);
            value[i] = diff.rem_euclid(256) as u8;
        }
    }
    if value == [0u8; 32] {
        return Err(LncError::UnusablePassword);
    }
    Scalar::from_be_bytes(value).map_err(|_| LncError::UnusablePassword)
}

fn password_point(pw: &Password) -> Result<PublicKey> {
    let n = PublicKey::from_slice(&N_POINT).expect("N is a valid point");
    n.mul_tweak(&Secp256k1::verification_only(), &password_scalar(pw)?)
        .map_err(|_| LncError::UnusablePassword)
}

/// `me = e + pw·N`.
pub fn mask(ephemeral: &PublicKey, pw: &Password) -> Result<PublicKey> {
    ephemeral
        .combine(&password_point(pw)?)
        .map_err(|_| LncError::UnusablePassword)
}

/// `e = me − pw·N`. A wrong password gives a different, valid-looking point: the mismatch only
/// shows when the next act fails its MAC.
pub fn unmask(masked: &PublicKey, pw: &Password) -> Result<PublicKey> {
    let negated = password_point(pw)?.negate(&Secp256k1::verification_only());
    masked.combine(&negated).map_err(LncError::BadKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmask_inverts_mask_and_reduction_is_mod_n() {
        let secp = Secp256k1::new();
        let e = SecretKey::new(&mut rand::thread_rng()).public_key(&secp);
        for pw in [[0xffu8; 32], [7u8; 32], CURVE_ORDER] {
            let pw = Password::from_bytes(pw);
            if pw.as_bytes() == &CURVE_ORDER {
                assert!(matches!(mask(&e, &pw), Err(LncError::UnusablePassword)));
                continue;
            }
            assert_eq!(unmask(&mask(&e, &pw).unwrap(), &pw).unwrap(), e);
        }
        // 0xff..ff mod n == 0xff..ff - n.
        let reduced = password_scalar(&Password::from_bytes([0xff; 32])).unwrap();
        let mut expected = [0u8; 32];
        expected[15] = 0x01;
        expected[16..].copy_from_slice(&[
            0x45, 0x51, 0x23, 0x19, 0x50, 0xb7, 0x5f, 0xc4, 0x40, 0x2d, 0xa1, 0x73, 0x2f, 0xc9,
            0xbe, 0xbe,
        ]);
        assert_eq!(reduced.to_be_bytes(), expected);
    }
}
