//! Trigger tokens on every backend, then what the SQLite file holds of them.

use super::*;
use crate::domain::message::RoomKind;
use crate::store::trigger_tokens::MAX_TOKENS_PER_USER;

fn new_token(who: &UserKey, command: &str) -> NewTriggerToken {
    NewTriggerToken {
        user: who.clone(),
        user_name: "Alice".into(),
        connection: "slack".into(),
        room_id: "C1".into(),
        room_name: Some("#alerts".into()),
        room_kind: RoomKind::Group,
        thread: None,
        org: Some("T1".into()),
        command: command.into(),
        created_by: who.clone(),
    }
}

/// `token` with its last character changed (still well-formed).
fn with_other_secret(token: &str) -> String {
    let (head, last) = token.split_at(token.len() - 1);
    format!("{head}{}", if last == "A" { "B" } else { "A" })
}

fn created_tokens_verify_and_count_their_uses(f: &Fixture) {
    let tokens = f.store.trigger_tokens();
    let alice = user("U1");
    let (token, secret) = tokens
        .create(new_token(&alice, "nagios ack {{host}}"), at(0))
        .unwrap();
    let text = secret.expose_secret();
    assert!(text.starts_with(&format!("sbt_{}_", token.id)), "{text}");
    assert_eq!(text.len(), 56);
    assert_eq!(token.id.len(), 8);
    assert_eq!(token.user, alice);
    assert_eq!(token.command, "nagios ack {{host}}");
    assert_eq!(token.room_name.as_deref(), Some("#alerts"));
    assert_eq!((token.uses, token.last_used_at), (0, None));
    assert_eq!(token.created_at, at(0));

    let used = tokens.verify(text, at(5)).unwrap();
    assert_eq!(used.id, token.id);
    assert_eq!(used.command, token.command);
    // The organisation comes back for the access rules at call time.
    assert_eq!(used.org.as_deref(), Some("T1"));
    assert_eq!((used.uses, used.last_used_at), (1, Some(at(5))));
    let used = f.store.trigger_tokens().verify(text, at(6)).unwrap();
    assert_eq!((used.uses, used.last_used_at), (2, Some(at(6))));
    let listed = tokens.list(&alice).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], used);

    // Neither the token nor its secret part shows in Debug output.
    let dbg = format!("{token:?} {used:?} {secret:?}");
    assert!(!dbg.contains(&text[13..]), "{dbg}");
    assert!(!dbg.contains("nagios"), "{dbg}");
}

fn bad_tokens_are_told_apart(f: &Fixture) {
    let tokens = f.store.trigger_tokens();
    let (token, secret) = tokens
        .create(new_token(&user("U1"), "run x"), at(0))
        .unwrap();
    let text = secret.expose_secret();
    assert!(matches!(
        tokens.verify("Bearer nonsense", at(1)),
        Err(TokenRejected::Malformed)
    ));
    assert!(matches!(
        tokens.verify(&text[..text.len() - 1], at(1)),
        Err(TokenRejected::Malformed)
    ));
    let unknown = text.replacen(&token.id, "aaaaaaaa", 1);
    assert!(
        matches!(tokens.verify(&unknown, at(1)), Err(TokenRejected::Unknown { ref id }) if id == "aaaaaaaa")
    );
    let wrong = with_other_secret(text);
    match tokens.verify(&wrong, at(1)) {
        Err(e @ TokenRejected::WrongSecret { .. }) => {
            assert!(!e.to_string().contains(&text[13..]), "{e}");
        }
        other => panic!("expected WrongSecret, got {other:?}"),
    }
    // None of the refusals counted as a use.
    assert_eq!(tokens.list(&user("U1")).unwrap()[0].uses, 0);

    let revoked = tokens.revoke(&token.id, at(2)).unwrap().unwrap();
    assert_eq!(revoked.id, token.id);
    assert!(
        tokens.revoke(&token.id, at(3)).unwrap().is_none(),
        "only once"
    );
    assert!(tokens.revoke("zzzzzzzz", at(3)).unwrap().is_none());
    assert!(matches!(
        tokens.verify(text, at(4)),
        Err(TokenRejected::Revoked { ref id }) if *id == token.id
    ));
    // A wrong secret for a revoked id is still a wrong secret: "revoked" is only said
    // of a genuine token.
    assert!(matches!(
        tokens.verify(&wrong, at(4)),
        Err(TokenRejected::WrongSecret { .. })
    ));
    assert!(tokens.list(&user("U1")).unwrap().is_empty());
    assert!(tokens.list_all().unwrap().is_empty());
}

fn a_user_keeps_at_most_the_limit(f: &Fixture) {
    let tokens = f.store.trigger_tokens();
    let (alice, bob) = (user("U1"), user("U2"));
    let mut first_id = String::new();
    for i in 0..MAX_TOKENS_PER_USER {
        let (token, _) = tokens
            .create(new_token(&alice, "run x"), at(i as i64))
            .unwrap();
        if i == 0 {
            first_id = token.id;
        }
    }
    let err = tokens
        .create(new_token(&alice, "run x"), at(100))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::LimitReached {
                limit: MAX_TOKENS_PER_USER,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("20 trigger tokens"), "{err}");
    tokens.create(new_token(&bob, "run x"), at(100)).unwrap();
    // A revoked token no longer counts.
    tokens.revoke(&first_id, at(101)).unwrap().unwrap();
    tokens.create(new_token(&alice, "run x"), at(102)).unwrap();
    assert_eq!(tokens.list(&alice).unwrap().len(), MAX_TOKENS_PER_USER);

    let err = tokens.create(new_token(&bob, "  "), at(103)).unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
}

fn lists_are_per_user_and_ordered(f: &Fixture) {
    let tokens = f.store.trigger_tokens();
    let (alice, bob) = (user("U1"), user("U2"));
    let (b1, _) = tokens.create(new_token(&bob, "b1"), at(0)).unwrap();
    let (a1, _) = tokens.create(new_token(&alice, "a1"), at(1)).unwrap();
    let (a2, _) = tokens.create(new_token(&alice, "a2"), at(2)).unwrap();
    let (b2, _) = tokens.create(new_token(&bob, "b2"), at(3)).unwrap();
    assert_eq!(tokens.list(&alice).unwrap(), vec![a1.clone(), a2.clone()]);
    assert_eq!(tokens.list(&bob).unwrap(), vec![b1.clone(), b2.clone()]);
    assert!(tokens.list(&user("U3")).unwrap().is_empty());
    assert_eq!(tokens.list_all().unwrap(), vec![a1, a2, b1, b2]);
}

on_every_backend!(
    created_tokens_verify_and_count_their_uses,
    bad_tokens_are_told_apart,
    a_user_keeps_at_most_the_limit,
    lists_are_per_user_and_ordered,
);

#[test]
fn sqlite_keeps_only_a_hash_of_the_token_and_seals_the_command() {
    let tmp = TempStore::new();
    let alice = user("U1");
    let (token, secret) = {
        let tokens = tmp.open().trigger_tokens();
        assert!(tokens.is_persistent());
        tokens
            .create(new_token(&alice, "deploy SENTINEL-cmd-5150"), at(0))
            .unwrap()
    };
    let text = secret.expose_secret();
    let bytes = raw_bytes(tmp.dir.path());
    assert!(contains(&bytes, &token.id), "sanity: the id is stored");
    assert!(!contains(&bytes, text), "the token is not stored");
    assert!(!contains(&bytes, &text[13..]), "nor its secret part");
    assert!(
        !contains(&bytes, "SENTINEL-cmd-5150"),
        "the command is sealed"
    );

    // After a restart the token still works, and its uses were kept.
    let tokens = tmp.open().trigger_tokens();
    assert_eq!(tokens.verify(text, at(1)).unwrap().uses, 1);
    drop(tokens);
    let tokens = tmp.open().trigger_tokens();
    let again = tokens.verify(text, at(2)).unwrap();
    assert_eq!((again.uses, again.last_used_at), (2, Some(at(2))));
    assert_eq!(again.command, "deploy SENTINEL-cmd-5150");
    tokens.revoke(&token.id, at(3)).unwrap().unwrap();
    drop(tokens);
    assert!(matches!(
        tmp.open().trigger_tokens().verify(text, at(4)),
        Err(TokenRejected::Revoked { .. })
    ));
}
