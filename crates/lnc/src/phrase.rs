//! The pairing phrase: 10 words from the BIP-39 English list, 110 bits packed into 14 bytes of
//! entropy (the last two bits zero), and the password the XX handshake stretches from it.

use bip39::Language;
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{LncError, Result};

/// Words in a phrase.
pub const PHRASE_WORDS: usize = 10;
/// Bytes of entropy a phrase encodes.
pub const ENTROPY_BYTES: usize = 14;
/// Bits per word (the list has 2,048 words).
const BITS_PER_WORD: usize = 11;

/// scrypt cost as LNC sets it: N = 2^16, r = 8, p = 1, 32 bytes out.
const SCRYPT_LOG_N: u8 = 16;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

/// A pairing phrase's entropy. Secret: it is the only thing a browser needs to pair.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Phrase {
    entropy: [u8; ENTROPY_BYTES],
}

impl std::fmt::Debug for Phrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Phrase(<secret>)")
    }
}

impl Phrase {
    /// A new random phrase.
    pub fn generate() -> Phrase {
        let mut entropy = [0u8; ENTROPY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut entropy);
        // 14 bytes hold 112 bits; the phrase carries 110, so the last two are zero.
        entropy[ENTROPY_BYTES - 1] &= 0b1111_1100;
        Phrase { entropy }
    }

    /// The phrase with this entropy; its last two bits must be zero.
    pub fn from_entropy(entropy: [u8; ENTROPY_BYTES]) -> Result<Phrase> {
        if entropy[ENTROPY_BYTES - 1] & 0b11 != 0 {
            return Err(LncError::BadPadding);
        }
        Ok(Phrase { entropy })
    }

    /// Parses ten words, separated by any whitespace, in any letter case.
    pub fn parse(text: &str) -> Result<Phrase> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.len() != PHRASE_WORDS {
            return Err(LncError::WrongWordCount(words.len()));
        }
        let mut entropy = [0u8; ENTROPY_BYTES];
        for (i, word) in words.iter().enumerate() {
            let lower = word.to_lowercase();
            let index = Language::English
                .find_word(&lower)
                .ok_or_else(|| LncError::UnknownWord((*word).to_string()))?;
            write_bits(&mut entropy, i * BITS_PER_WORD, index);
        }
        Phrase::from_entropy(entropy)
    }

    /// The ten words.
    pub fn words(&self) -> [&'static str; PHRASE_WORDS] {
        let list = Language::English.word_list();
        std::array::from_fn(|i| list[usize::from(read_bits(&self.entropy, i * BITS_PER_WORD))])
    }

    /// The words joined by single spaces.
    pub fn to_words_string(&self) -> String {
        self.words().join(" ")
    }

    /// The raw entropy (stream ids before pairing are derived from it).
    pub fn entropy(&self) -> &[u8; ENTROPY_BYTES] {
        &self.entropy
    }

    /// The XX handshake's password: scrypt(entropy, salt = entropy, N = 65536, r = 8, p = 1).
    /// Costs about 64 MiB and a fraction of a second: run it off async workers.
    pub fn stretch(&self) -> Password {
        let params = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, 32)
            .expect("constant scrypt parameters are valid");
        let mut out = [0u8; 32];
        scrypt::scrypt(&self.entropy, &self.entropy, &params, &mut out)
            .expect("a 32-byte output is a valid scrypt length");
        Password(out)
    }
}

/// The stretched password of a phrase (32 bytes), used as a scalar in the masked ephemeral.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Password(pub(crate) [u8; 32]);

impl Password {
    /// A password from its 32 bytes (as stored by a node that never keeps the phrase itself).
    pub fn from_bytes(bytes: [u8; 32]) -> Password {
        Password(bytes)
    }

    /// Its 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<secret>)")
    }
}

fn read_bits(bytes: &[u8], start: usize) -> u16 {
    (0..BITS_PER_WORD).fold(0u16, |acc, k| {
        let bit = start + k;
        let set = (bytes[bit / 8] >> (7 - bit % 8)) & 1;
        (acc << 1) | u16::from(set)
    })
}

fn write_bits(bytes: &mut [u8], start: usize, value: u16) {
    for k in 0..BITS_PER_WORD {
        let bit = start + k;
        if (value >> (BITS_PER_WORD - 1 - k)) & 1 == 1 {
            bytes[bit / 8] |= 1 << (7 - bit % 8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for _ in 0..50 {
            let phrase = Phrase::generate();
            let parsed = Phrase::parse(&phrase.to_words_string()).unwrap();
            assert_eq!(parsed, phrase);
        }
    }

    #[test]
    fn parse_is_forgiving_about_case_and_spaces_only() {
        let phrase = Phrase::generate();
        let shouted = format!("  {}\n", phrase.words().join("   ").to_uppercase());
        assert_eq!(Phrase::parse(&shouted).unwrap(), phrase);
        let nine = phrase.words()[..9].join(" ");
        assert!(matches!(
            Phrase::parse(&nine),
            Err(LncError::WrongWordCount(9))
        ));
        let typo = phrase
            .to_words_string()
            .replacen(phrase.words()[0], "abandn", 1);
        match Phrase::parse(&typo) {
            Err(LncError::UnknownWord(w)) => assert_eq!(w, "abandn"),
            other => panic!("expected UnknownWord, got {other:?}"),
        }
    }

    #[test]
    fn padding_bits_must_be_zero() {
        // Ten words fill 110 bits, so parsed words never set the last two; raw entropy can.
        let mut entropy = [0u8; ENTROPY_BYTES];
        entropy[ENTROPY_BYTES - 1] = 0b01;
        assert!(matches!(
            Phrase::from_entropy(entropy),
            Err(LncError::BadPadding)
        ));
        let ten_zoos = ["zoo"; PHRASE_WORDS].join(" ");
        assert_eq!(
            Phrase::parse(&ten_zoos).unwrap().entropy()[ENTROPY_BYTES - 1],
            0xfc
        );
    }
}
