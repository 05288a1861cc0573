//! The tenant's wallet as the operator sees it (its public key): coins deposited to it, PSBTs
//! built over them with key origins, and the signer request that asks for their signatures.

use bitcoin::bip32::{ChildNumber, DerivationPath, Fingerprint, Xpub};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{
    Address, Amount, CompressedPublicKey, Network, OutPoint, Psbt, ScriptBuf, Transaction, TxIn,
    TxOut,
};
use micronode_node::remote::protocol::{Hex, SignerRequest};
use micronode_testenv::nodes::Env;

use super::Client;

pub fn foreign_script() -> ScriptBuf {
    let key = SecretKey::new(&mut rand::thread_rng());
    Address::p2wpkh(
        &CompressedPublicKey(key.public_key(&Secp256k1::new())),
        Network::Regtest,
    )
    .script_pubkey()
}

/// The tenant's wallet keys, derived from the account xpub the signer exports.
pub struct Wallet {
    /// The account xpub.
    pub xpub: Xpub,
}

impl Wallet {
    pub fn key(&self, path: &[u32]) -> PublicKey {
        let path: Vec<ChildNumber> = path
            .iter()
            .map(|i| ChildNumber::from_normal_idx(*i).expect("normal"))
            .collect();
        self.xpub
            .derive_pub(&Secp256k1::new(), &path)
            .expect("derive")
            .public_key
    }

    pub fn p2wpkh(&self, path: &[u32]) -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&CompressedPublicKey(self.key(path)).wpubkey_hash())
    }

    /// The receive index of `script` (the node hands addresses out in order).
    pub fn receive_index(&self, script: &ScriptBuf) -> u32 {
        (0..50)
            .find(|i| self.p2wpkh(&[0, *i]) == *script)
            .expect("a receive address of the wallet")
    }

    pub fn derivation(&self, path: &[u32]) -> (PublicKey, (Fingerprint, DerivationPath)) {
        let steps: Vec<ChildNumber> = path
            .iter()
            .map(|i| ChildNumber::from_normal_idx(*i).expect("normal"))
            .collect();
        (
            self.key(path),
            (Fingerprint::default(), DerivationPath::from(steps)),
        )
    }
}

/// One coin of the tenant's wallet: where, what, its full previous transaction and its path.
pub struct Coin {
    pub outpoint: OutPoint,
    pub output: TxOut,
    pub prev_tx: Transaction,
    pub path: [u32; 2],
}

pub async fn deposit(env: &Env, client: &mut Client, wallet: &Wallet, sat: u64) -> Coin {
    let address = super::tenant::new_address(client).await;
    let txid = env
        .bitcoind
        .fund_address(&address, sat)
        .await
        .expect("fund");
    env.mine(1).await;
    let prev_tx = env.transaction(&txid).await;
    let vout = prev_tx
        .output
        .iter()
        .position(|o| o.script_pubkey == address.script_pubkey())
        .expect("our output");
    Coin {
        outpoint: OutPoint::new(txid, vout as u32),
        output: prev_tx.output[vout].clone(),
        path: [0, wallet.receive_index(&address.script_pubkey())],
        prev_tx,
    }
}

/// A PSBT spending `coins` to one output of `value` paying `script` at wallet path `path`.
pub fn psbt(
    wallet: &Wallet,
    coins: &[&Coin],
    value: u64,
    script: ScriptBuf,
    path: Option<&[u32]>,
) -> Psbt {
    let tx = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: coins
            .iter()
            .map(|c| TxIn {
                previous_output: c.outpoint,
                sequence: bitcoin::Sequence::ENABLE_RBF_NO_LOCKTIME,
                ..Default::default()
            })
            .collect(),
        output: vec![TxOut {
            value: Amount::from_sat(value),
            script_pubkey: script,
        }],
    };
    let mut psbt = Psbt::from_unsigned_tx(tx).expect("psbt");
    for (input, coin) in psbt.inputs.iter_mut().zip(coins) {
        input.witness_utxo = Some(coin.output.clone());
        input.non_witness_utxo = Some(coin.prev_tx.clone());
        let (key, origin) = wallet.derivation(&coin.path);
        input.bip32_derivation.insert(key, origin);
    }
    if let Some(path) = path {
        let (key, origin) = wallet.derivation(path);
        psbt.outputs[0].bip32_derivation.insert(key, origin);
    }
    psbt
}

pub fn sign_psbt(psbt: &Psbt) -> SignerRequest {
    SignerRequest::SignWalletPsbt {
        psbt: Hex(psbt.serialize()),
        authorization: None,
    }
}
