//! `!st2reload` (admins): load the alias list from StackStorm now, and say how it went
//! (template `reload`).

use serde_json::json;

use crate::render::Templates;

/// How a reload went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The list was loaded: this many aliases.
    Reloaded {
        /// Aliases in the new list.
        aliases: usize,
    },
    /// StackStorm could not be asked or answered nonsense; the previous list stays.
    Failed(String),
    /// The alias cache did not answer at all.
    NotAnswering,
}

/// The reply to `!st2reload`.
pub fn reply(templates: &Templates, outcome: &ReloadOutcome) -> String {
    let (answered, count, error) = match outcome {
        ReloadOutcome::Reloaded { aliases } => (true, Some(*aliases), None),
        ReloadOutcome::Failed(e) => (true, None, Some(e.as_str())),
        ReloadOutcome::NotAnswering => (false, None, None),
    };
    templates.render(
        "reload",
        &json!({
            "answered": answered,
            "reloaded": count.is_some(),
            "count": count,
            "error": error,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::templates;

    #[test]
    fn success_counts_the_aliases() {
        assert_eq!(
            reply(&templates(), &ReloadOutcome::Reloaded { aliases: 12 }),
            "Reloaded the command list from StackStorm: 12 aliases."
        );
        assert_eq!(
            reply(&templates(), &ReloadOutcome::Reloaded { aliases: 0 }),
            "Reloaded the command list from StackStorm: 0 aliases."
        );
    }

    #[test]
    fn failure_says_why() {
        assert_eq!(
            reply(
                &templates(),
                &ReloadOutcome::Failed("StackStorm answered 503".into())
            ),
            "Reloading the command list failed: StackStorm answered 503"
        );
    }

    #[test]
    fn a_silent_cache_is_reported() {
        assert_eq!(
            reply(&templates(), &ReloadOutcome::NotAnswering),
            "The alias cache is not answering; please try again."
        );
    }
}
