//! A compromised operator: it controls the tenant node's host, so it sees every request the
//! node sends the tenant's signer and can send its own. It asks the signer to sign an on-chain
//! spend to a foreign address, a revoked (old) commitment, a payment over the velocity limit,
//! a cooperative close paying a foreign address, and the approval of an invoice the tenant
//! already paid (to pay it twice). Each is refused with a typed rule, the refusals are in the
//! signer's log, nothing reaches the chain, and the channel keeps working. The velocity
//! refusal also reaches an API caller of the node as a typed error.
//!
//! The signer tracks at most two payments here (`max_tracked_payments`): the last payment
//! succeeds only because the signer forgot the two settled ones.

mod daemon;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, Amount, CompressedPublicKey, Network, Psbt, TxOut};
use daemon::proxy::SignerProxy;
use daemon::signer::{self, SignerProcess};
use daemon::tenant::*;
use micronode_node::remote::protocol::{ChannelOp, Hex, SignerRequest, SignerResponse};
use micronode_proto::v1;
use micronode_proto::ERROR_CODE_METADATA;

const HOURLY_LIMIT_SAT: u64 = 100_000;
/// The most payments the signer tracks at once in this test.
const MAX_TRACKED_PAYMENTS: usize = 2;

fn foreign_address() -> Address {
    let secp = Secp256k1::new();
    let key = SecretKey::new(&mut rand::thread_rng());
    let public = CompressedPublicKey(key.public_key(&secp));
    Address::p2wpkh(&public, Network::Regtest)
}

fn assert_refused(what: &str, response: &SignerResponse, expected_rule: &str) -> String {
    match response {
        SignerResponse::Refused { rule, message, .. } => {
            assert_eq!(rule, expected_rule, "{what}: {message}");
            rule.clone()
        }
        other => panic!("{what} was not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compromised_operator_cannot_make_the_signer_sign_away_funds() {
    let env = micronode_testenv::nodes::Env::new("malicious").await;
    let b = env.start_node("b").await;

    // The tenant's signer (hourly limit 100k sat) reaches the node through the operator's
    // man in the middle.
    let signer_dir = env.dir.0.join("a-signer");
    std::fs::create_dir_all(&signer_dir).expect("dir");
    signer::init(&signer_dir);
    signer::set_policy(
        &signer_dir,
        &node_pays_alone(Some(&format!(
            "max_sat_per_hour = {HOURLY_LIMIT_SAT}\nmax_sat_per_day = 1000000\n\
             max_tracked_payments = {MAX_TRACKED_PAYMENTS}"
        ))),
    );
    let a_dir = env.dir.0.join("a");
    let (launch, node_listen, node_code) = launch_remote(&env, &a_dir);
    let proxy = SignerProxy::start(node_listen, node_code).await;
    let signer = SignerProcess::start(&signer_dir, &proxy.listen, Some(&proxy.code), &env.bitcoind);
    let a = launch.ready();
    let mut client = a.client().await;

    // Honest use: fund, open to B, two payments.
    fund(&env, &mut client, 2_000_000).await;
    connect_to(&mut client, &b).await;
    let channel_id = open_to(&env, &mut client, &b).await;
    let mut paid_invoices = Vec::new();
    for i in 0..MAX_TRACKED_PAYMENTS {
        let invoice = b
            .create_invoice(Some(20_000_000), format!("honest {i}"), 3600)
            .expect("invoice");
        let paid = pay(&mut client, invoice.invoice.clone(), true)
            .await
            .expect("pay");
        assert_eq!(paid.status, v1::PaymentStatus::Succeeded as i32);
        paid_invoices.push(invoice.invoice);
    }
    settled(&client, &b).await;
    let funding = funding_of(&mut client, &channel_id).await;
    let wallet_before = onchain(&mut client).await.total_sat;
    let b_balance = channel_balance_sat(&b, &channel_id);
    assert_eq!(b_balance, 40_000);

    // What the operator learned by watching the node's requests.
    let recorded = proxy.recorded();
    let funding_psbt = recorded
        .iter()
        .find_map(|r| match r {
            SignerRequest::SignWalletPsbt { psbt, .. } => Some(psbt.clone()),
            _ => None,
        })
        .expect("the node had the funding signed");
    let (keys_id, params) = recorded
        .iter()
        .rev()
        .find_map(|r| match r {
            SignerRequest::Channel {
                keys_id,
                op: ChannelOp::SignCounterparty { params, .. },
            } => Some((keys_id.clone(), params.clone())),
            _ => None,
        })
        .expect("the node had counterparty commitments signed");
    let holder_states: Vec<Hex> = recorded
        .iter()
        .filter_map(|r| match r {
            SignerRequest::Channel {
                keys_id: k,
                op: ChannelOp::ValidateHolder { tx, .. },
            } if *k == keys_id => Some(tx.clone()),
            _ => None,
        })
        .collect();
    assert!(holder_states.len() >= 3, "several states were validated");

    // The operator takes over: the node is cut off and the operator speaks to the signer.
    proxy.cut_off_node(true);
    let mut rules = Vec::new();

    // 1. An on-chain spend of the tenant's coins to the operator's address.
    let mut psbt = Psbt::deserialize(&funding_psbt.0).expect("psbt");
    let input_value: u64 = psbt
        .inputs
        .iter()
        .map(|i| i.witness_utxo.as_ref().expect("utxo").value.to_sat())
        .sum();
    psbt.unsigned_tx.output = vec![TxOut {
        value: Amount::from_sat(input_value - 1_000),
        script_pubkey: foreign_address().script_pubkey(),
    }];
    psbt.outputs = vec![Default::default()];
    let response = proxy
        .call(SignerRequest::SignWalletPsbt {
            psbt: Hex(psbt.serialize()),
            authorization: None,
        })
        .await;
    rules.push(assert_refused(
        "on-chain spend to a foreign address",
        &response,
        "policy-onchain-no-unknown-outputs",
    ));

    // 2. A revoked commitment: the first state the channel had, signed for broadcast.
    let response = proxy
        .call(SignerRequest::Channel {
            keys_id: keys_id.clone(),
            op: ChannelOp::SignHolder {
                params: params.clone(),
                tx: holder_states[0].clone(),
            },
        })
        .await;
    rules.push(assert_refused(
        "a revoked commitment",
        &response,
        "policy-holder-commitment-revoked",
    ));

    // 3. A payment that takes the hour over the velocity limit.
    let big = b
        .create_invoice(Some(80_000_000), "over the limit", 3600)
        .expect("invoice");
    let response = proxy
        .call(SignerRequest::ApproveInvoice {
            invoice: big.invoice.clone(),
            amount_msat: None,
            authorization: None,
        })
        .await;
    rules.push(assert_refused(
        "a payment over the velocity limit",
        &response,
        "velocity-limit",
    ));

    // 4. A cooperative close paying the tenant's share to the operator.
    let response = proxy
        .call(SignerRequest::Channel {
            keys_id: keys_id.clone(),
            op: ChannelOp::SignClosing {
                params: params.clone(),
                to_holder_sat: CHANNEL_SAT - b_balance - 2_000,
                to_counterparty_sat: b_balance,
                holder_script: Hex(foreign_address().script_pubkey().to_bytes()),
                counterparty_script: Hex(foreign_address().script_pubkey().to_bytes()),
                holder_wallet_path: Vec::new(),
            },
        })
        .await;
    rules.push(assert_refused(
        "a close to a foreign address",
        &response,
        "policy-mutual-destination-allowlisted",
    ));

    // 5. The first invoice again, to pay it twice. The signer forgets a payment soon after it
    // settles; from then on it refuses the hash.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let response = loop {
        let response = proxy
            .call(SignerRequest::ApproveInvoice {
                invoice: paid_invoices[0].clone(),
                amount_msat: None,
                authorization: None,
            })
            .await;
        // While the signer still tracks it, the answer is "already approved" or, with the
        // tracking limit reached, "too many payments": neither pays anything.
        let forgotten = matches!(&response, SignerResponse::Refused { rule, .. }
            if rule == micronode_signer::settled::SETTLED_RULE);
        if forgotten || std::time::Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    rules.push(assert_refused(
        "an invoice already paid",
        &response,
        micronode_signer::settled::SETTLED_RULE,
    ));

    // Every refusal is in the signer's log with its rule.
    let log = signer.log_text();
    for rule in &rules {
        assert!(
            log.lines()
                .any(|l| l.contains("REFUSED") && l.contains(rule.as_str())),
            "the signer logged the refusal {rule}"
        );
    }

    // Nothing reached the chain: the funding output is unspent and the mempool is empty.
    assert!(env.mempool().await.is_empty(), "nothing was broadcast");
    env.mine(1).await;
    assert_eq!(env.prevout_value(&funding).await, CHANNEL_SAT);

    // The node is back: the over-limit payment comes back to the API caller as a typed
    // refusal, a payment within the limit succeeds and the balances are intact.
    proxy.cut_off_node(false);
    let err = pay(&mut client, big.invoice, true)
        .await
        .expect_err("over the velocity limit");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert_eq!(
        err.metadata()
            .get(ERROR_CODE_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some("SIGNER_POLICY_REFUSED"),
        "{err:?}"
    );
    let invoice = b
        .create_invoice(Some(10_000_000), "within the limit", 3600)
        .expect("invoice");
    let paid = pay(&mut client, invoice.invoice, true).await.expect("pay");
    assert_eq!(paid.status, v1::PaymentStatus::Succeeded as i32, "{paid:?}");
    settled(&client, &b).await;
    assert_eq!(channel_balance_sat(&b, &channel_id), b_balance + 10_000);
    assert_eq!(onchain(&mut client).await.total_sat, wallet_before);
    let channel = channels(&mut client)
        .await
        .into_iter()
        .find(|c| c.channel_id == channel_id)
        .expect("channel still open");
    assert!(channel.is_usable);

    // Receiving is not capped either: the signer tracks at most two invoices it issued, and
    // forgets each once paid. A third invoice can be made only after that (a second or so).
    let received_before = channel_balance_sat(&b, &channel_id);
    for i in 0..=MAX_TRACKED_PAYMENTS {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let invoice = loop {
            let made = client
                .create_invoice(v1::CreateInvoiceRequest {
                    description_hash: None,
                    amount_msat: Some(5_000_000),
                    description: format!("receive {i}"),
                    expiry_secs: Some(3600),
                })
                .await;
            match made {
                Ok(made) => break made.into_inner().invoice,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("invoice {i} not yet: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => panic!("invoice {i}: the signer still tracks paid ones: {e:?}"),
            }
        };
        let id = b.pay_invoice(&invoice, None, None).expect("b pays");
        let paid = b
            .wait_payment(&id, std::time::Duration::from_secs(60))
            .await
            .expect("resolves");
        assert_eq!(paid.status, micronode_node::PaymentStatus::Succeeded);
        settled(&client, &b).await;
    }
    let received = 5_000 * (MAX_TRACKED_PAYMENTS as u64 + 1);
    assert_eq!(
        channel_balance_sat(&b, &channel_id),
        received_before - received,
        "the tenant received every payment, to the sat"
    );
    assert_eq!(onchain(&mut client).await.total_sat, wallet_before);

    b.stop().await.expect("stop b");
    drop(signer);
    drop(a);
}
