//! Command-line interface: the subcommands and the operator tools `parse` and `match`.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::alias::{
    format::extract_parameters,
    index::{AliasIndex, Selection},
    model::parse_alias_list_bytes,
};

/// stormbridge: run StackStorm action aliases from chat.
#[derive(Debug, Parser)]
#[command(name = "stormbridge", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file. Without it: $STORMBRIDGE_CONFIG, then ./stormbridge.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bridge.
    Run,
    /// Validate the configuration, print every problem, exit 0 (valid) or 1 (invalid).
    CheckConfig,
    /// Try the bridge with no StackStorm: starts the built-in StackStorm API emulator (a test
    /// double, not StackStorm) with demo aliases in a process of its own (`emulator`
    /// below), and the bridge with a console chat on this terminal.
    /// Type `!st2help` or `!st2 run date`; Ctrl-D quits both.
    Demo {
        /// Address of the HTTP server (/health, /ready, /actors, /metrics).
        #[arg(long, default_value = "127.0.0.1:0")]
        http_listen: SocketAddr,
    },
    /// Run only the built-in StackStorm API emulator (a test double, not StackStorm) with the
    /// demo's aliases, on 127.0.0.1, for trying a configuration without StackStorm: point
    /// `[st2] api_url`, `auth_url` and `stream_url` at its /api/v1, /auth/v1 and /stream/v1;
    /// user `st2admin`, password `Ch@ngeMe`. Prints its address (http://127.0.0.1:PORT) on
    /// the first line of output; stops at the end of its input (Ctrl-D) or on SIGINT/SIGTERM.
    Emulator {
        /// Port to listen on (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Print the parameters StackStorm extracts from COMMAND with FORMAT, as a JSON object.
    /// Exit 1 with StackStorm's error text when it does not match.
    Parse {
        /// The alias format (representation), e.g. "run {{cmd}} on {{hosts}}".
        #[arg(long)]
        format: String,
        /// The chat command, without the bot prefix.
        command: String,
        /// Treat the format as `match_multiple` (prints a JSON array, one object per match).
        #[arg(long)]
        match_multiple: bool,
    },
    /// Explain whether USER may run COMMAND in ROOM under the configured [access] rules:
    /// prints the decision, the deciding rule and why each earlier rule did not apply.
    /// Exit 0 allow, 1 deny, 2 when it cannot tell (bad configuration or arguments).
    AclExplain {
        /// The user, as <connection>:<user id> (see `!st2whoami`).
        #[arg(long)]
        user: String,
        /// The room, as <connection>:<room id>, or `dm` for a direct message.
        #[arg(long)]
        room: String,
        /// Alias file (shaped like GET /api/v1/actionalias) to resolve COMMAND to an alias;
        /// without it only built-in commands can be explained.
        #[arg(long, value_name = "FILE")]
        aliases: Option<PathBuf>,
        /// The command text after the prefixes, e.g. "run date on web1" or "help".
        command: String,
    },
    /// Select the alias for COMMAND from FILE (a JSON array shaped like GET /api/v1/actionalias)
    /// and print {"ref", "name", "format", "params"}. Exit 1 on no match or ambiguity.
    Match {
        /// The alias file.
        #[arg(long, value_name = "FILE")]
        aliases: PathBuf,
        /// The chat command, without the bot prefix.
        command: String,
    },
}

/// `stormbridge parse`: the JSON to print, or the error text.
pub fn parse_command(format: &str, command: &str, match_multiple: bool) -> Result<String, String> {
    let params = extract_parameters(format, command, match_multiple).map_err(|e| e.to_string())?;
    let value = if match_multiple {
        json!(params)
    } else {
        json!(params.into_iter().next().unwrap_or_default())
    };
    Ok(value.to_string())
}

/// `stormbridge match`: the JSON to print, or the error text.
pub fn match_command(aliases_json: &str, command: &str) -> Result<String, String> {
    let (aliases, problems) = parse_alias_list_bytes(aliases_json.as_bytes())
        .map_err(|e| format!("the alias file: {e}"))?;
    for p in &problems {
        eprintln!("warning: {p}");
    }
    let (index, warnings) = AliasIndex::build(aliases);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    match index.select(&crate::domain::command::normalise_text(command)) {
        Selection::Matched(m) => Ok(json!({
            "ref": m.alias.reference,
            "name": m.alias.name,
            "format": m.representation,
            "params": m.params.into_iter().next().unwrap_or_default(),
        })
        .to_string()),
        Selection::Ambiguous(candidates) => Err(format!(
            "Command '{command}' matches more than one alias equally well: {}",
            candidates
                .iter()
                .map(|c| format!(
                    "{} ({})",
                    c.display.as_deref().unwrap_or(&c.representation),
                    c.alias_ref
                ))
                .collect::<Vec<_>>()
                .join("; ")
        )),
        Selection::NoMatch { suggestions } => {
            let mut msg = format!("Command '{command}' matched no patterns");
            if !suggestions.is_empty() {
                msg.push_str(&format!(
                    "; did you mean: {}",
                    suggestions
                        .iter()
                        .map(|s| s.display.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
            Err(msg)
        }
    }
}

/// `stormbridge acl-explain`: the explanation and whether it allows, or an error text.
pub fn acl_explain(
    settings: &crate::config::Settings,
    user: &str,
    room: &str,
    aliases_json: Option<&str>,
    command: &str,
) -> Result<(bool, String), String> {
    let aliases = match aliases_json {
        Some(text) => {
            let (aliases, _) = parse_alias_list_bytes(text.as_bytes())
                .map_err(|e| format!("the alias file: {e}"))?;
            AliasIndex::build(aliases).0
        }
        None => AliasIndex::default(),
    };
    let subject = crate::acl::explain_subject(user, room)?;
    let command = crate::acl::resolve_command(command, &aliases, &settings.bot.plugin_prefix)
        .map_err(|e| {
            if aliases_json.is_none() {
                format!("{e} (pass --aliases FILE to resolve alias commands)")
            } else {
                e
            }
        })?;
    let explanation = settings.access.explain(&subject, &command);
    Ok((explanation.decision.allowed, explanation.to_string()))
}
