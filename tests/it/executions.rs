//! The executions client (`stormbridge::st2::executions`) against the emulator over real
//! HTTP, behind its default nginx framing: a long job started with `POST
//! /api/v1/aliasexecution`, its output read while it runs, cancelled; the refusal for a
//! finished one (st2's 200 with a faultstring); 404 and 403 as errors.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use stormbridge::{
    emulator::{demo_aliases, long_job_alias, Emulator, EmulatorConfig},
    metrics::Metrics,
    st2::{
        client::{St2Client, St2Endpoints},
        executions::CancelOutcome,
        models::AliasExecutionRequest,
        Credential, CredentialKind, St2Error,
    },
};

use crate::support::WAIT;

async fn emulator(cfg: EmulatorConfig) -> Emulator {
    Emulator::start(EmulatorConfig {
        aliases: [demo_aliases(), vec![long_job_alias()]].concat(),
        ..cfg
    })
    .await
    .expect("emulator starts")
}

fn client_for(em: &Emulator) -> St2Client {
    let tls = stormbridge::tls::client_config(true, None).expect("tls config");
    St2Client::new(
        &St2Endpoints {
            api_url: em.api_url(),
            auth_url: em.auth_url(),
            stream_url: em.stream_url(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            stream_keepalive: None,
            alias_list_max_bytes: stormbridge::st2::client::DEFAULT_ALIAS_LIST_BYTES,
        },
        tls,
        Metrics::new(),
    )
}

fn credential(em: &Emulator, user: &str, password: &str) -> Credential {
    let token = em.issue_token(user, password).expect("a token");
    Credential::new(CredentialKind::Token, SecretString::from(token), 0)
}

/// `start long job <seconds>` through `POST /api/v1/aliasexecution`: the execution id.
async fn start_long_job(client: &St2Client, cred: &Credential, seconds: u64) -> String {
    let request = AliasExecutionRequest {
        name: "long_job".into(),
        format: "start long job {{seconds=30}}".into(),
        command: format!("start long job {seconds}"),
        user: "alice".into(),
        source_channel: "ops".into(),
        notification_route: "stormbridge".into(),
        source_context: serde_json::from_value(json!({
            "bridge": "stormbridge", "connection": "console", "room": "ops",
            "room_kind": "group", "user_id": "alice", "request_id": "r1"
        }))
        .expect("a source context"),
    };
    let results = client
        .execute_alias(cred, &request)
        .await
        .expect("the alias runs");
    assert_eq!(results.len(), 1);
    results[0].execution.id.clone()
}

#[actix_rt::test]
async fn a_long_job_is_read_while_it_runs_then_cancelled() {
    let em = emulator(EmulatorConfig::default()).await;
    let client = client_for(&em);
    let cred = credential(&em, "st2admin", "Ch@ngeMe");
    let id = start_long_job(&client, &cred, 30).await;

    let running = eventually!(WAIT, {
        client
            .execution_output(&cred, &id, None)
            .await
            .is_ok_and(|o| o.starts_with("step 1 of 150\nstep 2 of 150\n"))
    });
    assert!(
        running,
        "{:?}",
        client.execution_output(&cred, &id, None).await
    );
    let state = client.execution(&cred, &id).await.expect("the execution");
    assert_eq!(state.id, id);
    assert_eq!(state.status, "running");
    assert_eq!(state.action_ref.as_deref(), Some("ops.long_job"));
    assert!(state.start_timestamp.is_some());
    assert_eq!(state.end_timestamp, None);
    assert!(!state.is_finished());
    assert_eq!(
        client.execution_output(&cred, &id, Some("stderr")).await,
        Ok(String::new())
    );
    let capped = client
        .execution_output_capped(&cred, &id, Some("stdout"))
        .await
        .expect("the output");
    assert!(!capped.truncated);
    assert!(
        capped.text.lines().all(|l| l.starts_with("step ")),
        "{}",
        capped.text
    );

    assert_eq!(
        client.cancel_execution(&cred, &id).await,
        Ok(CancelOutcome::Canceling {
            status: "canceling".into()
        })
    );
    let canceled = eventually!(WAIT, {
        client
            .execution(&cred, &id)
            .await
            .is_ok_and(|e| e.status == "canceled")
    });
    assert!(canceled, "{:?}", client.execution(&cred, &id).await);
    let state = client.execution(&cred, &id).await.expect("the execution");
    assert!(state.is_finished());
    assert!(state.end_timestamp.is_some());
    assert_eq!(
        state.result,
        Some(json!({"message": "Action canceled by user.", "user": "st2admin"}))
    );
    assert_eq!(
        client.cancel_execution(&cred, &id).await,
        Ok(CancelOutcome::AlreadyCanceled)
    );
    // StackStorm announces the canceled execution like any finished one.
    let announced = eventually!(WAIT, !em.announcements().is_empty());
    assert!(announced);
}

#[actix_rt::test]
async fn a_finished_job_is_refused_and_unknown_ids_are_404() {
    let em = emulator(EmulatorConfig::default()).await;
    em.set_long_job_tick(Duration::from_millis(5));
    let client = client_for(&em);
    let cred = credential(&em, "st2admin", "Ch@ngeMe");
    let id = start_long_job(&client, &cred, 1).await;
    let finished = eventually!(WAIT, {
        client
            .execution(&cred, &id)
            .await
            .is_ok_and(|e| e.is_finished())
    });
    assert!(finished);
    let state = client.execution(&cred, &id).await.expect("the execution");
    assert_eq!(state.status, "succeeded");
    let all: String = (1..=5).map(|i| format!("step {i} of 5\n")).collect();
    assert_eq!(
        state.result.as_ref().and_then(|r| r["stdout"].as_str()),
        Some(all.trim_end())
    );
    assert_eq!(client.execution_output(&cred, &id, None).await, Ok(all));
    assert_eq!(
        client.cancel_execution(&cred, &id).await,
        Ok(CancelOutcome::Refused {
            reason: "Action cannot be canceled. State = succeeded.".into()
        })
    );

    let unknown = "000000000000000000000000";
    let not_found = |r: &St2Error| {
        matches!(r, St2Error::Api { status: 404, faultstring, .. }
            if faultstring == "Unable to identify resource with id \"000000000000000000000000\".")
    };
    let e = client.execution(&cred, unknown).await.expect_err("404");
    assert!(not_found(&e), "{e:?}");
    let e = client
        .execution_output(&cred, unknown, None)
        .await
        .expect_err("404");
    assert!(not_found(&e), "{e:?}");
    let e = client
        .cancel_execution(&cred, unknown)
        .await
        .expect_err("404");
    assert!(not_found(&e), "{e:?}");
    // Ids are checked before anything is sent.
    assert!(matches!(
        client.cancel_execution(&cred, "../actions").await,
        Err(St2Error::Api { status: 400, .. })
    ));
}

#[actix_rt::test]
async fn with_rbac_reading_and_stopping_need_their_permissions() {
    let users = ["st2admin", "bob", "eve"]
        .map(|u| (u.to_owned(), "pw".to_owned()))
        .to_vec();
    let em = emulator(EmulatorConfig {
        users,
        rbac: true,
        denied_actions: vec![("eve".into(), "ops.long_job".into())],
        ..EmulatorConfig::default()
    })
    .await;
    let client = client_for(&em);
    let admin = credential(&em, "st2admin", "pw");
    let id = start_long_job(&client, &admin, 30).await;
    let running = eventually!(WAIT, {
        client
            .execution(&admin, &id)
            .await
            .is_ok_and(|e| e.status == "running")
    });
    assert!(running);

    // Neither bob nor eve may view it (no role, no `action_view`).
    let bob = credential(&em, "bob", "pw");
    let eve = credential(&em, "eve", "pw");
    let e = client
        .execution_output(&bob, &id, None)
        .await
        .expect_err("403");
    assert!(
        matches!(&e, St2Error::Api { status: 403, faultstring, .. }
            if faultstring.contains("\"execution_view\"")),
        "{e:?}"
    );
    // eve lacks `action_execute` on the action, so `execution_stop`.
    let e = client.cancel_execution(&eve, &id).await.expect_err("403");
    assert!(
        matches!(&e, St2Error::Api { status: 403, faultstring, .. }
            if faultstring.contains("\"execution_stop\"")),
        "{e:?}"
    );
    // bob has it: the refused look-up does not stop the cancellation.
    assert_eq!(
        client.cancel_execution(&bob, &id).await,
        Ok(CancelOutcome::Canceling {
            status: "canceling".into()
        })
    );
}
