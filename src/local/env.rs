//! The environment a local command runs with.
//!
//! It is the bridge's own environment passed through (`PATH`, `HOME`, `LANG`, proxy
//! settings, whatever the service manager gave the bridge), **minus** the bridge's own
//! variables, **plus** the command's `env` table:
//!
//! 1. every variable whose name starts with [`BRIDGE_ENV_PREFIX`] (`STORMBRIDGE_`, in any
//!    letter case) is removed: the configuration overrides `STORMBRIDGE__SECTION__KEY`
//!    (see [`crate::config`]: API keys, tokens, passwords can be given that way) and
//!    `STORMBRIDGE_CONFIG`;
//! 2. every name in the caller's extra strip list is removed — the variable named by
//!    `store.key_env` holds the store's encryption key under a name of the operator's
//!    choosing, so the wiring passes it here;
//! 3. the command's `env` entries are set last and win over what is passed through (they
//!    are the operator's explicit choice, so even a `STORMBRIDGE_…` name is kept there).
//!
//! Anything else secret in the bridge's environment reaches the command: keep secrets the
//! bridge does not need out of its environment, or in `STORMBRIDGE_…` variables.

use std::{
    collections::BTreeMap,
    ffi::{OsStr, OsString},
};

/// The prefix of the bridge's own environment variables, stripped from a local command's
/// environment. The configuration loader reads `STORMBRIDGE__SECTION__KEY` (prefix
/// `STORMBRIDGE`, separator `__`) and `STORMBRIDGE_CONFIG`; this prefix covers both.
pub const BRIDGE_ENV_PREFIX: &str = "STORMBRIDGE_";

/// Whether `name` is one of the bridge's own variables ([`BRIDGE_ENV_PREFIX`], compared
/// without regard to ASCII letter case).
pub fn is_bridge_variable(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    let prefix = BRIDGE_ENV_PREFIX.as_bytes();
    name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Composes a local command's environment from the bridge's (`parent`), by the rules of
/// this module: bridge variables and the names in `strip` removed, then `extra` set.
///
/// The result is sorted by name, one entry per name.
pub fn child_environment<I>(
    parent: I,
    strip: &[OsString],
    extra: &BTreeMap<String, String>,
) -> Vec<(OsString, OsString)>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let mut env: BTreeMap<OsString, OsString> = parent
        .into_iter()
        .filter(|(name, _)| !is_bridge_variable(name) && !strip.contains(name))
        .collect();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    env.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn bridge_variables_and_named_ones_are_stripped() {
        let parent = os(&[
            ("PATH", "/usr/bin"),
            ("STORMBRIDGE__ST2__API_KEY", "secret"),
            ("STORMBRIDGE_CONFIG", "/etc/stormbridge.toml"),
            ("stormbridge__http__post_token", "secret"),
            ("STORMBRIDGEX", "kept: not the prefix"),
            ("MY_STORE_KEY", "secret"),
            ("LANG", "C.UTF-8"),
        ]);
        let env = child_environment(parent, &[OsString::from("MY_STORE_KEY")], &BTreeMap::new());
        assert_eq!(
            env,
            os(&[
                ("LANG", "C.UTF-8"),
                ("PATH", "/usr/bin"),
                ("STORMBRIDGEX", "kept: not the prefix"),
            ])
        );
    }

    #[test]
    fn extra_variables_win() {
        let parent = os(&[("PATH", "/usr/bin"), ("LANG", "C")]);
        let extra = BTreeMap::from([
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("TOOL_MODE".to_owned(), "chatops".to_owned()),
        ]);
        let env = child_environment(parent, &[], &extra);
        assert_eq!(
            env,
            os(&[
                ("LANG", "C.UTF-8"),
                ("PATH", "/usr/bin"),
                ("TOOL_MODE", "chatops")
            ])
        );
    }

    #[test]
    fn prefix_check() {
        assert!(is_bridge_variable(OsStr::new("STORMBRIDGE_")));
        assert!(is_bridge_variable(OsStr::new("StormBridge__x")));
        assert!(!is_bridge_variable(OsStr::new("STORMBRIDGE")));
        assert!(!is_bridge_variable(OsStr::new("X_STORMBRIDGE_")));
    }
}
