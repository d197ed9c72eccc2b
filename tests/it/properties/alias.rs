//! Alias formats (Python regexes with `{{placeholders}}`, written by pack authors and read
//! from StackStorm), commands (typed by anyone in chat), and help listings.
//!
//! * **Never panics, bounded time**: compiling any format and matching any command against
//!   it (`extract`, `extract_all`, `is_match`, the translation) finishes within the case
//!   budget; a format whose matching runs away is a finding, reported with its input.
//! * **The index's prefilter never changes a result**: an index holding one alias selects
//!   a command exactly when the format, matched directly, extracts parameters, and with the
//!   same parameters; and the format's own prefilter facts (`may_match`, `index_key`,
//!   `required_token`) hold for every command it matches.
//! * **Round trip**: values put into a `literal {{p}} literal {{q=default}}` format's
//!   places (plain or quoted) are extracted back exactly; an omitted optional gets its
//!   default.
//! * **Help**: listing with any filter, pack and page never panics and finishes in time
//!   (st2's regex filter and chat's word filter); a page is exactly its slice of the whole
//!   listing, and every entry of a word-filtered listing contains every word.

use std::{collections::BTreeMap, sync::Arc};

use proptest::prelude::*;
use stormbridge::alias::{
    extract_parameters,
    help::{help, help_matching_words},
    prepare, ActionAlias, AliasFormat, AliasIndex, CompiledFormat, FormatObject, ParseError,
    Representation, Selection,
};

use super::{check, mutated_text, regex_budget, watched};

/// Formats from st2's own parser tests (`test_action_alias_utils.py`), the protocol's quirks,
/// the CPython differential corpus in `src/alias/format.rs`, and classic runaway regexes.
const FORMATS: &[&str] = &[
    "",
    "foo",
    "foo bar",
    "foo bar ponies",
    "{{a}}",
    "{{a}} {{b}}",
    "run {{cmd}}",
    "run {{cmd}} on {{hosts}}",
    "run {{cmd}} {{hosts=localhost}}",
    "run {{cmd}} now",
    "run{{p}}",
    "echo {{text}}",
    "say {{msg}}.",
    "status.",
    "status {{x=1}}",
    "skip {{a}} more skip {{b}} and skip more.",
    "skip {{d=test1}} more skip {{e=test1}}.",
    "acl {{a}} {{b}} {{c}} {{d=1}}",
    "s {{a}} more {{ b }} more {{ c=99 }} more {{ d = 99 }}",
    "two by two hands of {{ color = {{ colors.default_color }} }}",
    "{{ p0='http' }} g {{ p1=p }} a {{ url }} {{ p2={'a':'b'} }} {{ p3={{ e.i }} }}",
    "{{ captain }} is my captain",
    "testing {{ b=abc }} {{ c=xyz }}",
    "get {{ key = 'quoted default' }}",
    "get {{ key = \"dq\" }} now",
    "q {{a=\"\"}}",
    "t {{a={}}}",
    "u {{a={x}}}",
    "{{a=}}{{b=''}}",
    "{{x}} cross the {{y}}",
    "How do I feel? I feel... {{status}}!",
    "x {~} {{a}}",
    "a{ {{b}}",
    "a{,2}b",
    r"\d+ items {{x=0}}",
    r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)",
    r"foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\s*$",
    r"(?:\s|^)deploy {{app}}(?=\s)(?:\b|$)",
    r"(?:^|\s)deploy {{app}}",
    r"deploy(?: to (?P<env>\w+))?",
    r"(?i)deploy {{app}}",
    r"(?P<a>x)(?P=a) {{b}}",
    r"(?x) show \  {{what}}  # comment",
    r"(a)?(?(1)b|c) {{v}}",
    r"\x41\101\u0042 {{v}}",
    r"[\]a-] {{v}}",
    r"[^\d\s]+ {{v}}",
    r"it's \w+ {{v}}",
    r"(?m)^line {{v}}$",
    r"multi\nline {{v}}",
    r"\bword\b {{v}}",
    r"(?P<g>-*?[a-c]+?\S??|a{2}{{q=1}}){1,3}-{,2}\x41*",
    r"}*?{{ r = 'd' }}?\1[ab]+",
    r"(?!\d{2,}?)+?\t\w+?",
    r#"[a-c]*?{{ u="v w" }}?x{,2}"#,
    r"(?i:}??)??{x}{2}{?x",
    r"(a+)+$",
    r"(a|a)*b {{x}}",
    r"(x+x+)+y",
    r"^(\w+\s?)*$",
    r"(.*a){12}",
    r"(a*)*\1b",
    r"((a|b)*)*c {{v}}",
    r"(?:{{a}} )+end",
    r"{{a}} {{b}} {{c}} {{d}} {{e}} {{f}} {{g}} x",
];

/// Commands typed in chat.
const COMMANDS: &[&str] = &[
    "",
    " ",
    "run date",
    "run date on localhost",
    "run 'ls -la' on localhost",
    "run \"ls on localhost",
    "run uname -a 10.0.10.1",
    "run ls on h1 hosts=h2",
    "run ls x=\"\" y=''",
    "foo a=\"foobar2 poonies bar\"",
    "a=foobar1 b=\"boobar2 3 4\" c='coobar3 4' d={\"a\": \"b\"}",
    "Malcolm Reynolds is my captain weirdo=\"River Tam\"",
    "skip \"a1 a2\" more skip b1 and skip more.",
    "g a http://google.com {{ execution.id }} p4='testing' p5={'a':'c'}",
    "deploy a deploy b",
    "deploy to prod",
    "foo ASDF-1234",
    "How do I fee I feelxyz great!",
    "echo line1\nline2",
    "   run date on localhost \n",
    "set {\"a\": {\"b\": [1, 2]}}",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a end?",
    "abababababababababababababababababababab",
];

/// Fragments worth splicing into formats and commands.
const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{{x}}",
    "{{y=1}}",
    "{{ z = 'q' }}",
    "(",
    ")",
    "(?:",
    "(?P<n>",
    "(?P=n)",
    "(?=",
    "(?!",
    "(?<=a)",
    "(?i)",
    "(?x)",
    "(?s)",
    "(?m)",
    "[",
    "]",
    "[^",
    "\\",
    "\\s",
    "\\w",
    "\\d",
    "\\b",
    "\\1",
    "\\x41",
    "\\u00e9",
    "\\N{SPACE}",
    "*",
    "+",
    "?",
    "*?",
    "+?",
    "{2}",
    "{2,}",
    "{,3}",
    "{99999}",
    "{4294967295}",
    "|",
    "^",
    "$",
    "\\A",
    "\\Z",
    ".",
    "'",
    "\"",
    "=",
    "a=b",
    " k=v",
    " k=\"v w\"",
    "{\"a\": 1}",
    " ",
    "  ",
    "\t",
    "\n",
    "\u{a0}",
    "\u{1f}",
    "é",
    "K",
    "\u{212a}",
    "\u{17f}",
    "aaaaaaaaaaaaaaaa",
];

/// Replaces each `{{…}}` of `format` with the next of `words` (cycled), roughly: a command
/// the format is meant to match, before mutation.
fn fill(format: &str, words: &[String]) -> String {
    let mut out = String::new();
    let mut rest = format;
    let mut n = 0;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => {
                out.push_str(
                    words
                        .get(n % words.len().max(1))
                        .map_or("v", String::as_str),
                );
                n += 1;
                rest = &rest[start + end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn formats() -> impl Strategy<Value = String> {
    mutated_text(
        FORMATS.iter().map(|s| s.to_string()).collect(),
        TOKENS.to_vec(),
        4,
    )
}

/// A format and a command: the command is often the format's own text with its places
/// filled, so that matching gets past the literal parts; then mutated.
fn format_and_command() -> impl Strategy<Value = (String, String)> {
    let words = proptest::collection::vec(
        prop_oneof![
            "[a-z0-9]{1,8}",
            Just("\"a b\"".to_owned()),
            Just("'c d'".to_owned()),
            Just("{\"k\": \"v\"}".to_owned()),
            "[ -~]{0,12}",
        ],
        1..5,
    );
    (formats(), words, any::<bool>()).prop_flat_map(|(format, words, from_format)| {
        let seed = if from_format {
            fill(&format, &words)
        } else {
            COMMANDS[words.len() % COMMANDS.len()].to_owned()
        };
        let mut seeds = vec![seed];
        seeds.extend(COMMANDS.iter().map(|c| c.to_string()));
        (Just(format), mutated_text(seeds, TOKENS.to_vec(), 3))
    })
}

/// Python's `str.isspace()`, as the parser uses it.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Everything a chat command does with one format, and the prefilter facts checked.
fn exercise(format: &str, command: &str) -> Result<(), String> {
    let Ok(f) = CompiledFormat::compile(format) else {
        // Refused formats must be refused by the eager compile too, and by one-shot parsing.
        return match extract_parameters(format, command, false) {
            Err(ParseError::InvalidFormat { .. }) => Ok(()),
            other => Err(format!(
                "compile refused the format, parsing said {other:?}"
            )),
        };
    };
    let _ = f.translated();
    let p = prepare(command);
    let single = f.extract(&p);
    let multi = f.extract_all(&p);
    let is_match = f.is_match(&p);
    let _ = extract_parameters(format, command, true);
    match (&single, &is_match) {
        (Ok(_), Ok(true)) | (Err(ParseError::NoMatch { .. } | ParseError::NoValue), Ok(false)) => {}
        (Err(ParseError::Runtime { .. } | ParseError::InvalidFormat { .. }), Err(_)) => {}
        other => return Err(format!("extract and is_match disagree: {other:?}")),
    }
    if let (Ok(_), Ok(all)) = (&single, &multi) {
        if all.is_empty() {
            return Err("extract matched but extract_all found nothing".into());
        }
    }
    let matched = matches!(single, Ok(_) | Err(ParseError::NoValue));
    if matched {
        if !f.may_match(&p) {
            return Err(format!(
                "may_match says no (prefix {:?}, required {:?}) but the format matches",
                f.literal_prefix(),
                f.required_literal()
            ));
        }
        let ci = f.is_case_insensitive();
        if let Some(key) = f.index_key() {
            let spaces = key.chars().filter(|c| is_py_space(*c)).count();
            let found = if ci {
                p.folded_index_keys(spaces).any(|k| k == key)
            } else {
                p.index_keys(spaces).any(|k| k == key)
            };
            if !found {
                return Err(format!(
                    "index key {key:?} is not among the command's keys, yet it matches"
                ));
            }
        }
        if let Some(token) = f.required_token() {
            if !p.tokens(ci).any(|t| t == token) {
                return Err(format!(
                    "required token {token:?} is not a token of the command, yet it matches"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn any_format_and_command_match_within_budget_and_prefilters_hold() {
    check(
        "alias::format_and_command",
        160,
        format_and_command(),
        |(format, command)| {
            let (f, c) = (format.clone(), command.clone());
            let budget = regex_budget(format.chars().count());
            let outcome = watched(budget, "compiling and matching", move || exercise(&f, &c))?;
            prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
            Ok(())
        },
    );
}

fn alias(pack: &str, name: &str, formats: Vec<AliasFormat>) -> ActionAlias {
    ActionAlias {
        name: name.into(),
        pack: pack.into(),
        reference: format!("{pack}.{name}"),
        description: Some(format!("{name} description")),
        action_ref: "core.local".into(),
        formats,
        ..ActionAlias::default()
    }
}

#[test]
fn an_index_selects_exactly_what_the_format_matches() {
    check(
        "alias::index_agrees_with_format",
        96,
        format_and_command(),
        |(format, command)| {
            let (f, c) = (format.clone(), command.clone());
            let budget = regex_budget(format.chars().count());
            let outcome = watched(budget, "indexing and selecting", move || {
                let direct = match CompiledFormat::compile(&f) {
                    Ok(_) => extract_parameters(&f, &c, false).ok(),
                    Err(_) => None,
                };
                let (index, _) =
                    AliasIndex::build(vec![alias("p", "a", vec![AliasFormat::Plain(f.clone())])]);
                let selected = match index.select(&c) {
                    Selection::Matched(m) => Some(m.params),
                    Selection::Ambiguous(c) => {
                        return Err(format!("ambiguous with one alias: {c:?}"))
                    }
                    Selection::NoMatch { .. } => None,
                };
                let _ = index.st2_match(&c);
                if selected != direct {
                    return Err(format!(
                        "the index selected {selected:?}, the format alone extracts {direct:?}"
                    ));
                }
                Ok(())
            })?;
            prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
            Ok(())
        },
    );
}

/// A value for a place: a plain word (not a literal of the format: those are lower case),
/// or a quoted phrase.
fn place_value() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        "[A-Z0-9][A-Za-z0-9._/:@-]{0,10}".prop_map(|v| (v.clone(), v)),
        "[A-Z0-9][A-Za-z0-9 ]{0,10}[A-Za-z0-9]".prop_map(|v| (format!("\"{v}\""), v)),
        "[A-Z0-9][A-Za-z0-9 ]{0,10}[A-Za-z0-9]".prop_map(|v| (format!("'{v}'"), v)),
    ]
}

#[test]
fn values_put_into_places_come_back_out() {
    // `w0 {{p0}} w1 {{p1}} … [wn] [{{opt=default}}]`, literal words distinct.
    let strategy = (
        proptest::collection::btree_set("[a-z]{2,8}", 1..6),
        proptest::collection::vec(place_value(), 1..5),
        proptest::option::of(("[a-z]{1,6}", proptest::option::of(place_value()))),
        any::<bool>(),
    );
    check(
        "alias::round_trip",
        128,
        strategy,
        |(words, values, optional, trailing_word)| {
            let words: Vec<String> = words.into_iter().collect();
            let n = values.len().min(words.len());
            let mut format = Vec::new();
            let mut command = Vec::new();
            let mut want = BTreeMap::new();
            for (i, (typed, value)) in values.iter().take(n).enumerate() {
                format.push(format!("{} {{{{p{i}}}}}", words[i]));
                command.push(format!("{} {typed}", words[i]));
                want.insert(format!("p{i}"), value.clone());
            }
            if trailing_word && words.len() > n {
                format.push(words[n].clone());
                command.push(words[n].clone());
            }
            if let Some((default, given)) = &optional {
                format.push(format!("{{{{opt={default}}}}}"));
                match given {
                    Some((typed, value)) => {
                        command.push(typed.clone());
                        want.insert("opt".into(), value.clone());
                    }
                    None => {
                        want.insert("opt".into(), default.clone());
                    }
                }
            }
            let (format, command) = (format.join(" "), command.join(" "));
            let (f, c) = (format.clone(), command.clone());
            let budget = regex_budget(format.len());
            let (got, selected) = watched(budget, "a round trip", move || {
                let got = extract_parameters(&f, &c, false);
                let (index, _) =
                    AliasIndex::build(vec![alias("p", "a", vec![AliasFormat::Plain(f.clone())])]);
                (got, index.select(&c))
            })?;
            prop_assert_eq!(
                got,
                Ok(vec![want.clone()]),
                "format {:?} command {:?}",
                format,
                command
            );
            match selected {
                Selection::Matched(m) => prop_assert_eq!(m.params, vec![want]),
                other => prop_assert!(false, "index did not select: {other:?}"),
            }
            Ok(())
        },
    );
}

/// st2's help fixture (`test_actionalias_helpstring.py`), mutated, in a few packs.
fn help_aliases() -> impl Strategy<Value = Vec<Arc<ActionAlias>>> {
    let displays = mutated_text(
        [
            "Come with me if you want to live",
            "I need your {{item}}, your {{item2}} and your {{vehicle}}",
            "Number 5 is {{status}}",
            "Hey, laser lips, your mama was a snow blower.",
            "How do I feel? I feel... {{status}}!",
            "Watch this.",
            "run {{cmd}} on {{hosts}}",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        TOKENS.to_vec(),
        2,
    )
    .boxed();
    let entry = (
        proptest::sample::select(vec!["the80s", "core", "ops", "Ops", ""]),
        any::<bool>(),
        proptest::collection::vec(
            prop_oneof![
                displays.clone().prop_map(AliasFormat::Plain),
                (
                    proptest::option::of(displays.clone()),
                    proptest::option::of(displays)
                )
                    .prop_map(|(d, r)| AliasFormat::Object(Box::new(
                        FormatObject {
                            display: d,
                            representation: r.map(Representation::One),
                            match_multiple: false,
                        }
                    ))),
            ],
            0..3,
        ),
    );
    proptest::collection::vec(entry, 0..10).prop_map(|entries| {
        entries
            .into_iter()
            .enumerate()
            .map(|(i, (pack, enabled, formats))| {
                let mut a = alias(pack, &format!("a{i}"), formats);
                a.enabled = enabled || i % 3 != 0;
                Arc::new(a)
            })
            .collect()
    })
}

/// The page `limit`/`offset` select from the whole listing (st2's paging rules).
fn page_of<T: Clone>(all: &[T], limit: usize, offset: usize) -> Vec<T> {
    match (offset, limit) {
        (0, l) if l > 0 => all.iter().take(l).cloned().collect(),
        (o, 0) if o > 0 => all.iter().skip(o).cloned().collect(),
        (o, l) if o > 0 && l > 0 => all.iter().skip(o).take(l).cloned().collect(),
        _ => all.to_vec(),
    }
}

#[test]
fn help_with_any_filter_and_page_is_a_slice_of_the_listing() {
    let filters = mutated_text(
        [
            "",
            "live",
            "^Number",
            "(?i)FEEL",
            "feel\\?",
            "\\{\\{status\\}\\}",
            "[a-z]+ this",
            "laser|snow",
            "(a+)+$",
            "((a|b)*)*c",
            "(.*a){12}",
            "(?P<x>a)(?P=x)",
            "\\bthe\\b",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        TOKENS.to_vec(),
        3,
    );
    let strategy = (
        help_aliases(),
        proptest::option::of(filters),
        proptest::option::of(proptest::sample::select(vec![
            "the80s", "core", "ops", "x", "",
        ])),
        0usize..6,
        0usize..6,
    );
    check(
        "alias::help",
        128,
        strategy,
        |(aliases, filter, pack, limit, offset)| {
            let (a, f, pk) = (aliases.clone(), filter.clone(), pack);
            let budget = regex_budget(filter.as_deref().map_or(0, |f| f.chars().count()));
            let outcome = watched(budget, "help listings", move || {
                let full = help(&a, f.as_deref(), pk, 0, 0);
                let page = help(&a, f.as_deref(), pk, limit, offset);
                let words = f.clone().unwrap_or_default();
                let chat_full = help_matching_words(&a, &words, pk, 0, 0);
                let chat_page = help_matching_words(&a, &words, pk, limit, offset);
                (full, page, words, chat_full, chat_page)
            })?;
            let (full, page, words, chat_full, chat_page) = outcome;
            match (full, page) {
                (Ok(full), Ok(page)) => {
                    prop_assert_eq!(page.available, full.available);
                    prop_assert_eq!(page.entries, page_of(&full.entries, limit, offset));
                }
                (Err(_), Err(_)) => {}
                (full, page) => prop_assert!(false, "whole {full:?} but page {page:?}"),
            }
            prop_assert_eq!(chat_page.available, chat_full.available);
            prop_assert_eq!(
                &chat_page.entries,
                &page_of(&chat_full.entries, limit, offset)
            );
            for e in &chat_full.entries {
                let about = format!(
                    "{} {} {}",
                    e.display,
                    e.pack,
                    e.description.as_deref().unwrap_or("")
                )
                .to_lowercase();
                for w in words.split_whitespace() {
                    prop_assert!(
                        about.contains(&w.to_lowercase()),
                        "entry {e:?} lacks word {w:?}"
                    );
                }
            }
            Ok(())
        },
    );
}
