//! The one integration-test binary (one link step on a 2-core machine). Each module is a
//! group of tests; every test starts its own StackStorm emulator and bridge on random
//! loopback ports, in-process, and drives the bridge through the console backend.

#[macro_use]
mod wait;
#[macro_use]
mod support;

mod access;
mod alias_collisions;
mod bridge_process;
mod browser;
mod cli;
mod confirm;
mod console;
mod contract;
mod core_flow;
mod crowd;
mod deploy;
mod discord;
mod drills;
mod executions;
mod failover;
mod fake_discord;
mod fake_mattermost;
mod fake_server;
mod fidelity;
mod http_post;
mod https;
mod inquiries;
mod irc;
mod jobs;
mod local;
mod matrix;
mod mattermost;
mod nginx;
mod notify;
mod ops;
mod properties;
mod readiness;
mod rocketchat;
mod sessions;
mod shortcuts;
mod slack;
mod stream;
mod teams;
mod webex;
mod xmpp;
