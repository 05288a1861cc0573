//! A tenant leaves its operator with its node: `host tenant export` on the old fleet, `host
//! tenant import` into another operator's fleet (its own database and fleet key), its signer
//! pairs with the new host (and so no longer with the old), and its node id, channel and
//! balance carry on: it gets paid and pays. The old fleet's hosts stop running it and refuse
//! to run it again, even after a restart.

mod daemon;

use std::path::Path;
use std::process::{Command, Stdio};

use daemon::host::*;
use daemon::signer::SignerProcess;
use daemon::tenant::{assert_no_close, outcome_mining};
use micronode_node::store::testing::TestDatabase;
use micronode_node::PaymentStatus;
use micronode_proto::v1;
use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::wait_until;

/// Runs `micronode host tenant <args>` on a fleet's database; its JSON, or its error text.
fn transfer(args: &[&str], db: &TestDatabase) -> Result<serde_json::Value, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_micronode"))
        .args(["host", "tenant"])
        .args(args)
        .args(["--fleet-database", &db.url])
        .stdin(Stdio::null())
        .output()
        .expect("run host tenant");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn key_file(dir: &Path, name: &str, hex_byte: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, hex_byte.repeat(32)).expect("key file");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_moves_to_another_operator_with_its_channel() {
    let env = Env::new("fleet-export").await;
    let (db_old, db_new) = (
        TestDatabase::new("fleet_export_old"),
        TestDatabase::new("fleet_export_new"),
    );
    let key_old = key_file(&env.dir.0, "old.key", "41");
    let key_new = key_file(&env.dir.0, "new.key", "42");
    // The fleet's gateway serves JIT channels; an outside payer has a channel to it.
    let FleetGateway {
        gateway,
        events: mut gateway_events,
        payer,
        peer: gateway_peer,
    } = fleet_gateway(&env).await;
    let host = |name: &str, db: &TestDatabase, key: &Path| {
        HostProcess::start_fleet(
            &env,
            &env.dir.0.join(name),
            &db.url,
            key,
            name,
            &gateway_peer,
            &[],
        )
    };

    // Alice starts with the old operator and gets her channel.
    let mut old = host("old", &db_old, &key_old);
    let mut alice = provision(&env, &old, "alice").await;
    let mut client = door(&old.api(), &alice.app.token, None).await;
    first_payment(&env, &payer, &mut client, 50_000_000).await;
    assert_eq!(in_channels_sat(&mut client).await, 48_000);

    // She leaves: the old host lets go of her, and a second export finds nothing to run.
    let bundle = env.dir.0.join("alice.bundle");
    let bundle_arg = bundle.display().to_string();
    let moved = transfer(&["export", "alice", "--out", &bundle_arg], &db_old).expect("export");
    assert_eq!(moved["id"], alice.id.as_str());
    assert_eq!(moved["node_id"], alice.node_id.as_str());
    assert!(moved["entries"].as_u64().expect("entries") > 3, "{moved}");
    assert!(
        old.admin(&["show", &alice.id]).is_err(),
        "the old host let go"
    );
    let again = transfer(&["export", "alice", "--out", &bundle_arg], &db_old);
    assert!(again.is_err_and(|e| e.contains("exists")), "no overwrite");

    // The new operator imports her; its host takes her and waits for her signer to pair.
    let new = host("new", &db_new, &key_new);
    let imported = transfer(&["import", &bundle_arg], &db_new).expect("import");
    assert_eq!(imported["id"], alice.id.as_str());
    let refused = transfer(&["import", &bundle_arg], &db_new).expect_err("twice");
    assert!(refused.contains("exists"), "{refused}");
    let mut enrolment = None;
    wait_until("the new host waits for alice's signer", TIMEOUT, || {
        // A code once her signer link listens.
        enrolment = new.admin(&["pair", &alice.id]).ok();
        std::future::ready(enrolment.is_some())
    })
    .await
    .expect("taken");
    let enrolment = enrolment.expect("an enrolment");
    assert_eq!(enrolment["tenant"]["state"], "waiting_for_signer");
    let code = enrolment["pairing_code"]
        .as_str()
        .expect("code")
        .to_string();
    let address = enrolment["tenant"]["signer_address"]
        .as_str()
        .expect("address")
        .to_string();
    alice.signer.kill_9();
    alice.signer = SignerProcess::start(&alice.signer.dir, &address, Some(&code), &env.bitcoind);
    wait_until("alice active on the new host", TIMEOUT, || async {
        new.admin(&["show", &alice.id])
            .is_ok_and(|shown| shown["state"] == "active" && shown["signer_connected"] == true)
    })
    .await
    .expect("active");
    assert_eq!(new.show(&alice.id)["node_id"], alice.node_id.as_str());

    // Her channel and balance carried on: she is paid, and pays.
    let mut client = door(&new.api(), &alice.app.token, None).await;
    wait_until("alice's channel usable", TIMEOUT, || {
        let mut c = client.clone();
        async move { spendable_msat(&mut c).await > 0 }
    })
    .await
    .expect("usable");
    assert_eq!(in_channels_sat(&mut client).await, 48_000);
    let invoice_in = invoice(&mut client, 5_000_000).await;
    let id = payer.pay_invoice(&invoice_in, None, None).expect("pay");
    let paid = outcome_mining(&env, &payer, &id).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
    agrees(&mut client, &invoice_in, &paid, 5_000_000).await;
    let to_payer = payer
        .create_invoice(Some(3_000_000), "from alice", 3600)
        .expect("invoice");
    let sent = client
        .pay_invoice(v1::PayInvoiceRequest {
            invoice: to_payer.invoice.clone(),
            wait: true,
            ..Default::default()
        })
        .await
        .expect("pay")
        .into_inner();
    assert_eq!(sent.status, v1::PaymentStatus::Succeeded as i32, "{sent:?}");
    let fee_sat = sent.fee_msat.unwrap_or_default().div_ceil(1000);
    wait_until("alice's balance settles", TIMEOUT, || {
        let mut c = client.clone();
        async move { in_channels_sat(&mut c).await == 48_000 + 5_000 - 3_000 - fee_sat }
    })
    .await
    .expect("to the sat");
    assert_no_close(&mut gateway_events);

    // The old operator's host, restarted, still does not run her.
    old.terminate();
    let old = host("old", &db_old, &key_old);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        old.admin(&["show", &alice.id]).is_err(),
        "refused after a restart"
    );
    drop((old, new, alice));
    gateway.stop().await.expect("stop gateway");
    payer.stop().await.expect("stop payer");
}
