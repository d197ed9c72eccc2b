//! Alias help listings.
//!
//! [`help`] is st2's listing (`generate_helpstring_result` behind
//! `GET /api/v1/actionalias/help`), reproduced exactly: its filter is a Python regex.
//! Chat's `!st2help` uses [`help_matching_words`] instead: a chat user's filter must never
//! be a regular expression run on the bridge (a crafted one backtracks for minutes over a
//! few thousand displays, on the thread every other actor shares), and what people type
//! after `!st2help` is words anyway (err-stackstorm's and st2chatops's users type a pack or
//! a verb). Word matching is linear in the text searched, whatever the input.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::format::compile_python;
use super::model::ActionAlias;

/// One help line: st2's `{"pack", "display", "description"}` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelpEntry {
    /// Pack of the alias.
    pub pack: String,
    /// The format entry's display text.
    pub display: String,
    /// The alias's description (st2 sends `null` when absent).
    pub description: Option<String>,
}

/// One page of help, as st2 returns it (`helpstrings` is named `entries` here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelpPage {
    /// How many displays passed the filters, over all pages (not just this one).
    pub available: usize,
    /// The entries of the requested page, in alias order then format order.
    pub entries: Vec<HelpEntry>,
}

/// Why a help listing could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelpError {
    /// The filter is not a valid Python regular expression (st2 answers HTTP 500).
    #[error("invalid help filter {filter:?}: {message}")]
    InvalidFilter {
        /// The filter as given.
        filter: String,
        /// What is wrong with it.
        message: String,
    },
}

/// st2's help listing over `aliases` (in the order given; st2 sorts by pack, then
/// name).
///
/// * Disabled aliases are skipped; a non-empty `pack` keeps only exact pack matches.
/// * Each format contributes its display (a plain string is its own display, an
///   object its `display`; empty or missing displays are skipped).
/// * A non-empty `filter` is a **case-insensitive Python regex search** on the
///   display (no DOTALL, not anchored).
/// * Paging, counted over the displays that pass: `offset == 0 && limit > 0` → the
///   first `limit`; `offset > 0 && limit == 0` → everything from `offset`; both
///   positive → `offset..offset+limit`; both zero → everything.
///   (st2 also treats negative values as "everything" except that a positive
///   offset with a negative limit returns everything too; callers holding signed
///   query values should map `limit < 0` to `(0, 0)` to get that.)
/// * `available` counts every display that passes the filters.
pub fn help(
    aliases: &[Arc<ActionAlias>],
    filter: Option<&str>,
    pack: Option<&str>,
    limit: usize,
    offset: usize,
) -> Result<HelpPage, HelpError> {
    let filter = filter.unwrap_or("");
    let regex = if filter.is_empty() {
        None
    } else {
        Some(
            compile_python(filter, true).map_err(|message| HelpError::InvalidFilter {
                filter: filter.to_string(),
                message,
            })?,
        )
    };
    // A search abandoned for backtracking is treated as "no match".
    Ok(listing(aliases, pack, limit, offset, |_, display| {
        regex
            .as_ref()
            .is_none_or(|re| re.is_match(display).unwrap_or(false))
    }))
}

/// The listing chat's `!st2help` shows: like [`help`], but `words` are plain words, each of
/// which must occur — case-insensitively, anywhere, as text (regex characters included) — in
/// the display, the description or the pack. No words: everything. Same paging.
pub fn help_matching_words(
    aliases: &[Arc<ActionAlias>],
    words: &str,
    pack: Option<&str>,
    limit: usize,
    offset: usize,
) -> HelpPage {
    let words: Vec<String> = words.split_whitespace().map(str::to_lowercase).collect();
    listing(aliases, pack, limit, offset, |alias, display| {
        if words.is_empty() {
            return true;
        }
        let display = display.to_lowercase();
        let description = alias.description.as_deref().unwrap_or("").to_lowercase();
        let pack = alias.pack.to_lowercase();
        words.iter().all(|w| {
            display.contains(w.as_str())
                || description.contains(w.as_str())
                || pack.contains(w.as_str())
        })
    })
}

/// The displays of enabled aliases (of `pack`, when given) that `keep` accepts, paged.
fn listing(
    aliases: &[Arc<ActionAlias>],
    pack: Option<&str>,
    limit: usize,
    offset: usize,
    keep: impl Fn(&ActionAlias, &str) -> bool,
) -> HelpPage {
    let pack = pack.filter(|p| !p.is_empty());
    let mut count = 0usize;
    let mut entries = Vec::new();
    for alias in aliases {
        if !alias.enabled || pack.is_some_and(|p| p != alias.pack) {
            continue;
        }
        for format in &alias.formats {
            let Some(display) = format.display() else {
                continue;
            };
            if !keep(alias, display) {
                continue;
            }
            if in_page(count, limit, offset) {
                entries.push(HelpEntry {
                    pack: alias.pack.clone(),
                    display: display.to_string(),
                    description: alias.description.clone(),
                });
            }
            count += 1;
        }
    }
    HelpPage {
        available: count,
        entries,
    }
}

/// st2's paging: whether the `count`-th passing display is on the page.
fn in_page(count: usize, limit: usize, offset: usize) -> bool {
    match (offset, limit) {
        (0, l) if l > 0 => count < l,
        (o, 0) if o > 0 => count >= o,
        (o, l) if o > 0 && l > 0 => count >= o && count < o.saturating_add(l),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alias::model::{AliasFormat, FormatObject, Representation};

    fn obj(display: Option<&str>, rep: Option<&str>) -> AliasFormat {
        AliasFormat::Object(Box::new(FormatObject {
            display: display.map(str::to_string),
            representation: rep.map(|r| Representation::One(r.to_string())),
            match_multiple: false,
        }))
    }

    fn plain(s: &str) -> AliasFormat {
        AliasFormat::Plain(s.to_string())
    }

    /// st2's `test_actionalias_helpstring.py` fixture (80s movie quotes).
    fn aliases() -> Vec<Arc<ActionAlias>> {
        let a = |name: &str, enabled: bool, formats: Vec<AliasFormat>| {
            Arc::new(ActionAlias {
                name: name.into(),
                pack: "the80s".into(),
                reference: format!("the80s.{name}"),
                enabled,
                action_ref: "the80s.act".into(),
                formats,
                ..ActionAlias::default()
            })
        };
        vec![
            a(
                "kyle_reese",
                true,
                vec![plain("Come with me if you want to live")],
            ),
            a(
                "terminator",
                true,
                vec![plain(
                    "I need your {{item}}, your {{item2}} and your {{vehicle}}",
                )],
            ),
            a(
                "johnny_five_alive",
                true,
                vec![
                    obj(
                        Some("Number 5 is {{status}}"),
                        Some("Number 5 is {{status=alive}}"),
                    ),
                    plain("Hey, laser lips, your mama was a snow blower."),
                ],
            ),
            a(
                "i_feel_alive",
                true,
                vec![plain("How do I feel? I feel... {{status}}!")],
            ),
            a("andy", true, vec![obj(Some("Watch this."), None)]),
            a(
                "andy",
                true,
                vec![obj(Some("He's just like his {{relation}}."), None)],
            ),
            a(
                "data",
                true,
                vec![obj(
                    None,
                    Some("That's okay daddy. You can't hug a {{object}}."),
                )],
            ),
            a(
                "mr_wang",
                true,
                vec![obj(None, Some("You are my greatest invention."))],
            ),
            a(
                "Ferris",
                true,
                vec![
                    plain("Life moves pretty fast."),
                    plain("If you don't stop and look around once in a while, you could miss it."),
                ],
            ),
            a(
                "economics.teacher",
                false,
                vec![plain("Bueller?... Bueller?... Bueller? ")],
            ),
            a(
                "spengler",
                true,
                vec![plain("{{choice}} cross the {{target}}")],
            ),
        ]
    }

    fn displays(p: &HelpPage) -> Vec<&str> {
        p.entries.iter().map(|e| e.display.as_str()).collect()
    }

    #[test]
    fn st2_filtering_no_arg() {
        let p = help(&aliases(), None, None, 0, 0).unwrap();
        assert_eq!(p.available, 10);
        assert_eq!(p.entries.len(), 10);
        assert_eq!(p.entries[0].display, "Come with me if you want to live");
        assert!(p.entries.iter().all(|e| e.pack == "the80s"));
        assert!(!displays(&p).iter().any(|d| d.contains("Bueller")));
    }

    #[test]
    fn st2_filtering() {
        let p = help(
            &aliases(),
            Some("you_will_not_find_this_string"),
            None,
            0,
            0,
        )
        .unwrap();
        assert_eq!(p.available, 0);
        assert!(p.entries.is_empty());
        let p = help(&aliases(), Some("you"), None, 0, 0).unwrap();
        assert_eq!(p.available, 4);
        assert_eq!(
            displays(&p),
            [
                "Come with me if you want to live",
                "I need your {{item}}, your {{item2}} and your {{vehicle}}",
                "Hey, laser lips, your mama was a snow blower.",
                "If you don't stop and look around once in a while, you could miss it.",
            ]
        );
        // Case-insensitive regex *search*.
        let p = help(&aliases(), Some("^come|LASER"), None, 0, 0).unwrap();
        assert_eq!(p.available, 2);
        let p = help(&aliases(), Some(r"\{\{status"), None, 0, 0).unwrap();
        assert_eq!(p.available, 2);
    }

    #[test]
    fn st2_pack() {
        let p = help(&aliases(), Some(""), Some(""), 0, 0).unwrap();
        assert_eq!(p.available, 10);
        assert_eq!(p.entries.len(), 10);
        let p = help(
            &aliases(),
            Some(""),
            Some("you_will_not_find_this_string"),
            0,
            0,
        )
        .unwrap();
        assert_eq!(p.available, 0);
        assert!(p.entries.is_empty());
        let p = help(&aliases(), Some(""), Some("the80s"), 0, 0).unwrap();
        assert_eq!(p.available, 10);
        assert_eq!(p.entries[0].display, "Come with me if you want to live");
        // Exact match only.
        assert_eq!(
            help(&aliases(), None, Some("the8"), 0, 0)
                .unwrap()
                .available,
            0
        );
    }

    #[test]
    fn st2_limit() {
        // limit 0 (st2's negative limit behaves the same): everything.
        let p = help(&aliases(), Some(""), Some("the80s"), 0, 0).unwrap();
        assert_eq!((p.available, p.entries.len()), (10, 10));
        let p = help(&aliases(), Some(""), Some("the80s"), 30, 0).unwrap();
        assert_eq!((p.available, p.entries.len()), (10, 10));
        let p = help(&aliases(), Some(""), Some("the80s"), 3, 0).unwrap();
        assert_eq!((p.available, p.entries.len()), (10, 3));
        assert_eq!(p.entries[0].display, "Come with me if you want to live");
    }

    #[test]
    fn st2_offset() {
        let p = help(&aliases(), Some(""), Some("the80s"), 0, 30).unwrap();
        assert_eq!(p.available, 10);
        assert!(p.entries.is_empty());
        let p = help(&aliases(), Some(""), Some("the80s"), 0, 6).unwrap();
        assert_eq!((p.available, p.entries.len()), (10, 4));
        assert_eq!(p.entries[0].display, "He's just like his {{relation}}.");
    }

    #[test]
    fn offset_and_limit_window() {
        let p = help(&aliases(), None, None, 3, 2).unwrap();
        assert_eq!(p.available, 10);
        assert_eq!(
            displays(&p),
            [
                "Number 5 is {{status}}",
                "Hey, laser lips, your mama was a snow blower.",
                "How do I feel? I feel... {{status}}!",
            ]
        );
        let p = help(&aliases(), None, None, 5, 8).unwrap();
        assert_eq!(
            displays(&p),
            [
                "If you don't stop and look around once in a while, you could miss it.",
                "{{choice}} cross the {{target}}",
            ]
        );
        // Filter and paging combine; `available` counts all that pass.
        let p = help(&aliases(), Some("you"), None, 1, 1).unwrap();
        assert_eq!(p.available, 4);
        assert_eq!(
            displays(&p),
            ["I need your {{item}}, your {{item2}} and your {{vehicle}}"]
        );
    }

    #[test]
    fn descriptions_and_invalid_filter() {
        let mut a = (*aliases()[0]).clone();
        a.description = Some("Terminator 2".into());
        let p = help(&[Arc::new(a)], None, None, 0, 0).unwrap();
        assert_eq!(p.entries[0].description.as_deref(), Some("Terminator 2"));
        assert_eq!(p.entries[1..].len(), 0);
        let e = help(&aliases(), Some("(unclosed"), None, 0, 0).unwrap_err();
        assert!(matches!(e, HelpError::InvalidFilter { .. }));
        assert!(e.to_string().contains("(unclosed"), "{e}");
    }

    #[test]
    fn chat_filters_are_words_never_regexes() {
        let all = aliases();
        // Regex syntax is text: `.*` matches nothing here, and a pattern that backtracks
        // catastrophically as a regex is just a word that occurs nowhere.
        assert_eq!(help_matching_words(&all, ".*", None, 0, 0).available, 0);
        let evil = format!("({})+$", "a?".repeat(30));
        assert_eq!(help_matching_words(&all, &evil, None, 0, 0).available, 0);
        // `feel...` occurs literally in one display.
        let p = help_matching_words(&all, "FEEL...", None, 0, 0);
        assert_eq!(displays(&p), ["How do I feel? I feel... {{status}}!"]);
        // Every word must occur, in the display, the description or the pack.
        let p = help_matching_words(&all, "your mama", None, 0, 0);
        assert_eq!(
            displays(&p),
            ["Hey, laser lips, your mama was a snow blower."]
        );
        assert_eq!(
            help_matching_words(&all, "the80s", None, 0, 0).available,
            10
        );
        // No words: everything (disabled aliases and display-less formats left out);
        // st2's paging.
        let p = help_matching_words(&all, "  ", None, 2, 1);
        assert_eq!(p.available, 10);
        assert_eq!(
            displays(&p),
            displays(&help(&all, None, None, 2, 1).unwrap())
        );
    }
}
