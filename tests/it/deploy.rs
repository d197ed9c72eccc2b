//! The dashboard and the alert rules in `deploy/` use only series the bridge exports.

use std::{collections::BTreeSet, time::Duration};

use fancy_regex::Regex;
use stormbridge::metrics::{CommandOutcome, Metrics, ResultSource};

use crate::support::{with_test_aliases, TestBridge};

const DASHBOARD: &str = include_str!("../../deploy/grafana/stormbridge.json");
const ALERTS: &str = include_str!("../../deploy/prometheus/alerts.yaml");

/// Every series name a `/metrics` text describes, from its `# TYPE` lines: a counter's samples
/// end in `_total`, a histogram's in `_bucket`, `_sum` and `_count`.
fn exported_series(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let mut words = line.split_whitespace();
        if (words.next(), words.next()) != (Some("#"), Some("TYPE")) {
            continue;
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        for suffix in suffixes {
            names.insert(format!("{name}{suffix}"));
        }
    }
    names
}

fn referenced(text: &str) -> BTreeSet<String> {
    let re = Regex::new(r"stormbridge_[a-z0-9_]+").unwrap();
    re.find_iter(text)
        .map(|m| m.unwrap().as_str().to_owned())
        .collect()
}

#[actix_rt::test]
async fn the_dashboard_and_the_alerts_use_only_exported_series() {
    // A running bridge that has handled a command (commands, access decisions, results).
    let mut b = TestBridge::start_with(with_test_aliases()).await;
    b.wait_ready(200).await;
    b.say("!st2 run date").await;
    b.line_containing("Started").await;
    b.line_containing("completed").await;
    let (status, metrics) = b.get("/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    let mut exported = exported_series(&metrics);
    for live in [
        "stormbridge_commands_total",
        "stormbridge_acl_decisions_total",
        "stormbridge_results_delivered_total",
        "stormbridge_connection_up",
        "stormbridge_st2_request_seconds_bucket",
    ] {
        assert!(exported.contains(live), "{live} in {exported:?}");
    }
    // A labelled family appears in /metrics only after its first event; the rare ones (an
    // expired result, a held command, an ignored announcement) are recorded once on the
    // bridge's own registry, which renders exactly what /metrics would then show.
    let m = Metrics::new();
    m.command(CommandOutcome::Held);
    m.result_delivered(ResultSource::Reconciliation);
    m.result_expired("ttl");
    m.waiting_decision("asked");
    m.announcement_ignored("other_bot");
    m.acl_decision(false, "rule");
    m.st2_request("executions", Duration::from_millis(5));
    m.set_connection_up("st2_stream", true);
    m.chat_outbound_dropped("console", 1);
    m.chat_outbound_resent("console", 1);
    m.set_chat_outbound_queued("console", 1);
    // Only with the Redis store (tests/it/failover.rs reads them off bridges on Redis).
    m.set_connection_lease_held("console", true);
    m.set_store_reachable("redis", true);
    m.webhook_held("console", "held");
    let registry = exported_series(&m.render());
    assert!(
        exported.is_subset(&registry),
        "the live bridge and its registry agree: {exported:?} / {registry:?}"
    );
    exported.extend(registry);

    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 10, "the dashboard's queries: {exprs:?}");
    assert!(
        DASHBOARD.contains("${DS_PROMETHEUS}"),
        "the datasource is an input"
    );

    for (what, text) in [
        ("dashboard", exprs.join("\n")),
        ("alerts", ALERTS.to_owned()),
    ] {
        let names = referenced(&text);
        assert!(!names.is_empty(), "{what} names no stormbridge series");
        let missing: Vec<_> = names.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{what} uses series the bridge does not export: {missing:?}\nexported: {exported:?}"
        );
    }
}
