//! One wallet layout: the signer signs for, and pays to, only the paths and script type that
//! `micronode signer recover` scans.
//!
//! VLS's wallet accepts any derivation path of any depth and several script types. A
//! compromised node could use that to park the tenant's funds (change, close and sweep
//! outputs) where the tenant's tools never look, and ask for a ransom. This layer allows only
//! [`WalletLayout`]: P2WPKH at `xpub/0/i` (receive) and `xpub/1/i` (change), with `i` at most
//! [`SCAN_WINDOW`] beyond the highest index used so far. Every index the signer pays to or sees
//! paid on chain raises that high-water mark, and `recover` scans up to it plus the window.

use std::collections::HashMap;
use std::sync::Mutex;

use lightning_signer::bitcoin::bip32::{ChildNumber, DerivationPath, Xpub};
use lightning_signer::bitcoin::secp256k1::{Secp256k1, VerifyOnly};
use lightning_signer::bitcoin::{CompressedPublicKey, ScriptBuf};
use micronode_signer_protocol::WalletLayout;

use crate::outcome::Outcome;
use crate::store::{SignerStore, StoreError};

/// How far beyond the high-water mark of a chain the signer accepts an index, and `recover`
/// scans (the wallet's gap limit).
pub const SCAN_WINDOW: u32 = 1_000;

/// The rule named when a path or script is outside the layout.
pub const LAYOUT_RULE: &str = "policy-wallet-layout";

const CHAINS: [u32; 2] = [WalletLayout::RECEIVE, WalletLayout::CHANGE];

/// The wallet's scripts within the window, derived from the account xpub.
pub(crate) struct WalletLayoutView {
    chain_keys: [Xpub; 2],
    secp: Secp256k1<VerifyOnly>,
    scripts: Mutex<Derived>,
}

#[derive(Default)]
struct Derived {
    by_script: HashMap<ScriptBuf, (u32, u32)>,
    /// Per chain, how many indexes are derived (`0..count`).
    count: [u32; 2],
}

impl WalletLayoutView {
    /// Derives the window of both chains above their high-water marks in `store`.
    pub(crate) fn new(account: Xpub, store: &SignerStore) -> Result<Self, StoreError> {
        let secp = Secp256k1::verification_only();
        let chain_key = |chain: u32| {
            account
                .ckd_pub(&secp, ChildNumber::Normal { index: chain })
                .map_err(|_| StoreError::Corrupt("account key"))
        };
        let view = Self {
            chain_keys: [chain_key(CHAINS[0])?, chain_key(CHAINS[1])?],
            secp,
            scripts: Mutex::new(Derived::default()),
        };
        for chain in CHAINS {
            view.derive_to(chain, store.wallet_high(chain)?.saturating_add(SCAN_WINDOW));
        }
        Ok(view)
    }

    fn script_at(&self, chain: u32, index: u32) -> Option<ScriptBuf> {
        let key = self.chain_keys[chain as usize]
            .ckd_pub(&self.secp, ChildNumber::from_normal_idx(index).ok()?)
            .ok()?;
        Some(ScriptBuf::new_p2wpkh(
            &CompressedPublicKey(key.public_key).wpubkey_hash(),
        ))
    }

    /// Derives indexes `0..=last` of `chain`.
    fn derive_to(&self, chain: u32, last: u32) {
        let mut derived = self.scripts.lock().unwrap_or_else(|p| p.into_inner());
        let have = derived.count[chain as usize];
        // Normal (non-hardened) indexes stop at 2^31.
        let want = last.saturating_add(1).min(1 << 31);
        for index in have..want {
            if let Some(script) = self.script_at(chain, index) {
                derived.by_script.insert(script, (chain, index));
            }
        }
        derived.count[chain as usize] = derived.count[chain as usize].max(want);
    }

    /// The `(chain, index)` of a wallet script within the window.
    pub(crate) fn lookup(&self, script: &ScriptBuf) -> Option<(u32, u32)> {
        self.scripts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_script
            .get(script)
            .copied()
    }

    /// Records that `(chain, index)` is in use (signed for, or paid on chain): raises the
    /// high-water mark and slides the window.
    pub(crate) fn note_used(
        &self,
        store: &SignerStore,
        chain: u32,
        index: u32,
    ) -> Result<(), StoreError> {
        store.note_wallet_index(chain, index)?;
        self.derive_to(chain, index.saturating_add(SCAN_WINDOW));
        Ok(())
    }

    /// Checks that `path` names a layout key within the window and `script` is its P2WPKH
    /// script; records the index as used and returns the path for VLS.
    pub(crate) fn accept(
        &self,
        store: &SignerStore,
        path: &[u32],
        script: &ScriptBuf,
    ) -> Result<DerivationPath, Outcome> {
        let (chain, index) = match path {
            [chain, index] if CHAINS.contains(chain) => (*chain, *index),
            _ => {
                return Err(Outcome::refused(
                    LAYOUT_RULE,
                    format!(
                        "wallet path {path:?} is outside the wallet layout ([0|1, index]); \
                         recovery would not find funds there"
                    ),
                ))
            }
        };
        let high = store.wallet_high(chain)?;
        if index > high.saturating_add(SCAN_WINDOW) {
            return Err(Outcome::refused(
                LAYOUT_RULE,
                format!(
                    "wallet index {index} on chain {chain} is beyond the scan window \
                     (high-water mark {high} + {SCAN_WINDOW}); recovery would not find funds there"
                ),
            ));
        }
        if self.script_at(chain, index).as_ref() != Some(script) {
            return Err(Outcome::refused(
                LAYOUT_RULE,
                format!("the script paying wallet path {path:?} is not its P2WPKH script"),
            ));
        }
        self.note_used(store, chain, index)?;
        Ok(DerivationPath::from(vec![
            ChildNumber::Normal { index: chain },
            ChildNumber::Normal { index },
        ]))
    }

    /// The highest index `recover` must scan on each chain: (receive, change).
    pub(crate) fn scan_range(&self, store: &SignerStore) -> Result<(u32, u32), StoreError> {
        Ok((
            store
                .wallet_high(WalletLayout::RECEIVE)?
                .saturating_add(SCAN_WINDOW),
            store
                .wallet_high(WalletLayout::CHANGE)?
                .saturating_add(SCAN_WINDOW),
        ))
    }

    /// A fresh change script for the signer's own sweeps (watchtower): the next index above the
    /// change chain's high-water mark, recorded as used.
    pub(crate) fn next_change(
        &self,
        store: &SignerStore,
    ) -> Result<(ScriptBuf, DerivationPath), Outcome> {
        let index = store.wallet_high(WalletLayout::CHANGE)?.saturating_add(1);
        let script = self
            .script_at(WalletLayout::CHANGE, index)
            .ok_or_else(|| Outcome::bad("the change chain is exhausted"))?;
        let path = self.accept(store, &[WalletLayout::CHANGE, index], &script)?;
        Ok((script, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lightning_signer::bitcoin::bip32::Xpriv;
    use lightning_signer::bitcoin::Network;

    fn view() -> (tempfile::TempDir, SignerStore, WalletLayoutView) {
        let dir = tempfile::tempdir().unwrap();
        let store = SignerStore::open(&dir.path().join("s.sqlite")).unwrap();
        let secp = Secp256k1::new();
        let xpriv = Xpriv::new_master(Network::Regtest, &[9; 32]).unwrap();
        let xpub = Xpub::from_priv(&secp, &xpriv);
        let view = WalletLayoutView::new(xpub, &store).unwrap();
        (dir, store, view)
    }

    #[test]
    fn only_p2wpkh_at_two_level_paths_within_the_window_is_accepted() {
        let (_dir, store, view) = view();
        let good = view.script_at(1, 5).unwrap();
        assert_eq!(view.lookup(&good), Some((1, 5)));
        view.accept(&store, &[1, 5], &good).unwrap();
        assert_eq!(store.wallet_high(1).unwrap(), 5);
        for path in [vec![1, 5, 0], vec![2, 5], vec![5], vec![]] {
            let err = view.accept(&store, &path, &good).unwrap_err();
            assert!(
                matches!(err, Outcome::Refused { ref rule, .. } if rule == LAYOUT_RULE),
                "{path:?}"
            );
        }
        // Beyond the window: refused, and the high-water mark does not move.
        let far = view.script_at(1, 5 + SCAN_WINDOW + 1).unwrap();
        assert!(view
            .accept(&store, &[1, 5 + SCAN_WINDOW + 1], &far)
            .is_err());
        assert_eq!(store.wallet_high(1).unwrap(), 5);
        // The right key in another script type is refused.
        let wrong_type = ScriptBuf::new_p2sh(&good.script_hash());
        assert!(view.accept(&store, &[1, 5], &wrong_type).is_err());
        // A used index slides the window.
        let edge = view.script_at(1, 5 + SCAN_WINDOW).unwrap();
        view.accept(&store, &[1, 5 + SCAN_WINDOW], &edge).unwrap();
        assert_eq!(
            view.scan_range(&store).unwrap(),
            (SCAN_WINDOW, 5 + 2 * SCAN_WINDOW)
        );
        assert!(view
            .lookup(&view.script_at(1, 5 + 2 * SCAN_WINDOW).unwrap())
            .is_some());
    }

    #[test]
    fn change_for_the_signers_own_sweeps_is_fresh_and_recorded() {
        let (_dir, store, view) = view();
        let (first, _) = view.next_change(&store).unwrap();
        let (second, path) = view.next_change(&store).unwrap();
        assert_ne!(first, second);
        assert_eq!(path.to_string(), "1/2");
        assert_eq!(store.wallet_high(1).unwrap(), 2);
    }
}
