//! The handshakes and the transport as a thief would try them: a wrong phrase, a wrong key,
//! replayed, reordered and forged frames, and garbage in every act.

use micronode_lnc::{Handshake, LncError, Phrase, PublicKey, SecretKey, Transport};
use rand::{Rng, RngCore};
use secp256k1::Secp256k1;

fn fresh() -> SecretKey {
    Handshake::random_ephemeral()
}

fn public(secret: &SecretKey) -> PublicKey {
    secret.public_key(&Secp256k1::new())
}

/// Runs the acts; returns the first error and whose read raised it.
fn run(initiator: &mut Handshake, responder: &mut Handshake) -> Result<(), (bool, LncError)> {
    let mut turn = 0;
    while !(initiator.is_finished() && responder.is_finished()) {
        let (from, to, to_is_initiator) = if turn % 2 == 0 {
            (&mut *initiator, &mut *responder, false)
        } else {
            (&mut *responder, &mut *initiator, true)
        };
        let act = from.write_act().map_err(|e| (!to_is_initiator, e))?;
        to.read_act(&act).map_err(|e| (to_is_initiator, e))?;
        turn += 1;
    }
    Ok(())
}

fn pair() -> (Transport, Transport) {
    let phrase = Phrase::generate();
    let (client, node) = (fresh(), fresh());
    let mut i = Handshake::xx_initiator(client, phrase.stretch(), fresh());
    let mut r = Handshake::xx_responder(node, phrase.stretch(), fresh(), b"auth".to_vec());
    run(&mut i, &mut r).unwrap();
    (i.finish().unwrap().transport, r.finish().unwrap().transport)
}

#[test]
fn xx_pairs_and_learns_both_static_keys_and_the_auth_data() {
    let phrase = Phrase::generate();
    let (client, node) = (fresh(), fresh());
    let mut i = Handshake::xx_initiator(client, phrase.stretch(), fresh());
    let mut r = Handshake::xx_responder(node, phrase.stretch(), fresh(), b"token".to_vec());
    run(&mut i, &mut r).unwrap();
    let (mut i, mut r) = (i.finish().unwrap(), r.finish().unwrap());
    assert_eq!(i.remote_static, public(&node));
    assert_eq!(r.remote_static, public(&client));
    assert_eq!(i.auth_data, b"token");
    let frame = i.transport.encrypt(b"get_balance").unwrap();
    assert_eq!(r.transport.decrypt(&frame).unwrap(), b"get_balance");
    let frame = r.transport.encrypt(b"").unwrap();
    assert_eq!(i.transport.decrypt(&frame).unwrap(), b"");
}

#[test]
fn a_wrong_phrase_is_refused_by_the_node_at_act_one() {
    // Both sides hash the unmasked ephemeral key; with another phrase the node's hash differs
    // and act 1's tag fails there. The node sends nothing back.
    let (right, wrong) = (Phrase::generate(), Phrase::generate());
    let mut i = Handshake::xx_initiator(fresh(), wrong.stretch(), fresh());
    let mut r = Handshake::xx_responder(fresh(), right.stretch(), fresh(), b"secret".to_vec());
    let (initiator_failed, error) = run(&mut i, &mut r).unwrap_err();
    assert!(!initiator_failed);
    assert!(matches!(error, LncError::HandshakeAuth), "{error:?}");
    assert!(matches!(r.write_act(), Err(LncError::OutOfOrder(_))));
}

#[test]
fn an_impostor_node_without_the_phrase_fails_the_client_at_act_two() {
    // Act 1's tag uses an all-zero key, so anyone can accept it; act 2 cannot be made without
    // the phrase, and the client learns nothing of the impostor's auth data.
    let (right, wrong) = (Phrase::generate(), Phrase::generate());
    let mut i = Handshake::xx_initiator(fresh(), right.stretch(), fresh());
    let act1 = i.write_act().unwrap();
    let mut impostor = Handshake::xx_responder(fresh(), wrong.stretch(), fresh(), b"x".to_vec());
    assert!(
        impostor.read_act(&act1).is_err(),
        "its own hash differs too"
    );
    // It answers anyway with a well-formed act 2 of its own making.
    let mut forger = Handshake::xx_responder(fresh(), wrong.stretch(), fresh(), b"x".to_vec());
    let mut own = Handshake::xx_initiator(fresh(), wrong.stretch(), fresh());
    forger.read_act(&own.write_act().unwrap()).unwrap();
    let act2 = forger.write_act().unwrap();
    assert!(matches!(i.read_act(&act2), Err(LncError::HandshakeAuth)));
}

#[test]
fn kk_reconnects_with_the_stored_keys_and_refuses_another_key() {
    let (client, node) = (fresh(), fresh());
    let mut i = Handshake::kk_initiator(client, public(&node), fresh());
    let mut r = Handshake::kk_responder(node, public(&client), fresh(), b"again".to_vec());
    run(&mut i, &mut r).unwrap();
    let (mut i, mut r) = (i.finish().unwrap(), r.finish().unwrap());
    assert_eq!(i.auth_data, b"again");
    let frame = i.transport.encrypt(b"hi").unwrap();
    assert_eq!(r.transport.decrypt(&frame).unwrap(), b"hi");

    let stranger = fresh();
    let mut i = Handshake::kk_initiator(stranger, public(&node), fresh());
    let mut r = Handshake::kk_responder(node, public(&client), fresh(), Vec::new());
    let (initiator_failed, error) = run(&mut i, &mut r).unwrap_err();
    assert!(
        !initiator_failed,
        "the node refuses act 1 from a key it does not know"
    );
    assert!(matches!(error, LncError::HandshakeAuth));
}

#[test]
fn replayed_reordered_and_forged_frames_are_refused_for_good() {
    let (mut client, mut node) = pair();
    let first = client.encrypt(b"pay 1000").unwrap();
    assert_eq!(node.decrypt(&first).unwrap(), b"pay 1000");
    assert!(matches!(node.decrypt(&first), Err(LncError::FrameAuth)));
    let next = client.encrypt(b"next").unwrap();
    assert!(
        node.decrypt(&next).is_err(),
        "a broken connection stays broken"
    );

    let (mut client, mut node) = pair();
    let a = client.encrypt(b"a").unwrap();
    let b = client.encrypt(b"b").unwrap();
    assert!(matches!(node.decrypt(&b), Err(LncError::FrameAuth)));
    assert!(node.decrypt(&a).is_err());

    let (mut client, mut node) = pair();
    let mut frame = client.encrypt(b"amount=1000").unwrap();
    let last = frame.len() - 20;
    frame[last] ^= 1;
    assert!(matches!(node.decrypt(&frame), Err(LncError::FrameAuth)));

    let (_client, mut node) = pair();
    assert!(matches!(
        node.decrypt(&[0u8; 5]),
        Err(LncError::Length { .. })
    ));
}

#[test]
fn garbage_acts_give_typed_errors_never_a_panic() {
    let mut rng = rand::thread_rng();
    let phrase = Phrase::generate();
    let pw = phrase.stretch();
    for round in 0..400 {
        let len = rng.gen_range(0..200);
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        if round % 2 == 0 && len > 0 {
            bytes[0] = 2;
        }
        let mut responder = Handshake::xx_responder(fresh(), pw.clone(), fresh(), Vec::new());
        assert!(responder.read_act(&bytes).is_err());
        let mut initiator = Handshake::xx_initiator(fresh(), pw.clone(), fresh());
        initiator.write_act().unwrap();
        assert!(initiator.read_act(&bytes).is_err());
        let mut kk = Handshake::kk_responder(fresh(), public(&fresh()), fresh(), Vec::new());
        assert!(kk.read_act(&bytes).is_err());
    }
    let mut responder = Handshake::xx_responder(fresh(), pw, fresh(), Vec::new());
    let mut act = vec![3u8];
    act.extend([2u8; 49]);
    assert!(matches!(
        responder.read_act(&act),
        Err(LncError::Version(3))
    ));
    assert!(matches!(
        responder.write_act(),
        Err(LncError::OutOfOrder(_))
    ));
}
