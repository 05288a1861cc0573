//! The signer as its own TXO oracle for VLS's chain tracker.
//!
//! VLS's tracker accepts a block only with a proof (a compact spend filter plus an SPV proof of
//! the transactions that touch its watched outputs) attested by a trusted oracle. It was built
//! for signers that cannot fetch whole blocks. This signer fetches whole blocks from the
//! tenant's own source, builds the proof itself with `txoo`'s prover and attests it with a key
//! generated per process: the only thing the attestation vouches for is that the block came
//! from the source the tenant chose, which is true by construction.

use lightning_signer::bitcoin::consensus::serialize;
use lightning_signer::bitcoin::hash_types::FilterHeader;
use lightning_signer::bitcoin::key::Keypair;
use lightning_signer::bitcoin::secp256k1::{PublicKey, Secp256k1};
use lightning_signer::bitcoin::{Block, OutPoint, Txid};
use lightning_signer::chain::tracker::ChainTracker;
use lightning_signer::monitor::ChainMonitor;
use txoo::filter::BlockSpendFilter;
use txoo::proof::TxoProof;
use txoo::Attestation;

/// Streamed blocks go to the tracker in chunks of this many bytes.
const CHUNK: usize = 64 * 1024;

/// The signer's attestation key.
pub(crate) struct Oracle {
    keypair: Keypair,
}

impl Oracle {
    /// A fresh key for this process.
    pub(crate) fn generate() -> Self {
        let secp = Secp256k1::new();
        Self {
            keypair: Keypair::new(&secp, &mut rand::thread_rng()),
        }
    }

    /// The key VLS is told to trust.
    pub(crate) fn public_key(&self) -> PublicKey {
        self.keypair.public_key()
    }

    /// Adds `block` (at `height`) to `tracker`, proving the tracker's watched outputs and
    /// transactions against it.
    pub(crate) fn add_block(
        &self,
        tracker: &mut ChainTracker<ChainMonitor>,
        block: &Block,
        height: u32,
    ) -> Result<(), String> {
        let (txids, outpoints) = tracker.get_all_forward_watches();
        let prev_filter_header = tracker.tip().1;
        let proof = self.prepare(
            tracker,
            block,
            height,
            &prev_filter_header,
            &outpoints,
            &txids,
        )?;
        tracker
            .add_block(block.header, proof)
            .map_err(|e| format!("{e:?}"))
    }

    /// Removes the tracker's tip, which is `block` at `height` (a reorganisation).
    pub(crate) fn remove_block(
        &self,
        tracker: &mut ChainTracker<ChainMonitor>,
        block: &Block,
        height: u32,
    ) -> Result<(), String> {
        let prev = tracker
            .headers()
            .front()
            .cloned()
            .ok_or_else(|| "reorganisation deeper than the tracker remembers".to_string())?;
        let (txids, outpoints) = tracker.get_all_reverse_watches();
        let proof = self.prepare(tracker, block, height, &prev.1, &outpoints, &txids)?;
        tracker
            .remove_block(proof, prev)
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    }

    /// The attested proof of `block` for the tracker. A false positive of the filter makes the
    /// proof the whole block, which the tracker takes only streamed: it is streamed here and
    /// the proof refers to it.
    fn prepare(
        &self,
        tracker: &mut ChainTracker<ChainMonitor>,
        block: &Block,
        height: u32,
        prev_filter_header: &FilterHeader,
        outpoints: &[OutPoint],
        txids: &[Txid],
    ) -> Result<TxoProof, String> {
        let proof = TxoProof::prove(
            self.attestations(block, height, prev_filter_header),
            prev_filter_header,
            block,
            height,
            outpoints,
            txids,
        );
        let (proof, whole) = proof.proof.take_block();
        if let Some(whole) = whole {
            let hash = whole.block_hash();
            let bytes = serialize(&whole);
            for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
                let offset = u32::try_from(i * CHUNK).map_err(|_| "block too large".to_string())?;
                tracker
                    .block_chunk(hash, offset, chunk)
                    .map_err(|e| format!("{e:?}"))?;
            }
        }
        Ok(TxoProof {
            attestations: self.attestations(block, height, prev_filter_header),
            proof,
        })
    }

    fn attestations(
        &self,
        block: &Block,
        height: u32,
        prev_filter_header: &FilterHeader,
    ) -> Vec<(PublicKey, txoo::SignedAttestation)> {
        let filter_header = BlockSpendFilter::from_block(block).filter_header(prev_filter_header);
        let attestation = Attestation {
            block_hash: block.block_hash(),
            block_height: height,
            filter_header,
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let signed = txoo::util::sign_attestation(attestation, &self.keypair, &Secp256k1::new());
        vec![(self.public_key(), signed)]
    }
}
