//! Alias names shared across packs: st2's `aliasexecution` finds the alias by name alone,
//! so the bridge explains instead of sending a command st2 might run with the other pack's
//! alias.

use serde_json::{json, Value};

use crate::support::{captured_logs, with_test_aliases, TestBridge, WAIT};

/// An alias named `bounce` in `pack`, answering `bounce <pack> <svc>`.
fn bounce(pack: &str) -> Value {
    json!({
        "id": format!("{pack}bounce"), "name": "bounce", "pack": pack,
        "ref": format!("{pack}.bounce"), "uid": format!("action_alias:{pack}:bounce"),
        "enabled": true, "action_ref": format!("{pack}.restart"),
        "description": format!("restart a {pack} service"),
        "formats": [format!("bounce {pack} {{{{svc}}}}")],
    })
}

fn collision_warnings() -> usize {
    captured_logs()
        .lines()
        .filter(|l| {
            l.contains("alias name defined in several packs")
                && l.contains("alias=bounce")
                && l.contains("db, web")
        })
        .count()
}

#[actix_rt::test]
async fn a_command_for_a_name_two_packs_share_is_explained_and_never_sent() {
    let mut opts = with_test_aliases();
    opts.emulator.aliases.extend([bounce("web"), bounce("db")]);
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;

    let warned = eventually!(WAIT, collision_warnings() >= 1);
    assert!(warned, "the load warns about the shared name");
    let warning = captured_logs()
        .lines()
        .find(|l| {
            l.contains("alias name defined in several packs")
                && l.contains("alias=bounce")
                && l.contains("db")
        })
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(warning.contains("db, web"), "names both packs: {warning}");
    let cache = b.actor("alias_cache").await;
    assert!(
        cache["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("1 alias names shared by several packs")),
        "{cache}"
    );
    let warnings_after_load = collision_warnings();

    for (command, pack) in [("bounce db main", "db"), ("bounce web front", "web")] {
        b.say(&format!("!st2 {command}")).await;
        let reply = b.line_containing("looks aliases up by name alone").await;
        assert!(
            reply.contains("`bounce`") && reply.contains("packs db and web"),
            "{reply}"
        );
        assert!(reply.contains(&format!("`{command}`")), "{reply}");
        assert!(reply.contains("rename"), "{reply}");
        assert!(!reply.contains(&format!("{pack}.restart")), "{reply}");
    }
    assert!(
        b.emulator.executions().is_empty(),
        "nothing reached StackStorm: {:?}",
        b.emulator.executions()
    );

    // Aliases with a name of their own still run.
    b.say("!st2 run date").await;
    b.line_containing("Started").await;
    let executions = b.emulator.executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].alias_ref, "core.run_local");

    assert_eq!(
        b.metric(r#"stormbridge_commands_total{outcome="alias_collision"}"#)
            .await,
        2.0
    );
    assert_eq!(
        collision_warnings(),
        warnings_after_load,
        "commands add no warnings; only loads do"
    );
}

#[actix_rt::test]
async fn a_name_shared_with_a_disabled_alias_is_explained_too() {
    // StackStorm's `aliasexecution` takes the first alias of that name, disabled or not, and
    // then refuses the command as "disabled": the bridge says so instead of sending it.
    let mut opts = with_test_aliases();
    // Other packs than the test above's: the warnings it counts are in the shared test log.
    let mut off = bounce("legacy");
    off["enabled"] = json!(false);
    opts.emulator.aliases.extend([bounce("web"), off]);
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    b.say("!st2 bounce web front").await;
    let reply = b.line_containing("looks aliases up by name alone").await;
    assert!(
        reply.contains("packs legacy and web (disabled in legacy)")
            && reply.contains("the disabled one"),
        "{reply}"
    );
    assert!(b.emulator.executions().is_empty());
}
