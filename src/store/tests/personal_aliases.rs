//! Personal aliases on every backend, then sealing at rest (SQLite).

use super::*;
use crate::store::personal_aliases::{MAX_ALIAS_TEXT_CHARS, MAX_PERSONAL_ALIASES};

fn names(list: &[PersonalAlias]) -> Vec<&str> {
    list.iter().map(|a| a.name.as_str()).collect()
}

fn set_get_list_remove(f: &Fixture) {
    let aliases = f.store.personal_aliases();
    let (alice, bob) = (user("U1"), user("U2"));
    assert_eq!(
        aliases
            .set(&alice, "Deploy", "deploy web to prod", at(0))
            .unwrap(),
        SetOutcome::Created
    );
    assert_eq!(
        aliases.set(&alice, "backup", "backup db", at(1)).unwrap(),
        SetOutcome::Created
    );
    assert_eq!(
        aliases.set(&bob, "deploy", "deploy api", at(2)).unwrap(),
        SetOutcome::Created
    );
    // Names are case-insensitive, stored lowercase.
    let got = aliases.get(&alice, "DEPLOY").unwrap().unwrap();
    assert_eq!(got.name, "deploy");
    assert_eq!(got.text, "deploy web to prod");
    assert_eq!(got.user, alice);
    assert_eq!(got.created_at, at(0));
    assert_eq!(
        aliases
            .set(&alice, "deploy", "deploy web to staging", at(3))
            .unwrap(),
        SetOutcome::Replaced
    );
    let got = f
        .store
        .personal_aliases()
        .get(&alice, "deploy")
        .unwrap()
        .unwrap();
    assert_eq!(got.text, "deploy web to staging");
    assert_eq!(got.created_at, at(3));

    // Each user sees their own, sorted by name.
    assert_eq!(
        names(&aliases.list(&alice).unwrap()),
        vec!["backup", "deploy"]
    );
    let bobs = aliases.list(&bob).unwrap();
    assert_eq!(names(&bobs), vec!["deploy"]);
    assert_eq!(bobs[0].text, "deploy api");
    assert!(aliases.list(&user("U3")).unwrap().is_empty());
    assert!(aliases.get(&user("U3"), "deploy").unwrap().is_none());

    assert!(aliases.remove(&alice, "Deploy").unwrap());
    assert!(!aliases.remove(&alice, "deploy").unwrap());
    assert!(aliases.get(&alice, "deploy").unwrap().is_none());
    assert_eq!(names(&aliases.list(&alice).unwrap()), vec!["backup"]);
    assert!(
        aliases.get(&bob, "deploy").unwrap().is_some(),
        "bob's stays"
    );
}

fn names_and_texts_are_checked(f: &Fixture) {
    let aliases = f.store.personal_aliases();
    let alice = user("U1");
    for bad in ["", "1st", "two words", "x!", &"a".repeat(33)] {
        let err = aliases.set(&alice, bad, "run x", at(0)).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidInput { .. }),
            "{bad}: {err:?}"
        );
        assert!(aliases.get(&alice, bad).unwrap().is_none());
        assert!(!aliases.remove(&alice, bad).unwrap());
    }
    for bad_text in [
        String::new(),
        "   ".into(),
        "x".repeat(MAX_ALIAS_TEXT_CHARS + 1),
    ] {
        let err = aliases.set(&alice, "x", &bad_text, at(0)).unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    }
    // The limit counts characters, not bytes.
    let longest = "ß".repeat(MAX_ALIAS_TEXT_CHARS);
    aliases.set(&alice, "x", &longest, at(0)).unwrap();
    assert_eq!(aliases.get(&alice, "x").unwrap().unwrap().text, longest);
    assert_eq!(aliases.list(&alice).unwrap().len(), 1);
}

fn a_user_keeps_at_most_the_limit(f: &Fixture) {
    let aliases = f.store.personal_aliases();
    let (alice, bob) = (user("U1"), user("U2"));
    for i in 0..MAX_PERSONAL_ALIASES {
        aliases
            .set(&alice, &format!("a{i:03}"), "run x", at(0))
            .unwrap();
    }
    let err = aliases.set(&alice, "one-more", "run x", at(1)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::LimitReached {
                limit: MAX_PERSONAL_ALIASES,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("100 personal aliases"), "{err}");
    assert!(aliases.get(&alice, "one-more").unwrap().is_none());
    // Replacing one at the limit is fine, and so is another user.
    assert_eq!(
        aliases.set(&alice, "A000", "run y", at(1)).unwrap(),
        SetOutcome::Replaced
    );
    aliases.set(&bob, "one-more", "run x", at(1)).unwrap();
    assert!(aliases.remove(&alice, "a050").unwrap());
    aliases.set(&alice, "one-more", "run x", at(2)).unwrap();
    assert_eq!(aliases.list(&alice).unwrap().len(), MAX_PERSONAL_ALIASES);
}

on_every_backend!(
    set_get_list_remove,
    names_and_texts_are_checked,
    a_user_keeps_at_most_the_limit,
);

#[test]
fn sqlite_alias_texts_are_sealed_at_rest_and_survive_reopen() {
    let tmp = TempStore::new();
    let alice = user("U1");
    {
        let aliases = tmp.open().personal_aliases();
        assert!(aliases.is_persistent());
        aliases
            .set(
                &alice,
                "deploy",
                "deploy web password=SENTINEL-hunter22",
                at(0),
            )
            .unwrap();
    }
    let bytes = raw_bytes(tmp.dir.path());
    assert!(contains(&bytes, "deploy"), "sanity: the name is stored");
    assert!(!contains(&bytes, "SENTINEL-hunter22"), "the text is sealed");
    assert!(!contains(&bytes, "deploy web"), "the text is sealed");
    let got = tmp
        .open()
        .personal_aliases()
        .get(&alice, "deploy")
        .unwrap()
        .unwrap();
    assert_eq!(got.text, "deploy web password=SENTINEL-hunter22");

    // A sealed text moved to another user's row does not open.
    {
        let aliases = tmp.open().personal_aliases();
        aliases
            .set(&user("U2"), "deploy", "harmless", at(1))
            .unwrap();
    }
    rusqlite::Connection::open(tmp.path())
        .unwrap()
        .execute(
            "UPDATE personal_aliases SET sealed = \
             (SELECT sealed FROM personal_aliases WHERE user_key = 'slack:U1') \
             WHERE user_key = 'slack:U2'",
            [],
        )
        .unwrap();
    let err = tmp
        .open()
        .personal_aliases()
        .get(&user("U2"), "deploy")
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter22"), "{err}");
}
