//! `ListPayments` page by page, newest first, with each invoice's description; and the whole
//! history, oldest first, for clients that do not page.

mod common;

use std::sync::Arc;

use common::{assert_error, Api, Env, TIMEOUT};
use micronode_proto::v1;
use micronode_proto::ErrorCode;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_page_newest_first_with_descriptions() {
    let env = Env::new("paging").await;
    let node = Arc::new(env.start_node("a").await);
    let api = Api::serve(&env, node.clone(), "a").await;
    let mut c = api.client().await;

    let mut hashes = Vec::new();
    for i in 0..5 {
        let created = c
            .create_invoice(v1::CreateInvoiceRequest {
                description_hash: None,
                amount_msat: Some(1_000 + i),
                description: format!("invoice {i}"),
                expiry_secs: None,
            })
            .await
            .expect("invoice")
            .into_inner();
        hashes.push(created.payment_hash);
    }

    let pager = c.clone();
    let page = |cursor: Option<String>| {
        let mut c = pager.clone();
        async move {
            c.list_payments(v1::ListPaymentsRequest {
                page_size: Some(2),
                cursor,
            })
            .await
            .expect("page")
            .into_inner()
        }
    };
    let first = page(None).await;
    let ids = |r: &v1::ListPaymentsResponse| -> Vec<String> {
        r.payments.iter().map(|p| p.id.clone()).collect()
    };
    assert_eq!(
        ids(&first),
        vec![hashes[4].clone(), hashes[3].clone()],
        "newest first"
    );
    let descriptions: Vec<Option<String>> = first
        .payments
        .iter()
        .map(|p| p.description.clone())
        .collect();
    assert_eq!(
        descriptions,
        vec![Some("invoice 4".to_string()), Some("invoice 3".to_string())]
    );

    // A payment created while paging goes before the first page, not into a later one.
    let late = c
        .create_invoice(v1::CreateInvoiceRequest {
            description_hash: None,
            amount_msat: None,
            description: "late".into(),
            expiry_secs: None,
        })
        .await
        .expect("invoice")
        .into_inner();
    let second = page(first.next_cursor.clone()).await;
    assert_eq!(ids(&second), vec![hashes[2].clone(), hashes[1].clone()]);
    let third = page(second.next_cursor.clone()).await;
    assert_eq!(ids(&third), vec![hashes[0].clone()]);
    assert_eq!(third.next_cursor, None, "the last page says so");
    assert_eq!(third.payments[0].description.as_deref(), Some("invoice 0"));
    let newest = page(None).await;
    assert_eq!(newest.payments[0].id, late.payment_hash);
    assert_eq!(newest.payments[0].description.as_deref(), Some("late"));

    // Without a page size: everything, oldest first, as before paging.
    let all = c
        .list_payments(v1::ListPaymentsRequest::default())
        .await
        .expect("all")
        .into_inner();
    let mut expected = hashes.clone();
    expected.push(late.payment_hash.clone());
    assert_eq!(ids(&all), expected);
    assert_eq!(all.next_cursor, None);

    for bad in [
        v1::ListPaymentsRequest {
            page_size: Some(2),
            cursor: Some("nonsense".into()),
        },
        v1::ListPaymentsRequest {
            page_size: None,
            cursor: first.next_cursor.clone(),
        },
        v1::ListPaymentsRequest {
            page_size: Some(1001),
            cursor: None,
        },
    ] {
        assert_error(
            c.list_payments(bad).await,
            Code::InvalidArgument,
            ErrorCode::InvalidInput,
        );
    }

    // The order survives a restart.
    drop(c);
    drop(api);
    tokio::time::timeout(TIMEOUT, node.stop())
        .await
        .expect("stopped in time")
        .expect("stop");
    drop(node);
    let node = env.start_node("a").await;
    let again = node.list_payments_page(2, None).expect("page");
    assert_eq!(
        again.payments[0].payment_hash,
        hex_bytes(&late.payment_hash)
    );
    let next = node
        .list_payments_page(2, again.next_cursor.as_deref())
        .expect("page");
    assert_eq!(next.payments[0].payment_hash, hex_bytes(&hashes[3]));
}

fn hex_bytes(s: &str) -> [u8; 32] {
    hex::decode(s).expect("hex").try_into().expect("32 bytes")
}
