//! `/health`, `/ready` and `/actors` as StackStorm comes and goes.

use crate::support::{Options, TestBridge, WAIT};

#[actix_rt::test]
async fn ready_follows_stackstorm_503_then_200_then_503() {
    let mut b = TestBridge::start_with(Options {
        st2_down_at_start: true,
        ..Options::default()
    })
    .await;
    assert_eq!(
        b.get("/health").await.0,
        200,
        "alive even while StackStorm is away"
    );
    let (status, body) = b.get("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("stream_consumer"), "{body}");
    // Before the first alias load, a command is not "unknown": the list is not known yet.
    b.say("!st2 run date").await;
    let reply = b.line_containing("still loading").await;
    assert!(reply.starts_with("[stormbridge] #ops: "), "{reply}");

    b.emulator
        .restart()
        .await
        .expect("emulator back on the same port");
    b.wait_ready(200).await;

    b.emulator.stop().await;
    b.wait_ready(503).await;
    let (_, body) = b.get("/ready").await;
    assert!(body.contains("stream_consumer"), "{body}");

    b.emulator.restart().await.expect("emulator back again");
    b.wait_ready(200).await;
}

#[actix_rt::test]
async fn actors_lists_every_actor_with_its_state() {
    let b = TestBridge::start().await;
    b.wait_ready(200).await;
    let (status, body) = b.get("/actors").await;
    assert_eq!(status, 200);
    let actors: serde_json::Value = serde_json::from_str(&body).expect("json");
    let names: Vec<&str> = actors
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    for expected in [
        "alias_cache",
        "chat:console",
        "dispatcher",
        "stream_consumer",
        "token_renewer",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for a in actors.as_array().expect("array") {
        assert_eq!(a["state"], "up", "{a}");
        assert!(
            a.get("restarts").is_some()
                && a.get("last_error").is_some()
                && a.get("last_activity").is_some()
        );
    }
    assert!(eventually!(
        WAIT,
        b.get("/metrics")
            .await
            .1
            .contains("stormbridge_connection_up{connection=\"st2_stream\"} 1")
    ));
}

#[actix_rt::test]
async fn wrong_bridge_password_keeps_it_unready_and_says_why() {
    let mut opts = Options::default();
    opts.emulator.users = vec![("st2admin".into(), "a-different-password".into())];
    let b = TestBridge::start_with(opts).await;
    assert!(eventually!(WAIT, {
        let a = b.actor("token_renewer").await;
        a["state"] == "down"
            && a["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("Invalid or missing credentials")
    }));
    let (status, body) = b.get("/ready").await;
    assert_eq!(status, 503);
    assert!(
        !body.contains("Ch@ngeMe"),
        "never show the password: {body}"
    );
}
