//! Personal aliases in the dispatcher: expansion before matching, and `!st2alias`,
//! `!st2unalias`, `!st2aliases` ([`crate::commands::personal`] has the rules and words).
//!
//! Each user's aliases are read from the store once and cached (every command looks them
//! up); a change made here replaces the cached copy, and copies expire after a minute so
//! that a change made by another replica is seen too.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use actix::prelude::*;
use chrono::Utc;

use super::Dispatcher;
use crate::{
    commands::personal,
    domain::message::InboundMessage,
    metrics::CommandOutcome,
    store::{model::UserKey, personal_aliases::SetOutcome},
};

/// A user's aliases, name → command text.
pub(super) type Aliases = Arc<BTreeMap<String, String>>;

/// The cache of users' aliases.
pub(super) fn cache() -> moka::sync::Cache<UserKey, Aliases> {
    moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(60))
        .build()
}

/// `!st2alias`, `!st2unalias`, `!st2aliases`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PersonalCommand {
    Define(String),
    Remove(String),
    List,
}

impl Dispatcher {
    fn user_key(msg: &InboundMessage) -> UserKey {
        UserKey::new(&msg.user.connection, &msg.user.id)
    }

    /// `msg`'s user's aliases (from the cache, else the store).
    fn personal_aliases(&self, user: &UserKey) -> Aliases {
        if let Some(found) = self.personal.get(user) {
            return found;
        }
        let loaded: Aliases = match self.settings.personal_aliases.list(user) {
            Ok(list) => Arc::new(list.into_iter().map(|a| (a.name, a.text)).collect()),
            Err(e) => {
                tracing::error!(error = %e, "could not read a user's personal aliases; their commands run unexpanded");
                return Arc::default();
            }
        };
        self.personal.insert(user.clone(), loaded.clone());
        loaded
    }

    /// The text a `Run` command stands for: its expansion when its first word is one of
    /// the sender's aliases, else itself.
    pub(super) fn expand_personal(&self, msg: &InboundMessage, text: &str) -> String {
        let aliases = self.personal_aliases(&Self::user_key(msg));
        if aliases.is_empty() {
            return text.to_owned();
        }
        match personal::expand(&aliases, text) {
            Some(expanded) => {
                tracing::debug!(user = %msg.user.id, "personal alias expanded");
                expanded
            }
            None => text.to_owned(),
        }
    }

    /// A refusal of a personal-alias command, counted.
    fn personal_invalid(&self, why: String) -> String {
        self.metrics.command(CommandOutcome::Invalid);
        personal::reply(
            &self.templates,
            "invalid",
            &self.command_prefix(),
            "",
            &why,
            &[],
        )
    }

    pub(super) fn handle_personal(
        &mut self,
        msg: InboundMessage,
        command: PersonalCommand,
        ctx: &mut Context<Self>,
    ) {
        let prefix = self.command_prefix();
        let user = Self::user_key(&msg);
        let store = self.settings.personal_aliases.clone();
        match command {
            PersonalCommand::List => {
                self.metrics.command(CommandOutcome::Builtin);
                self.personal.invalidate(&user);
                let list: Vec<(String, String)> = self
                    .personal_aliases(&user)
                    .iter()
                    .map(|(n, t)| (n.clone(), t.clone()))
                    .collect();
                let text = personal::reply(&self.templates, "list", &prefix, "", "", &list);
                self.reply(&msg, text);
            }
            PersonalCommand::Define(args) => {
                let (name, text) = match personal::define_args(&args, &prefix) {
                    Ok(v) => v,
                    Err(why) => return self.reply(&msg, self.personal_invalid(why)),
                };
                if personal::is_builtin_word(name) {
                    let why = format!("`{name}` is a built-in command word; choose another name.");
                    return self.reply(&msg, self.personal_invalid(why));
                }
                let name = match crate::store::personal_aliases::valid_alias_name(name) {
                    Ok(n) => n,
                    Err(e) => return self.reply(&msg, self.personal_invalid(e.to_string())),
                };
                let text = text.to_owned();
                let (n, t, u) = (name.clone(), text.clone(), user.clone());
                // A store write (SQLite): off the dispatcher's thread.
                let write = tokio::task::spawn_blocking(move || store.set(&u, &n, &t, Utc::now()));
                ctx.spawn(write.into_actor(self).map(move |written, act, _ctx| {
                    act.personal.invalidate(&user);
                    let reply = match written {
                        Ok(Ok(outcome)) => {
                            act.metrics.command(CommandOutcome::Builtin);
                            tracing::info!(user = %msg.user.id, alias = %name, "personal alias saved");
                            let kind = match outcome {
                                SetOutcome::Created => "saved",
                                SetOutcome::Replaced => "replaced",
                            };
                            personal::reply(&act.templates, kind, &prefix, &name, &text, &[])
                        }
                        Ok(Err(e)) => act.personal_invalid(e.to_string()),
                        Err(_) => act.personal_invalid("The alias could not be saved.".to_owned()),
                    };
                    act.reply(&msg, reply);
                }));
            }
            PersonalCommand::Remove(args) => {
                let name = args.trim().to_lowercase();
                if name.is_empty() || name.contains(char::is_whitespace) {
                    let why =
                        format!("Give the name of one of your aliases: `{prefix}unalias <name>`.");
                    return self.reply(&msg, self.personal_invalid(why));
                }
                let (n, u) = (name.clone(), user.clone());
                let write = tokio::task::spawn_blocking(move || store.remove(&u, &n));
                ctx.spawn(write.into_actor(self).map(move |removed, act, _ctx| {
                    act.personal.invalidate(&user);
                    let reply = match removed {
                        Ok(Ok(true)) => {
                            act.metrics.command(CommandOutcome::Builtin);
                            personal::reply(&act.templates, "removed", &prefix, &name, "", &[])
                        }
                        Ok(Ok(false)) => {
                            act.metrics.command(CommandOutcome::Invalid);
                            personal::reply(&act.templates, "not_found", &prefix, &name, "", &[])
                        }
                        Ok(Err(e)) => act.personal_invalid(e.to_string()),
                        Err(_) => {
                            act.personal_invalid("The alias could not be removed.".to_owned())
                        }
                    };
                    act.reply(&msg, reply);
                }));
            }
        }
    }
}
