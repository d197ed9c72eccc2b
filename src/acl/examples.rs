//! The predecessors' documented access-control examples, expressed as `[access]` rules
//! and checked against tables of (who, where, what) → allow/deny.
//!
//! Mapping used throughout: a chat-ops "command" or Errbot plugin is a StackStorm pack,
//! a "sub-command" or plugin command is an alias in it (`pack.name`); Slack channels and
//! users are `slack:<id>`, XMPP ones `xmpp:<jid>`.

use super::test_support::{alias, builtin, check_table, in_dm, in_group, policy, subj, with_org};
use super::{DecisionReason, RoomKind};

// ---------------------------------------------------------------------------------------
// Nautobot ChatOps — docs "Access Grants" (nautobot-app-chatops, docs/models/accessgrant.md).
//
// Nautobot denies everything until granted; a request passes when there is a grant of
// each type — organization, channel and user — whose command/sub-command ('*' or a name)
// covers it and whose value is '*' or the platform id. Grants of one type say nothing
// about the others, so each example row group becomes one rule here whose who/where lists
// are the grants' values ('*' = the list left out), scoped to the organization.
// ---------------------------------------------------------------------------------------

const NB_ORG: &str = "T202B88NN";

/// Docs example "Unrestricted Access Within a Single Organization": every command and
/// sub-command for any channel and any user, within organization my-org.
#[test]
fn nautobot_unrestricted_access_within_a_single_organization() {
    let p = policy(
        r#"
        [access]
        default = "deny"
        admins = ["slack:UADMIN1"]

        [[access.rules]]
        aliases = ["*"]
        builtins = ["*"]
        orgs = ["T202B88NN"]
        action = "allow"
        comment = "my-org: every command, any channel, any user"
        "#,
    );
    let anyone_in_org = with_org(in_group("slack:U1234", "slack:C0001"), NB_ORG);
    let dm_in_org = with_org(in_dm("slack:U1234"), NB_ORG);
    let other_org = with_org(in_group("slack:U1234", "slack:C0001"), "T999OTHER");
    let no_org = in_group("console:bob", "console:ops");
    check_table(
        &p,
        &[
            (
                anyone_in_org.clone(),
                alias("jokes.tell", "tell a joke"),
                true,
            ),
            (
                dm_in_org.clone(),
                alias("network.status", "network status"),
                true,
            ),
            (anyone_in_org.clone(), builtin("help"), true),
            (other_org, alias("jokes.tell", "tell a joke"), false),
            (no_org, alias("jokes.tell", "tell a joke"), false),
            // Our floor: admin-only built-ins stay admin-only even under "allow all".
            (anyone_in_org.clone(), builtin("session_list"), false),
            (
                with_org(in_dm("slack:UADMIN1"), NB_ORG),
                builtin("session_list"),
                true,
            ),
        ],
    );
    let d = p.evaluate(&anyone_in_org, &builtin("acl"));
    assert_eq!(d.reason, DecisionReason::AdminFloor);
}

/// Docs example "Split Command Access to Different Channels": the `support` command in
/// the support channel, `devops` in the devops channel, any user, within my-org.
#[test]
fn nautobot_split_command_access_to_different_channels() {
    let p = policy(
        r#"
        [access]
        default = "deny"

        [[access.rules]]
        packs = ["support"]
        rooms = ["slack:C2020H455"]
        orgs = ["T202B88NN"]
        action = "allow"
        comment = "support team's channel"

        [[access.rules]]
        packs = ["devops"]
        rooms = ["slack:C3030I566"]
        orgs = ["T202B88NN"]
        action = "allow"
        comment = "devops team's channel"
        "#,
    );
    let support = |u: &str| with_org(in_group(u, "slack:C2020H455"), NB_ORG);
    let devops = |u: &str| with_org(in_group(u, "slack:C3030I566"), NB_ORG);
    check_table(
        &p,
        &[
            (
                support("slack:U1"),
                alias("support.ticket", "ticket 42"),
                true,
            ),
            (
                support("slack:U2"),
                alias("support.close", "close 42"),
                true,
            ),
            (
                devops("slack:U1"),
                alias("devops.deploy", "deploy web"),
                true,
            ),
            (
                support("slack:U1"),
                alias("devops.deploy", "deploy web"),
                false,
            ),
            (
                devops("slack:U1"),
                alias("support.ticket", "ticket 42"),
                false,
            ),
            (
                with_org(in_dm("slack:U1"), NB_ORG),
                alias("devops.deploy", "deploy web"),
                false,
            ),
            (
                with_org(in_group("slack:U1", "slack:C2020H455"), "T999OTHER"),
                alias("support.ticket", "ticket 42"),
                false,
            ),
            (
                support("slack:U1"),
                alias("jokes.tell", "tell a joke"),
                false,
            ),
        ],
    );
}

/// Docs example "Restrict Specific Command and Sub-command to Specific Users in a
/// Specific Channel": `jokes` and `weather` for anyone anywhere in my-org; `network` only
/// in the devops channel, where `history` and `status` are open to anyone and `redeploy`
/// only to admin1..admin3 (their user ids); other `network` sub-commands are not granted.
#[test]
fn nautobot_restrict_subcommand_to_specific_users_in_a_channel() {
    let p = policy(
        r#"
        [access]
        default = "deny"

        [access.groups]
        network-admins = ["slack:U2049K991", "slack:U2039K725", "slack:U7924K784"]

        [[access.rules]]
        packs = ["jokes"]
        orgs = ["T202B88NN"]
        action = "allow"

        [[access.rules]]
        aliases = ["network.history", "network.status"]
        rooms = ["slack:C3030I566"]
        orgs = ["T202B88NN"]
        action = "allow"

        [[access.rules]]
        aliases = ["network.redeploy"]
        users = ["@network-admins"]
        rooms = ["slack:C3030I566"]
        orgs = ["T202B88NN"]
        action = "allow"
        comment = "potentially destructive"

        [[access.rules]]
        packs = ["weather"]
        orgs = ["T202B88NN"]
        action = "allow"
        "#,
    );
    let devops = |u: &str| with_org(in_group(u, "slack:C3030I566"), NB_ORG);
    let general = |u: &str| with_org(in_group(u, "slack:C0000GEN"), NB_ORG);
    let redeploy = || alias("network.redeploy", "network redeploy core1");
    check_table(
        &p,
        &[
            (general("slack:U5555"), alias("jokes.tell", "joke"), true),
            (
                with_org(in_dm("slack:U5555"), NB_ORG),
                alias("weather.forecast", "weather"),
                true,
            ),
            (
                devops("slack:U5555"),
                alias("network.status", "network status"),
                true,
            ),
            (
                devops("slack:U5555"),
                alias("network.history", "network history"),
                true,
            ),
            (
                general("slack:U5555"),
                alias("network.status", "network status"),
                false,
            ),
            (devops("slack:U2049K991"), redeploy(), true),
            (devops("slack:U2039K725"), redeploy(), true),
            (devops("slack:U7924K784"), redeploy(), true),
            (devops("slack:U5555"), redeploy(), false),
            (general("slack:U2049K991"), redeploy(), false),
            (
                with_org(in_dm("slack:U2049K991"), NB_ORG),
                redeploy(),
                false,
            ),
            // A network sub-command with no grant at all.
            (
                devops("slack:U2049K991"),
                alias("network.wipe", "network wipe"),
                false,
            ),
            // Another organization.
            (
                with_org(in_group("slack:U5555", "slack:C0000GEN"), "T999OTHER"),
                alias("jokes.tell", "joke"),
                false,
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Errbot — docs "Restricting access" (errbot docs/user_guide/administration.rst; the same
// example is in errbot/config-template.py, with BOT_ADMINS = ('gbin@localhost',)).
//
// ACCESS_CONTROLS_DEFAULT = {} allows everything not listed, so default = "allow". Each
// ACCESS_CONTROLS entry is a set of filters that must all pass; here each becomes deny
// rules for what its filters reject, in front of the rules for what they accept.
// `allowrooms` restricts rooms only ("and direct messages" pass), `allowmuc = False`
// rejects rooms, `allowusers` accepts only the users listed. A plain command name matches
// that command in any plugin (`*.status`); `ChatRoom:*` is every command of one plugin
// (pack `ChatRoom`); `help` is our built-in.
// ---------------------------------------------------------------------------------------

#[test]
fn errbot_documented_access_controls() {
    let p = policy(
        r#"
        [access]
        default = "allow"
        admins = ["xmpp:gbin@localhost"]

        # "status": allowrooms someroom
        [[access.rules]]
        aliases = ["*.status"]
        rooms = ["direct", "xmpp:someroom@conference.localhost"]
        action = "allow"
        [[access.rules]]
        aliases = ["*.status"]
        action = "deny"

        # "about": denyusers *@evilhost; allowrooms room1, room2
        [[access.rules]]
        aliases = ["*.about"]
        users = ["xmpp:*@evilhost"]
        action = "deny"
        [[access.rules]]
        aliases = ["*.about"]
        rooms = ["direct", "xmpp:room1@conference.localhost", "xmpp:room2@conference.localhost"]
        action = "allow"
        [[access.rules]]
        aliases = ["*.about"]
        action = "deny"

        # "uptime": allowusers BOT_ADMINS
        [[access.rules]]
        aliases = ["*.uptime"]
        users = ["admins"]
        action = "allow"
        [[access.rules]]
        aliases = ["*.uptime"]
        action = "deny"

        # "help": allowmuc False
        [[access.rules]]
        builtins = ["help"]
        rooms = ["group"]
        action = "deny"

        # "ChatRoom:*": allowusers BOT_ADMINS
        [[access.rules]]
        packs = ["ChatRoom"]
        users = ["admins"]
        action = "allow"
        [[access.rules]]
        packs = ["ChatRoom"]
        action = "deny"
        "#,
    );
    let room = |u: &str, r: &str| in_group(u, &format!("xmpp:{r}@conference.localhost"));
    let status = || alias("Health.status", "status");
    let about = || alias("Help.about", "about");
    let uptime = || alias("Health.uptime", "uptime");
    check_table(
        &p,
        &[
            (room("xmpp:alice@localhost", "someroom"), status(), true),
            (room("xmpp:alice@localhost", "otherroom"), status(), false),
            (in_dm("xmpp:alice@localhost"), status(), true),
            (room("xmpp:bob@localhost", "room1"), about(), true),
            (room("xmpp:bob@localhost", "room2"), about(), true),
            (room("xmpp:bob@localhost", "room3"), about(), false),
            (in_dm("xmpp:bob@localhost"), about(), true),
            (room("xmpp:mallory@evilhost", "room1"), about(), false),
            (in_dm("xmpp:mallory@evilhost"), about(), false),
            (in_dm("xmpp:gbin@localhost"), uptime(), true),
            (room("xmpp:gbin@localhost", "room3"), uptime(), true),
            (in_dm("xmpp:bob@localhost"), uptime(), false),
            (room("xmpp:bob@localhost", "room1"), builtin("help"), false),
            (in_dm("xmpp:bob@localhost"), builtin("help"), true),
            (
                in_dm("xmpp:gbin@localhost"),
                alias("ChatRoom.room_join", "room join x"),
                true,
            ),
            (
                in_dm("xmpp:bob@localhost"),
                alias("ChatRoom.room_join", "room join x"),
                false,
            ),
            // Not listed: ACCESS_CONTROLS_DEFAULT = {} lets it through.
            (
                room("xmpp:mallory@evilhost", "room3"),
                alias("Utils.echo", "echo hi"),
                true,
            ),
        ],
    );
}

/// Errbot's argument filters (`allowargs`/`denyargs`, globs on the arguments) are listed
/// in the same docs section without an example; the example is the one in the pull
/// request that added them (errbot PR #1509): `echo` only for one user, in
/// `#test_channel`, with arguments `hello` or `hi*`. Our `texts` see the whole command
/// text, so the argument globs become `echo hello` and `echo hi*`.
#[test]
fn errbot_argument_globs() {
    let p = policy(
        r#"
        [access]
        default = "allow"

        [[access.rules]]
        texts = ["echo hello", "echo hi*"]
        users = ["slack:Uxxxxxxxx"]
        rooms = ["direct", "slack:name:test_channel"]
        action = "allow"

        [[access.rules]]
        aliases = ["*.echo"]
        action = "deny"
        "#,
    );
    let test_channel = |u: &str| {
        let mut s = in_group(u, "slack:C0TEST");
        s.room_name = Some("test_channel".into());
        s
    };
    let echo = |t: &str| alias("Utils.echo", t);
    check_table(
        &p,
        &[
            (test_channel("slack:Uxxxxxxxx"), echo("echo hello"), true),
            (
                test_channel("slack:Uxxxxxxxx"),
                echo("echo hi everyone"),
                true,
            ),
            (test_channel("slack:Uxxxxxxxx"), echo("echo goodbye"), false),
            (test_channel("slack:Uother"), echo("echo hello"), false),
            (
                in_group("slack:Uxxxxxxxx", "slack:C0OTHER"),
                echo("echo hello"),
                false,
            ),
            (in_dm("slack:Uxxxxxxxx"), echo("echo hi"), true),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Meeseeks-box's per-command strategies (none / any / group / admin; a command starts at
// "none"), as summarised in shared/design/prior-art.md: one rule per strategy, and the
// default deny plays "none".
// ---------------------------------------------------------------------------------------

#[test]
fn meeseeks_strategies() {
    let p = policy(
        r#"
        [access]
        default = "deny"
        admins = ["slack:UADMIN"]

        [access.groups]
        ops = ["slack:UOPS1", "slack:UOPS2"]

        [[access.rules]]
        aliases = ["tools.echo"]
        users = ["any"]
        action = "allow"

        [[access.rules]]
        aliases = ["tools.deploy"]
        users = ["@ops"]
        rooms = ["group"]
        action = "allow"
        comment = "group strategy, in rooms only"

        [[access.rules]]
        aliases = ["tools.audit"]
        users = ["admins"]
        action = "allow"
        "#,
    );
    let room = |u: &str| in_group(u, "slack:C1");
    check_table(
        &p,
        &[
            (room("slack:UANY"), alias("tools.echo", "echo x"), true),
            (room("slack:UOPS1"), alias("tools.deploy", "deploy x"), true),
            (
                in_dm("slack:UOPS1"),
                alias("tools.deploy", "deploy x"),
                false,
            ),
            (room("slack:UANY"), alias("tools.deploy", "deploy x"), false),
            (room("slack:UADMIN"), alias("tools.audit", "audit"), true),
            (room("slack:UOPS2"), alias("tools.audit", "audit"), false),
            // "none": nobody, admins included.
            (
                room("slack:UADMIN"),
                alias("tools.shutdown", "shutdown"),
                false,
            ),
            (
                subj("slack:UANY", "slack:D1", RoomKind::Direct),
                alias("tools.shutdown", "shutdown"),
                false,
            ),
        ],
    );
}
