//! Attack classes 2, 4 and 5, and the chain checks of class 3: the operator sends the
//! tenant's signer requests of its own making.
//!
//! - A signing oracle: a channel announcement (signed with the channel's funding key) whose
//!   bytes are a sighash preimage of a transaction stealing the funding output, or that names
//!   another chain, channel or trailing data; gossip and invoices for someone else.
//! - Fees as a drain: wallet PSBTs that lie about input amounts (the two-request attack), a
//!   PSBT that pays the wallet to miners, sweeps above the fee ceiling or of outputs the signer
//!   never saw on chain, a multi-input justice transaction, fee bumps (anchor channels) with
//!   inputs that are not the wallet's, unpaired outputs or an extreme package fee.
//! - Funds hidden where recovery never looks: change, close and sweep outputs to the tenant's
//!   own keys at paths or script types outside the wallet layout.
//! - A channel whose funding is not confirmed moved past its first state; an outgoing HTLC that
//!   is not one of the tenant's payments (tenant nodes do not route).
//!
//! Each is refused with its rule and logged by the signer; a correctly formed announcement and
//! wallet spend are signed (the checks are not blanket refusals); nothing of the operator's
//! reaches the chain and the tenant's balances are unchanged to the sat.

mod daemon;

use std::str::FromStr;

use bitcoin::bip32::Xpub;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::secp256k1::{Message, PublicKey, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{Amount, OutPoint, Psbt, ScriptBuf, Transaction, TxIn, TxOut};
use daemon::tenant::*;
use daemon::wallet_psbt::*;
use lightning::ln::chan_utils::{self, ChannelTransactionParameters, CommitmentTransaction};
use lightning::ln::msgs::{
    UnsignedChannelAnnouncement, UnsignedChannelUpdate, UnsignedNodeAnnouncement,
};
use lightning::routing::gossip::NodeId;
use lightning::sign::{SpendableOutputDescriptor, StaticPaymentOutputDescriptor};
use lightning::util::ser::{Readable, ReadableArgs, Writeable};
use micronode_node::remote::protocol::{
    ChannelOp, Hex, SignerReply, SignerRequest, SignerResponse,
};
use micronode_proto::v1;
use micronode_testenv::nodes::{Env, TIMEOUT};

/// LDK's first commitment number (they count down).
const FIRST_COMMITMENT: u64 = (1 << 48) - 1;

fn rule(what: &str, response: &SignerResponse) -> String {
    match response {
        SignerResponse::Refused { rule, .. } => rule.clone(),
        other => panic!("{what} was not refused: {other:?}"),
    }
}

/// The channel as the operator learned it from the node's requests.
struct Learned {
    keys_id: Hex,
    params: Hex,
    parsed: ChannelTransactionParameters,
}

fn learned(recorded: &[SignerRequest], skip: Option<&Hex>) -> Learned {
    recorded
        .iter()
        .find_map(|r| match r {
            SignerRequest::Channel {
                keys_id,
                op: ChannelOp::SignCounterparty { params, .. },
            } if Some(keys_id) != skip => Some(Learned {
                keys_id: keys_id.clone(),
                params: params.clone(),
                parsed: ChannelTransactionParameters::read(&mut &params.0[..], None)
                    .expect("params"),
            }),
            _ => None,
        })
        .expect("a signed counterparty commitment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oracles_fee_drains_and_hidden_outputs_are_refused() {
    let env = Env::new("thief-signing").await;
    let b = env.start_node("b").await;
    // The signer's default policy.
    let ProxiedTenant {
        node: a,
        proxy,
        signer: signer_process,
        public,
        ..
    } = start_behind_proxy(&env, None).await;
    let wallet = Wallet {
        xpub: Xpub::from_str(public["wallet_xpub"].as_str().expect("xpub")).expect("xpub"),
    };
    let mut client = a.client().await;
    let mut rules = Vec::new();
    let mut refuse = |what: &str, response: SignerResponse, expected: &str| {
        let got = rule(what, &response);
        assert_eq!(got, expected, "{what}: {response:?}");
        rules.push(got);
    };

    // ---- Fees as a drain, and hidden change: the tenant's wallet, two coins.
    let coin1 = deposit(&env, &mut client, &wallet, 300_000).await;
    let coin2 = deposit(&env, &mut client, &wallet, 200_000).await;
    let both = [&coin1, &coin2];
    let change = wallet.p2wpkh(&[1, 0]);
    // Two requests, each lying about a different input's amount, would each see a small fee
    // and together sign a transaction paying 490,000 sat to miners.
    for lie in 0..2 {
        let mut p = psbt(&wallet, &both, 10_000, change.clone(), Some(&[1, 0]));
        p.inputs[lie].witness_utxo.as_mut().expect("utxo").value = Amount::from_sat(11_000);
        p.inputs[lie].non_witness_utxo = None;
        refuse(
            "a PSBT whose input amount comes from witness_utxo alone",
            proxy.call(sign_psbt(&p)).await,
            "policy-onchain-input-unverified",
        );
        let mut p = psbt(&wallet, &both, 10_000, change.clone(), Some(&[1, 0]));
        p.inputs[lie].non_witness_utxo = Some(coin1.prev_tx.clone());
        p.inputs[lie].witness_utxo.as_mut().expect("utxo").value = Amount::from_sat(11_000);
        if lie == 0 {
            // coin1's own transaction, but another output's amount claimed.
            p.inputs[0].non_witness_utxo = Some(coin2.prev_tx.clone());
        }
        refuse(
            "a PSBT whose previous transaction is not the input's",
            proxy.call(sign_psbt(&p)).await,
            "policy-onchain-input-unverified",
        );
    }
    // With the amounts verified, the same drain is a fee the signer will not pay.
    refuse(
        "a wallet spend paying 98% to miners",
        proxy
            .call(sign_psbt(&psbt(
                &wallet,
                &both,
                10_000,
                change.clone(),
                Some(&[1, 0]),
            )))
            .await,
        "policy-onchain-fee-range",
    );
    // Hidden funds: change to the tenant's own key at paths and types recovery never scans.
    let hidden: [(&str, ScriptBuf, Vec<u32>); 3] = [
        (
            "a three-level path",
            wallet.p2wpkh(&[1, 5, 7]),
            vec![1, 5, 7],
        ),
        (
            "the last index",
            wallet.p2wpkh(&[1, (1 << 31) - 1]),
            vec![1, (1 << 31) - 1],
        ),
        (
            "a nested-segwit script",
            ScriptBuf::new_p2sh(&wallet.p2wpkh(&[1, 3]).script_hash()),
            vec![1, 3],
        ),
    ];
    for (what, script, path) in hidden {
        refuse(
            &format!("change to {what}"),
            proxy
                .call(sign_psbt(&psbt(
                    &wallet,
                    &both,
                    499_000,
                    script,
                    Some(&path),
                )))
                .await,
            "policy-wallet-layout",
        );
    }
    // A correct spend within the layout is signed (and never broadcast).
    let signed = proxy
        .call(sign_psbt(&psbt(
            &wallet,
            &both,
            499_000,
            change.clone(),
            Some(&[1, 0]),
        )))
        .await;
    assert!(
        matches!(
            signed,
            SignerResponse::Ok {
                reply: SignerReply::Psbt { .. }
            }
        ),
        "{signed:?}"
    );

    // ---- The channel, from a third coin.
    fund(&env, &mut client, 2_000_000).await;
    connect_to(&mut client, &b).await;
    let channel_id = open_to(&env, &mut client, &b).await;
    let funding = funding_of(&mut client, &channel_id).await;
    let invoice = b
        .create_invoice(Some(2_000_000), "honest", 3600)
        .expect("invoice");
    let paid = pay(&mut client, invoice.invoice, true).await.expect("pay");
    assert_eq!(paid.status, v1::PaymentStatus::Succeeded as i32);
    settled(&client, &b).await;
    let channel = learned(&proxy.recorded(), None);
    let ours = channel.parsed.holder_pubkeys.funding_pubkey;
    let theirs = channel
        .parsed
        .counterparty_parameters
        .as_ref()
        .expect("counterparty")
        .pubkeys
        .funding_pubkey;
    let a_id = PublicKey::from_str(&a.node_id).expect("node id");
    let position = env.short_channel_id(&funding).await;
    let announcement = |chain: bitcoin::constants::ChainHash, scid: u64, excess: Vec<u8>| {
        let (n1, n2, k1, k2) = if a_id.serialize() < b.node_id().serialize() {
            (a_id, b.node_id(), ours, theirs)
        } else {
            (b.node_id(), a_id, theirs, ours)
        };
        UnsignedChannelAnnouncement {
            features: lightning::types::features::ChannelFeatures::empty(),
            chain_hash: chain,
            short_channel_id: scid,
            node_id_1: NodeId::from_pubkey(&n1),
            node_id_2: NodeId::from_pubkey(&n2),
            bitcoin_key_1: NodeId::from_pubkey(&k1),
            bitcoin_key_2: NodeId::from_pubkey(&k2),
            excess_data: excess,
        }
    };
    let regtest = bitcoin::constants::ChainHash::REGTEST;
    let sign_announcement = |message: Vec<u8>| SignerRequest::Channel {
        keys_id: channel.keys_id.clone(),
        op: ChannelOp::SignAnnouncement {
            params: channel.params.clone(),
            message: Hex(message),
        },
    };

    // ---- Signing oracles. The theft: a transaction spending the funding output to the
    // operator. Its BIP 143 preimage offered as an "announcement" for the funding key to sign.
    let theft = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: funding,
            ..Default::default()
        }],
        output: vec![TxOut {
            value: Amount::from_sat(CHANNEL_SAT - 1_000),
            script_pubkey: foreign_script(),
        }],
    };
    let funding_script = chan_utils::make_funding_redeemscript(&ours, &theirs);
    let mut preimage = Vec::new();
    SighashCache::new(&theft)
        .segwit_v0_encode_signing_data_to(
            &mut preimage,
            0,
            &funding_script,
            Amount::from_sat(CHANNEL_SAT),
            EcdsaSighashType::All,
        )
        .expect("preimage");
    proxy.cut_off_node(true);
    refuse(
        "a sighash preimage as a channel announcement",
        proxy.call(sign_announcement(preimage.clone())).await,
        "policy-gossip-content",
    );
    let wrong: [(&str, UnsignedChannelAnnouncement); 3] = [
        (
            "another chain",
            announcement(bitcoin::constants::ChainHash::BITCOIN, position, vec![]),
        ),
        (
            "another channel",
            announcement(regtest, position + 1, vec![]),
        ),
        (
            "trailing data",
            announcement(regtest, position, preimage.clone()),
        ),
    ];
    for (what, msg) in wrong {
        refuse(
            &format!("an announcement for {what}"),
            proxy.call(sign_announcement(msg.encode())).await,
            "policy-gossip-content",
        );
    }
    // The channel's real announcement is signed, by the funding key, over exactly its bytes.
    let real = announcement(regtest, position, vec![]);
    let signed = proxy.call(sign_announcement(real.encode())).await;
    let SignerResponse::Ok {
        reply: SignerReply::Signature { sig },
    } = signed
    else {
        panic!("the channel's own announcement was not signed: {signed:?}");
    };
    let digest = Message::from_digest(sha256d::Hash::hash(&real.encode()).to_byte_array());
    Secp256k1::verification_only()
        .verify_ecdsa(
            &digest,
            &bitcoin::secp256k1::ecdsa::Signature::from_compact(&sig.0).expect("sig"),
            &ours,
        )
        .expect("a funding-key signature over the announcement");
    // Node-key gossip for someone else, or another chain.
    let mut node_announcement = Vec::from(257u16.to_be_bytes());
    node_announcement.extend(
        UnsignedNodeAnnouncement {
            features: lightning::types::features::NodeFeatures::empty(),
            timestamp: 1,
            node_id: NodeId::from_pubkey(&b.node_id()),
            rgb: [0; 3],
            alias: lightning::routing::gossip::NodeAlias([0; 32]),
            addresses: vec![],
            excess_address_data: vec![],
            excess_data: vec![],
        }
        .encode(),
    );
    refuse(
        "a node announcement for the gateway",
        proxy
            .call(SignerRequest::SignGossip {
                message: Hex(node_announcement),
            })
            .await,
        "policy-gossip-content",
    );
    let mut update = Vec::from(258u16.to_be_bytes());
    update.extend(
        UnsignedChannelUpdate {
            chain_hash: bitcoin::constants::ChainHash::BITCOIN,
            short_channel_id: position,
            timestamp: 1,
            message_flags: 1,
            channel_flags: 0,
            cltv_expiry_delta: 40,
            htlc_minimum_msat: 1,
            htlc_maximum_msat: 1_000,
            fee_base_msat: 0,
            fee_proportional_millionths: 0,
            excess_data: vec![],
        }
        .encode(),
    );
    refuse(
        "a channel update for another chain",
        proxy
            .call(SignerRequest::SignGossip {
                message: Hex(update),
            })
            .await,
        "policy-gossip-content",
    );
    let foreign_invoice = {
        let key = SecretKey::new(&mut rand::thread_rng());
        lightning_invoice::InvoiceBuilder::new(lightning_invoice::Currency::Bitcoin)
            .description("not yours".into())
            .payment_hash(bitcoin::hashes::sha256::Hash::hash(b"x"))
            .payment_secret(lightning::types::payment::PaymentSecret([1; 32]))
            .current_timestamp()
            .min_final_cltv_expiry_delta(18)
            .build_signed(|m| Secp256k1::new().sign_ecdsa_recoverable(m, &key))
            .expect("invoice")
            .to_string()
    };
    refuse(
        "an invoice for another network",
        proxy
            .call(SignerRequest::SignInvoice {
                invoice: foreign_invoice,
            })
            .await,
        "policy-invoice-content",
    );

    // ---- Sweeps above the fee ceiling, of outputs never seen on chain, multi-input claims.
    let descriptor =
        SpendableOutputDescriptor::StaticPaymentOutput(StaticPaymentOutputDescriptor {
            outpoint: lightning::chain::transaction::OutPoint {
                txid: funding.txid,
                index: funding.vout as u16,
            },
            output: TxOut {
                value: Amount::from_sat(CHANNEL_SAT),
                script_pubkey: funding_script.to_p2wsh(),
            },
            channel_keys_id: channel.keys_id.0.clone().try_into().expect("32 bytes"),
            channel_value_satoshis: CHANNEL_SAT,
            channel_transaction_parameters: Some(channel.parsed.clone()),
        });
    let spend = |feerate: u32, change_path: Vec<u32>| SignerRequest::SpendOutputs {
        descriptors: vec![Hex(descriptor.encode())],
        outputs: Hex(bitcoin::consensus::serialize(&Vec::<TxOut>::new())),
        change_script: Hex(wallet.p2wpkh(&change_path).to_bytes()),
        change_path,
        feerate_sat_per_kw: feerate,
        locktime: None,
    };
    refuse(
        "a sweep at 1,000 sat/vB",
        proxy.call(spend(250_000, vec![1, 1])).await,
        "policy-sweep-fee-cap",
    );
    refuse(
        "a sweep to a hidden path",
        proxy.call(spend(253, vec![1, 7, 7])).await,
        "policy-wallet-layout",
    );
    refuse(
        "a sweep of an output the signer never saw a channel transaction create",
        proxy.call(spend(253, vec![1, 1])).await,
        "policy-sweep-input-unknown",
    );
    let justice = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![
            TxIn {
                previous_output: funding,
                ..Default::default()
            },
            TxIn {
                previous_output: coin1.outpoint,
                ..Default::default()
            },
        ],
        output: vec![TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: wallet.p2wpkh(&[1, 1]),
        }],
    };
    refuse(
        "a two-input justice transaction with inputs the signer cannot value",
        proxy
            .call(SignerRequest::Channel {
                keys_id: channel.keys_id.clone(),
                op: ChannelOp::SignJusticeOutput {
                    tx: Hex(bitcoin::consensus::serialize(&justice)),
                    input: 0,
                    amount: CHANNEL_SAT,
                    per_commitment_key: Hex(vec![7; 32]),
                    wallet_path: vec![1, 1],
                },
            })
            .await,
        "policy-sweep-input-unknown",
    );
    // A cooperative close paying the tenant's share to its own key far beyond the scan window.
    refuse(
        "a close to a hidden wallet index",
        proxy
            .call(SignerRequest::Channel {
                keys_id: channel.keys_id.clone(),
                op: ChannelOp::SignClosing {
                    params: channel.params.clone(),
                    to_holder_sat: CHANNEL_SAT - 2_000 - 2_000,
                    to_counterparty_sat: 2_000,
                    holder_script: Hex(wallet.p2wpkh(&[0, 1_000_000]).to_bytes()),
                    counterparty_script: Hex(foreign_script().to_bytes()),
                    holder_wallet_path: vec![0, 1_000_000],
                },
            })
            .await,
        "policy-wallet-layout",
    );
    proxy.cut_off_node(false);

    // ---- Fee bumps (anchor channels): a wallet spend may take an input that is not the
    // wallet's only as an anchor or HTLC output of the tenant's channels, paired with an output
    // of the same value, and the fee over the whole package stays under the sweep ceiling.
    let coin3 = deposit(&env, &mut client, &wallet, 100_000).await;
    // A commitment-shaped parent spending the channel's funding output, with the tenant's
    // anchor (the operator cannot make it valid, but the signer checks the child on its own).
    let parent = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: funding,
            ..Default::default()
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(330),
                script_pubkey: chan_utils::get_keyed_anchor_redeemscript(&ours).to_p2wsh(),
            },
            TxOut {
                value: Amount::from_sat(CHANNEL_SAT - 330 - 500),
                script_pubkey: foreign_script(),
            },
        ],
    };
    let anchor = OutPoint::new(parent.compute_txid(), 0);
    let bump = |foreign: OutPoint, extra: Option<TxOut>, change_sat: u64| -> Psbt {
        let mut output = vec![TxOut {
            value: Amount::from_sat(change_sat),
            script_pubkey: change.clone(),
        }];
        output.extend(extra);
        let tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: [foreign, coin3.outpoint]
                .iter()
                .map(|o| TxIn {
                    previous_output: *o,
                    ..Default::default()
                })
                .collect(),
            output,
        };
        let mut p = Psbt::from_unsigned_tx(tx).expect("psbt");
        if foreign == anchor {
            p.inputs[0].witness_utxo = Some(parent.output[0].clone());
            p.inputs[0].non_witness_utxo = Some(parent.clone());
        }
        p.inputs[1].witness_utxo = Some(coin3.output.clone());
        p.inputs[1].non_witness_utxo = Some(coin3.prev_tx.clone());
        let (key, origin) = wallet.derivation(&coin3.path);
        p.inputs[1].bip32_derivation.insert(key, origin);
        let (key, origin) = wallet.derivation(&[1, 0]);
        p.outputs[0].bip32_derivation.insert(key, origin);
        p
    };
    let nowhere = OutPoint::new(bitcoin::Txid::from_byte_array([7; 32]), 0);
    refuse(
        "a fee bump whose other input is neither an anchor nor seen on chain",
        proxy.call(sign_psbt(&bump(nowhere, None, 99_000))).await,
        "policy-sweep-input-unknown",
    );
    refuse(
        "an anchor bump paying the wallet to miners",
        proxy.call(sign_psbt(&bump(anchor, None, 1_000))).await,
        "policy-sweep-fee-cap",
    );
    let skim = TxOut {
        value: Amount::from_sat(5_000),
        script_pubkey: foreign_script(),
    };
    refuse(
        "an anchor bump with an output to the operator",
        proxy
            .call(sign_psbt(&bump(anchor, Some(skim), 94_000)))
            .await,
        "policy-onchain-no-unknown-outputs",
    );
    // A bump shaped as LDK builds one, at a normal fee, is signed.
    let signed = proxy.call(sign_psbt(&bump(anchor, None, 99_500))).await;
    assert!(
        matches!(
            signed,
            SignerResponse::Ok {
                reply: SignerReply::Psbt { .. }
            }
        ),
        "{signed:?}"
    );

    // ---- Class 3: a second channel, funded but not confirmed, must not move past its first
    // state, whatever the node says.
    client
        .open_channel(v1::OpenChannelRequest {
            node_id: b.node_id().to_string(),
            amount_sat: 300_000,
            push_msat: 0,
            announce: Some(false),
        })
        .await
        .expect("open");
    micronode_testenv::wait_until("second funding broadcast", TIMEOUT, || async {
        !env.mempool().await.is_empty()
    })
    .await
    .expect("funding");
    let second = learned(&proxy.recorded(), Some(&channel.keys_id));
    let first_state = proxy
        .recorded()
        .iter()
        .find_map(|r| match r {
            SignerRequest::Channel {
                keys_id,
                op: ChannelOp::SignCounterparty { tx, .. },
            } if *keys_id == second.keys_id => Some(tx.clone()),
            _ => None,
        })
        .expect("the second channel's first state");
    let c0 = CommitmentTransaction::read(&mut &first_state.0[..]).expect("commitment");
    assert_eq!(c0.commitment_number(), FIRST_COMMITMENT);
    let next = CommitmentTransaction::new(
        FIRST_COMMITMENT - 1,
        &c0.trust().keys().per_commitment_point,
        c0.to_broadcaster_value_sat(),
        c0.to_countersignatory_value_sat(),
        c0.negotiated_feerate_per_kw(),
        vec![],
        &second.parsed.as_counterparty_broadcastable(),
        &Secp256k1::new(),
    );
    let response = proxy
        .call(SignerRequest::Channel {
            keys_id: second.keys_id.clone(),
            op: ChannelOp::SignCounterparty {
                params: second.params.clone(),
                tx: Hex(next.encode()),
                inbound_preimages: vec![],
                outbound_preimages: vec![],
            },
        })
        .await;
    assert!(
        matches!(
            &response,
            SignerResponse::Refused {
                temporary: true,
                ..
            }
        ),
        "{response:?}"
    );
    refuse(
        "a state past the first on an unconfirmed channel",
        response,
        "policy-commitment-spends-active-utxo",
    );

    // ---- Tenant nodes do not route: the node's next outgoing HTLC is relabelled as a forward
    // (a payment hash the tenant never approved).
    let answer = proxy.tamper_next(|r| {
        let SignerRequest::Channel {
            op: ChannelOp::SignCounterparty { params, tx, .. },
            ..
        } = r
        else {
            return false;
        };
        let parsed = ChannelTransactionParameters::read(&mut &params.0[..], None).expect("params");
        let c = CommitmentTransaction::read(&mut &tx.0[..]).expect("commitment");
        if c.nondust_htlcs().is_empty() {
            return false;
        }
        let htlcs = c
            .nondust_htlcs()
            .iter()
            .cloned()
            .map(|mut h| {
                h.payment_hash = lightning::types::payment::PaymentHash([9; 32]);
                h.transaction_output_index = None;
                h
            })
            .collect();
        let forged = CommitmentTransaction::new(
            c.commitment_number(),
            &c.trust().keys().per_commitment_point,
            c.to_broadcaster_value_sat(),
            c.to_countersignatory_value_sat(),
            c.negotiated_feerate_per_kw(),
            htlcs,
            &parsed.as_counterparty_broadcastable(),
            &Secp256k1::new(),
        );
        *tx = Hex(forged.encode());
        true
    });
    let bait = b
        .create_invoice(Some(3_000_000), "bait", 3600)
        .expect("invoice");
    let _ = pay(&mut client, bait.invoice, false).await.expect("sent");
    let response = tokio::time::timeout(TIMEOUT, answer)
        .await
        .expect("answered")
        .expect("answer");
    refuse("a forward", response, "policy-routing-disabled");

    // Every refusal is in the signer's log with its rule.
    let log = signer_process.log_text();
    for rule in &rules {
        assert!(
            log.lines()
                .any(|l| l.contains("REFUSED") && l.contains(rule.as_str())),
            "the signer logged {rule}"
        );
    }
    // Nothing of the operator's reached the chain: the only transaction waiting is the second
    // channel's funding (its outputs: the channel and the tenant's change), and the first
    // channel's balances are what the one payment made them.
    let mempool = env.mempool().await;
    assert_eq!(mempool.len(), 1, "{mempool:?}");
    assert!(mempool[0]
        .output
        .iter()
        .any(|o| o.value.to_sat() == 300_000));
    assert!(mempool[0].output.iter().all(|o| o.value.to_sat() == 300_000
        || (0..20).any(|i| wallet.p2wpkh(&[1, i]) == o.script_pubkey)));
    assert_eq!(channel_balance_sat(&b, &channel_id), 2_000);
    assert_eq!(env.prevout_value(&funding).await, CHANNEL_SAT);
    b.stop().await.expect("stop b");
}
