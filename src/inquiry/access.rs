//! Whether a StackStorm user may answer an inquiry, as far as the bridge can know.
//!
//! StackStorm decides on `PUT` (`st2common/services/inquiry.py` `check_permission`): the
//! requester must be in `users` when that list is not empty, and hold one of `roles` when
//! that list is not empty — with RBAC off every role check passes (the no-op backend's
//! `user_has_role` returns true). The bridge repeats the check to keep the listing to
//! inquiries the person can actually answer; where it does not know the user's name or
//! roles it says so and leaves the decision to StackStorm.

use super::Inquiry;

/// What the bridge knows about the StackStorm user a call runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct St2Identity {
    /// The StackStorm username, when known.
    pub username: Option<String>,
    /// The user's RBAC roles, when known (`GET /api/v1/user`).
    pub roles: Option<Vec<String>>,
    /// Whether StackStorm has RBAC on, when known.
    pub rbac_enabled: Option<bool>,
}

/// The bridge's view of one user and one inquiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MayAnswer {
    /// StackStorm will let this user answer.
    Yes,
    /// StackStorm will refuse; why, in words.
    No(String),
    /// Only StackStorm can tell; what it will check, in words.
    Unknown(String),
}

/// Applies StackStorm's `check_permission` with what is known of `who`.
pub fn may_answer(inquiry: &Inquiry, who: &St2Identity) -> MayAnswer {
    let users = if inquiry.users.is_empty() {
        MayAnswer::Yes
    } else {
        let list = inquiry.users.join(", ");
        match &who.username {
            Some(name) if inquiry.users.iter().any(|u| u == name) => MayAnswer::Yes,
            Some(_) => MayAnswer::No(format!("only {list} may answer it")),
            None => MayAnswer::Unknown(format!("StackStorm lets only {list} answer it")),
        }
    };
    let roles = if inquiry.roles.is_empty() || who.rbac_enabled == Some(false) {
        MayAnswer::Yes
    } else {
        let list = inquiry.roles.join(", ");
        match &who.roles {
            Some(held) if inquiry.roles.iter().any(|r| held.contains(r)) => MayAnswer::Yes,
            Some(_) => MayAnswer::No(format!("it needs one of the roles {list}")),
            None => MayAnswer::Unknown(format!("StackStorm checks for one of the roles {list}")),
        }
    };
    match (users, roles) {
        (MayAnswer::No(why), _) | (_, MayAnswer::No(why)) => MayAnswer::No(why),
        (MayAnswer::Unknown(a), MayAnswer::Unknown(b)) => MayAnswer::Unknown(format!("{a}; {b}")),
        (MayAnswer::Unknown(why), _) | (_, MayAnswer::Unknown(why)) => MayAnswer::Unknown(why),
        (MayAnswer::Yes, MayAnswer::Yes) => MayAnswer::Yes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inquiry(users: &[&str], roles: &[&str]) -> Inquiry {
        serde_json::from_value(json!({"id": "i1", "users": users, "roles": roles})).unwrap()
    }

    fn named(name: &str) -> St2Identity {
        St2Identity {
            username: Some(name.into()),
            ..St2Identity::default()
        }
    }

    #[test]
    fn users_are_checked_when_the_name_is_known() {
        assert_eq!(
            may_answer(&inquiry(&[], &[]), &named("bob")),
            MayAnswer::Yes
        );
        assert_eq!(
            may_answer(&inquiry(&["alice", "bob"], &[]), &named("bob")),
            MayAnswer::Yes
        );
        assert_eq!(
            may_answer(&inquiry(&["alice"], &[]), &named("bob")),
            MayAnswer::No("only alice may answer it".into())
        );
        assert!(matches!(
            may_answer(&inquiry(&["alice"], &[]), &St2Identity::default()),
            MayAnswer::Unknown(_)
        ));
    }

    #[test]
    fn roles_pass_without_rbac_and_are_checked_when_known() {
        let admins = inquiry(&[], &["admin"]);
        let mut who = named("bob");
        assert!(matches!(may_answer(&admins, &who), MayAnswer::Unknown(_)));
        who.rbac_enabled = Some(false);
        assert_eq!(may_answer(&admins, &who), MayAnswer::Yes);
        who.rbac_enabled = Some(true);
        who.roles = Some(vec!["observer".into()]);
        assert_eq!(
            may_answer(&admins, &who),
            MayAnswer::No("it needs one of the roles admin".into())
        );
        who.roles = Some(vec!["admin".into()]);
        assert_eq!(may_answer(&admins, &who), MayAnswer::Yes);
    }

    #[test]
    fn a_known_refusal_wins_over_an_unknown() {
        let both = inquiry(&["alice"], &["admin"]);
        assert!(matches!(may_answer(&both, &named("bob")), MayAnswer::No(_)));
    }
}
