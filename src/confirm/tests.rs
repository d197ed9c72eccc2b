use chrono::TimeDelta;

use super::*;

fn user(id: &str) -> ChatUser {
    ChatUser {
        connection: "chat".into(),
        id: id.into(),
        name: id.to_uppercase(),
    }
}

fn room(id: &str, kind: RoomKind) -> Room {
    Room {
        connection: "chat".into(),
        id: id.into(),
        kind,
        thread: None,
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn waiting(code: &str, need: Need) -> Waiting {
    Waiting {
        code: code.into(),
        need,
        sender: user("alice"),
        room: room("ops", RoomKind::Group),
        room_name: Some("ops".into()),
        org: None,
        message_id: Some("m1".into()),
        text: "packs uninstall foo".into(),
        shown: "packs uninstall foo".into(),
        alias_ref: "packs.uninstall".into(),
        pack: "packs".into(),
        parameters: vec![("packs".into(), "foo".into())],
        comment: None,
        created_at: now(),
        expires_at: now() + TimeDelta::seconds(120),
        offer_message: None,
    }
}

fn approval() -> Need {
    Need::Approval {
        rule: 0,
        approvers: vec!["@leads".into()],
    }
}

fn by<'a>(user: &'a ChatUser, room: &'a Room, is_approver: bool) -> Decider<'a> {
    Decider {
        user,
        room,
        is_approver,
        approve_in_direct: false,
    }
}

#[test]
fn the_sender_confirms_in_the_same_room_once() {
    let mut list = WaitingList::default();
    list.add(waiting("abcde", Need::Confirmation)).unwrap();
    let (alice, ops) = (user("alice"), room("ops", RoomKind::Group));
    let done = list
        .decide("ABCDE", Verb::Confirm, by(&alice, &ops, false), now())
        .unwrap();
    assert_eq!(done.alias_ref, "packs.uninstall");
    // Decided once: a second confirmation (a double press) finds nothing.
    assert_eq!(
        list.decide("abcde", Verb::Confirm, by(&alice, &ops, false), now()),
        Err(Refusal::Unknown)
    );
}

#[test]
fn another_person_or_another_room_cannot_confirm() {
    let mut list = WaitingList::default();
    list.add(waiting("abcde", Need::Confirmation)).unwrap();
    let (bob, alice) = (user("bob"), user("alice"));
    let (ops, dev) = (room("ops", RoomKind::Group), room("dev", RoomKind::Group));
    assert_eq!(
        list.decide("abcde", Verb::Confirm, by(&bob, &ops, true), now()),
        Err(Refusal::NotTheSender("confirm"))
    );
    assert_eq!(
        list.decide("abcde", Verb::Confirm, by(&alice, &dev, false), now()),
        Err(Refusal::WrongRoom)
    );
    assert_eq!(
        list.decide("abcde", Verb::Abort, by(&bob, &ops, true), now()),
        Err(Refusal::NotTheSender("abort"))
    );
    assert_eq!(list.len(), 1, "refusals leave it waiting");
    // The sender may abort from anywhere.
    assert!(list
        .decide("abcde", Verb::Abort, by(&alice, &dev, false), now())
        .is_ok());
    assert!(list.is_empty());
}

#[test]
fn an_expired_command_is_refused_and_removed() {
    let mut list = WaitingList::default();
    list.add(waiting("abcde", Need::Confirmation)).unwrap();
    let (alice, ops) = (user("alice"), room("ops", RoomKind::Group));
    let late = now() + TimeDelta::seconds(120);
    assert_eq!(
        list.decide("abcde", Verb::Confirm, by(&alice, &ops, false), late),
        Err(Refusal::Expired)
    );
    assert!(list.is_empty());
}

#[test]
fn expire_sweeps_only_what_is_due() {
    let mut list = WaitingList::default();
    list.add(waiting("aaaaa", Need::Confirmation)).unwrap();
    let mut later = waiting("bbbbb", approval());
    later.expires_at = now() + TimeDelta::seconds(600);
    list.add(later).unwrap();
    assert_eq!(list.next_expiry(), Some(now() + TimeDelta::seconds(120)));
    let gone = list.expire(now() + TimeDelta::seconds(121));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].code, "aaaaa");
    assert_eq!(list.next_expiry(), Some(now() + TimeDelta::seconds(600)));
}

#[test]
fn approval_needs_someone_else_from_the_approvers_in_the_room() {
    let mut list = WaitingList::default();
    list.add(waiting("abcde", approval())).unwrap();
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let (ops, dm) = (room("ops", RoomKind::Group), room("D1", RoomKind::Direct));
    assert_eq!(
        list.decide("abcde", Verb::Approve, by(&alice, &ops, true), now()),
        Err(Refusal::OwnCommand),
        "the sender is an approver too, and still may not approve it"
    );
    assert_eq!(
        list.decide("abcde", Verb::Confirm, by(&alice, &ops, true), now()),
        Err(Refusal::NeedsApproval)
    );
    assert_eq!(
        list.decide("abcde", Verb::Approve, by(&carol, &ops, false), now()),
        Err(Refusal::NotAnApprover)
    );
    assert_eq!(
        list.decide("abcde", Verb::Approve, by(&bob, &dm, true), now()),
        Err(Refusal::WrongPlace {
            direct_allowed: false
        })
    );
    let approved = list
        .decide("abcde", Verb::Approve, by(&bob, &ops, true), now())
        .unwrap();
    assert_eq!(approved.sender, alice);
}

#[test]
fn approval_in_a_direct_chat_when_allowed() {
    let mut list = WaitingList::default();
    list.add(waiting("abcde", approval())).unwrap();
    let bob = user("bob");
    let dm = room("D1", RoomKind::Direct);
    let decider = Decider {
        user: &bob,
        room: &dm,
        is_approver: true,
        approve_in_direct: true,
    };
    assert!(list.decide("abcde", Verb::Deny, decider, now()).is_ok());
}

#[test]
fn approve_on_a_confirmation_is_refused() {
    let mut list = WaitingList::default();
    list.add(waiting("abcde", Need::Confirmation)).unwrap();
    let (bob, ops) = (user("bob"), room("ops", RoomKind::Group));
    assert_eq!(
        list.decide("abcde", Verb::Approve, by(&bob, &ops, true), now()),
        Err(Refusal::NeedsConfirmation)
    );
}

#[test]
fn the_sender_may_withdraw_a_request_for_approval() {
    let mut list = WaitingList::default();
    list.add(waiting("abcde", approval())).unwrap();
    let (alice, ops) = (user("alice"), room("ops", RoomKind::Group));
    assert!(list
        .decide("abcde", Verb::Deny, by(&alice, &ops, false), now())
        .is_ok());
}

#[test]
fn codes_are_short_unambiguous_and_unique() {
    let mut list = WaitingList::default();
    list.add(waiting("aaaaa", Need::Confirmation)).unwrap();
    // The first draw collides with the waiting code; the next is taken.
    let mut draws = [[0u8; CODE_LEN], [1u8; CODE_LEN]].into_iter();
    let code = list.new_code(|| draws.next().unwrap());
    assert_eq!(code, "bbbbb");
    let code = list.new_code(|| [255, 30, 31, 62, 7]);
    assert_eq!(code.len(), CODE_LEN);
    assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)));
    assert!(!code.contains(['0', 'o', '1', 'l', 'i']));
}

#[test]
fn a_full_list_refuses_more() {
    let mut list = WaitingList::default();
    for n in 0..MAX_WAITING {
        list.add(waiting(&format!("c{n}"), Need::Confirmation))
            .unwrap();
    }
    assert_eq!(
        list.add(waiting("zzzzz", Need::Confirmation)),
        Err(Refusal::Full)
    );
}

#[test]
fn a_waiting_command_survives_serialisation() {
    let w = waiting("abcde", approval());
    let text = serde_json::to_string(&w).unwrap();
    assert_eq!(serde_json::from_str::<Waiting>(&text).unwrap(), w);
}

#[test]
fn codes_are_read_as_people_type_them() {
    assert_eq!(normalise_code(" #ABCDE "), "abcde");
    let mut list = WaitingList::default();
    list.add(waiting("abcde", Need::Confirmation)).unwrap();
    assert!(list.get("#AbCdE").is_some());
}
