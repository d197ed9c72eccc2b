//! Unit tests of the alias format port: st2's own parser tests, the quirks of
//! `st2-protocol.md` §3, the translator's corner cases, and a corpus of cases
//! checked against st2's parser running on CPython.

use std::collections::BTreeMap;

use super::python_regex as py;
use super::*;

fn one(format: &str, command: &str) -> Result<BTreeMap<String, String>, ParseError> {
    extract_parameters(format, command, false).map(|mut v| v.remove(0))
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(format: &str, command: &str, expected: &[(&str, &str)]) {
    match one(format, command) {
        Ok(m) => assert_eq!(m, map(expected), "format {format:?} command {command:?}"),
        Err(e) => panic!("format {format:?} command {command:?}: {e}"),
    }
}

fn no_match(format: &str, command: &str) {
    match one(format, command) {
        Err(ParseError::NoMatch { .. }) => {}
        other => {
            panic!("format {format:?} command {command:?}: expected no match, got {other:?}")
        }
    }
}

// ---- st2common/tests/unit/test_action_alias_utils.py ----

#[test]
fn st2_empty_string() {
    ok("", "", &[]);
}

#[test]
fn st2_arbitrary_pairs() {
    ok("", "a=foobar1", &[("a", "foobar1")]);
    ok(
        "foo",
        "foo a=\"foobar2 poonies bar\"",
        &[("a", "foobar2 poonies bar")],
    );
    ok(
        "foo",
        "foo a='foobar2 poonies bar'",
        &[("a", "foobar2 poonies bar")],
    );
    ok(
        "foo",
        "foo a={\"foobar2\": \"poonies\"}",
        &[("a", "{\"foobar2\": \"poonies\"}")],
    );
    ok(
        "",
        "a=foobar1 b=\"boobar2 3 4\" c='coobar3 4' d={\"a\": \"b\"}",
        &[
            ("a", "foobar1"),
            ("b", "boobar2 3 4"),
            ("c", "coobar3 4"),
            ("d", "{\"a\": \"b\"}"),
        ],
    );
    ok(
        "{{ captain }} is my captain",
        "Malcolm Reynolds is my captain weirdo=\"River Tam\"",
        &[("captain", "Malcolm Reynolds"), ("weirdo", "River Tam")],
    );
}

#[test]
fn st2_simple_end_spaced_parsing() {
    ok(
        "skip {{a}} more skip {{b}} and skip more.",
        "skip a1 more skip b1 and skip more.",
        &[("a", "a1"), ("b", "b1")],
    );
    ok(
        "skip {{a}} more skip {{b}}",
        "skip a1 more skip b1",
        &[("a", "a1"), ("b", "b1")],
    );
    ok(
        "skip {{a}} more skip {{b}} and skip more.",
        "skip \"a1 a2\" more skip b1 and skip more.",
        &[("a", "a1 a2"), ("b", "b1")],
    );
}

#[test]
fn st2_default_values_and_spacing() {
    ok(
        "acl {{a}} {{b}} {{c}} {{d=1}}",
        "acl \"a1 a2\" \"b1\" \"c1\"",
        &[("a", "a1 a2"), ("b", "b1"), ("c", "c1"), ("d", "1")],
    );
    ok("acl {{a=test}}", "acl", &[("a", "test")]);
}

#[test]
fn st2_json_and_mixed_parsing() {
    ok(
        "skip {{a}} more skip.",
        "skip {\"a\": \"b\", \"c\": \"d\"} more skip.",
        &[("a", "{\"a\": \"b\", \"c\": \"d\"}")],
    );
    ok(
        "skip {{a}} more skip {{b}}.",
        "skip {\"a\": \"b\", \"c\": \"d\"} more skip x.",
        &[("a", "{\"a\": \"b\", \"c\": \"d\"}"), ("b", "x")],
    );
}

#[test]
fn st2_param_spaces_and_enclosed_defaults() {
    ok(
        "s {{a}} more {{ b }} more {{ c=99 }} more {{ d = 99 }}",
        "s one more two more three more",
        &[("a", "one"), ("b", "two"), ("c", "three"), ("d", "99")],
    );
    ok(
        "skip {{ a = value }} more",
        "skip one more",
        &[("a", "one")],
    );
    ok("skip {{ a = value }} more", "skip more", &[("a", "value")]);
}

#[test]
fn st2_template_defaults_returned_verbatim() {
    ok(
        "two by two hands of {{ color = {{ colors.default_color }} }}",
        "two by two hands of",
        &[("color", "{{ colors.default_color }}")],
    );
}

#[test]
fn st2_key_value_combinations() {
    ok(
        "testing {{ a }}",
        "testing value b=value2",
        &[("a", "value"), ("b", "value2")],
    );
    ok(
        "testing {{ a=new }}",
        "testing b=\"another value\"",
        &[("a", "new"), ("b", "another value")],
    );
    ok(
        "testing {{ b=abc }} {{ c=xyz }}",
        "testing newvalue d={\"1\": \"2\"} e=\"long value\"",
        &[
            ("b", "newvalue"),
            ("c", "xyz"),
            ("d", "{\"1\": \"2\"}"),
            ("e", "long value"),
        ],
    );
}

#[test]
fn st2_stream_defaults() {
    ok(
        "skip {{d=test1}} more skip {{e=test1}}.",
        "skip more skip",
        &[("d", "test1"), ("e", "test1")],
    );
    ok(
        "skip {{d=test}} more skip {{e=test}}",
        "skip ponies more skip",
        &[("d", "ponies"), ("e", "test")],
    );
    let e = one("skip {{d}} more skip {{e}}.", "").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Command \"\" doesn't match format string \"skip {{d}} more skip {{e}}.\""
    );
}

#[test]
fn st2_all_the_things() {
    ok(
        "{{ p0='http' }} g {{ p1=p }} a {{ url }} {{ p2={'a':'b'} }} {{ p3={{ e.i }} }}",
        "g a http://google.com {{ execution.id }} p4='testing' p5={'a':'c'}",
        &[
            ("p0", "http"),
            ("p1", "p"),
            ("url", "http://google.com"),
            ("p2", "{{ execution.id }}"),
            ("p3", "{{ e.i }}"),
            ("p4", "testing"),
            ("p5", "{'a':'c'}"),
        ],
    );
}

#[test]
fn st2_command_doesnt_match_and_ending_pairs() {
    let e = one("foo bar ponies", "foo lulz ponies").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Command \"foo lulz ponies\" doesn't match format string \"foo bar ponies\""
    );
    ok(
        "foo bar",
        "foo bar pony1=foo pony2=bar",
        &[("pony1", "foo"), ("pony2", "bar")],
    );
}

#[test]
fn st2_regex_anchors() {
    let f = r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)";
    ok(f, "foo ASDF-1234", &[("issue_key", "ASDF-1234")]);
    let e = one(f, "bar foo ASDF-1234").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("Command \"bar foo ASDF-1234\" doesn't match format string \"{f}\"")
    );
    let f = r"foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\s*$";
    ok(f, "foo ASDF-1234", &[("issue_key", "ASDF-1234")]);
    no_match(f, "foo ASDF-1234 bar");
    let f = r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+) bar\s*$";
    ok(f, "foo ASDF-1234 bar", &[("issue_key", "ASDF-1234")]);
    no_match(
        r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\s*$",
        "bar ASDF-1234",
    );
}

fn anchors(p: &str) -> (bool, bool) {
    let t = py::parse(p, py::F_S).unwrap();
    (
        py::search_anchor(&t.seq, &[py::At::Beginning, py::At::BeginningString]),
        py::search_anchor(&t.seq, &[py::At::End, py::At::EndString]),
    )
}

#[test]
fn st2_search_regex_tokens() {
    assert_eq!(anchors("^asdf"), (true, false));
    assert_eq!(anchors("asdf"), (false, false));
    assert_eq!(anchors("^asdf$"), (true, true));
    assert!(anchors("^asdf|fdsa$").1);
    assert!(anchors("^(?:asdf|fdsa$)").1);
    // Only the second branch is searched.
    assert!(anchors(r"(?:\b|^)foo").0);
    assert!(!anchors(r"(?:^|\b)foo").0);
    assert!(!anchors(r"(?:a|b|^)foo").0);
    // Not inside repeats or lookarounds.
    assert!(!anchors(r"(?:^)?foo").0);
    assert!(!anchors(r"(?=^)foo").0);
    // Common prefixes leave the branch (as sre_parse does).
    assert!(anchors(r"(?:^a|^b)").0);
    assert_eq!(anchors(r"\Afoo\Z"), (true, true));
    assert_eq!(anchors(r"(?P<x>^a)"), (true, false));
}

// ---- st2-protocol.md §3 "Consequences a bridge must reproduce" ----

#[test]
fn metacharacters_stay_live() {
    let f = "How do I feel? I feel... {{status}}!";
    no_match(f, "How do I feel? I feel... great!");
    ok(f, "How do I fee I feelxyz great!", &[("status", "great")]);
}

#[test]
fn trailing_dot_matches_added_space() {
    ok(
        "skip {{d=test1}} more skip {{e=test1}}.",
        "skip more skip",
        &[("d", "test1"), ("e", "test1")],
    );
    ok("status.", "status", &[]);
}

#[test]
fn case_sensitive() {
    no_match("run {{cmd}} on {{hosts}}", "RUN date ON localhost");
    ok(
        "run {{cmd}} on {{hosts}}",
        "run date on localhost",
        &[("cmd", "date"), ("hosts", "localhost")],
    );
}

#[test]
fn surrounding_whitespace_ignored() {
    ok(
        "run {{cmd}} on {{hosts}}",
        "   run date on localhost \n",
        &[("cmd", "date"), ("hosts", "localhost")],
    );
}

#[test]
fn newlines_in_values_but_not_for_literal_spaces() {
    ok(
        "echo {{text}}",
        "echo line1\nline2",
        &[("text", "line1\nline2")],
    );
    no_match("run {{a}} on {{b}}", "run\nx on y");
    ok(
        "run {{a}} on {{b}}",
        "run x\ny on z",
        &[("a", "x\ny"), ("b", "z")],
    );
}

#[test]
fn quotes_json_and_equals() {
    ok(
        "run {{cmd}} on {{hosts}}",
        "run 'ls -la' on localhost",
        &[("cmd", "ls -la"), ("hosts", "localhost")],
    );
    ok(
        "run {{cmd}} on {{hosts}}",
        "run \"ls -la\" on localhost",
        &[("cmd", "ls -la"), ("hosts", "localhost")],
    );
    ok(
        "run {{cmd}}",
        "run \"ls on localhost",
        &[("cmd", "ls on localhost")],
    );
    ok("set {{v}}", "set {\"a\": 1}", &[("v", "{\"a\": 1}")]);
    ok("run {{cmd}} now", "run a=b now", &[("cmd", "a=b")]);
    // The trailing `"a=b"` is read as pair `"a` = `b"`.
    no_match("run {{cmd}} on {{hosts}}", "run ls on \"a=b\"");
    ok(
        "run {{cmd}}",
        "run ls \"a=b\"",
        &[("cmd", "ls"), ("\"a", "b\"")],
    );
}

#[test]
fn trailing_space_gives_space_value() {
    ok("run {{cmd}}", "run ", &[("cmd", " ")]);
    no_match("run {{cmd}}", "run");
}

#[test]
fn empty_format() {
    ok("", "", &[]);
    ok("", "a=1 b=2", &[("a", "1"), ("b", "2")]);
    no_match("", "anything");
    ok("", "   ", &[]);
}

#[test]
fn global_replace_quirk() {
    no_match("foo {{a}} bar", "foo x=1 bar x=1");
    ok("foo {{a}} bar", "foo y bar x=1", &[("a", "y"), ("x", "1")]);
}

#[test]
fn lazy_placeholders() {
    ok(
        "run {{cmd}} {{hosts=localhost}}",
        "run uname -a 10.0.10.1",
        &[("cmd", "uname"), ("hosts", "-a 10.0.10.1")],
    );
    ok(
        "run {{cmd}} {{hosts=localhost}}",
        "run uname",
        &[("cmd", "uname"), ("hosts", "localhost")],
    );
}

#[test]
fn pairs_override_captures() {
    ok(
        "run {{cmd}} on {{hosts}}",
        "run ls on h1 hosts=h2",
        &[("cmd", "ls"), ("hosts", "h2")],
    );
    ok(
        "run {{cmd}}",
        "run ls x=\"\" y=''",
        &[("cmd", "ls"), ("x", ""), ("y", "")],
    );
}

#[test]
fn no_value_error() {
    // Non-empty format, blank command, all values empty.
    // `{{a=}}{{b=''}}` is one optional `a` whose default is `}}{{b=''`.
    ok("{{a=}}{{b=''}}", "", &[("a", "}}{{b=''")]);
    let e = one("(?P<x>a)?", "").unwrap_err();
    assert_eq!(e, ParseError::NoValue);
    assert_eq!(
        e.to_string(),
        "No value supplied and no default value found."
    );
    let e = one("x {{a=''}}", "").unwrap_err();
    assert!(matches!(e, ParseError::NoMatch { .. }));
    ok("x {{a=''}}", "x", &[("a", "")]);
}

#[test]
fn user_named_groups_and_none() {
    // Unmatched user group: omitted (st2 has None).
    ok(r"deploy(?: to (?P<env>\w+))?", "deploy", &[]);
    ok(
        r"deploy(?: to (?P<env>\w+))?",
        "deploy to prod",
        &[("env", "prod")],
    );
}

#[test]
fn invalid_formats() {
    for f in [
        "{{a.b}}",
        "x {{a=}}",
        "{{a}} {{a}}",
        "(",
        "a)",
        "[a",
        "a**",
        r"\q",
        "(?<n>a)",
        "(?>a)",
        "a{2,1}",
    ] {
        match CompiledFormat::compile(f) {
            Err(ParseError::InvalidFormat { format, message }) => {
                assert_eq!(format, f);
                assert!(!message.is_empty());
            }
            other => panic!("{f:?}: expected InvalidFormat, got {other:?}"),
        }
    }
    let e = CompiledFormat::compile("{{a}} {{a}}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("redefinition of group name 'a'"), "{e}");
    let e = CompiledFormat::compile("{{a.b}}").unwrap_err().to_string();
    assert!(e.contains("bad character in group name 'a.b'"), "{e}");
}

#[test]
fn python_literal_braces() {
    ok("x {~} {{a}}", "x {~} v", &[("a", "v")]);
    ok("a{ {{b}}", "a{ v", &[("b", "v")]);
    ok("a{,2}b", "aab", &[]);
    ok("a{}b {{c}}", "a{}b v", &[("c", "v")]);
    ok("a{1,x} {{c}}", "a{1,x} v", &[("c", "v")]);
    ok("a{2} {{c}}", "aa v", &[("c", "v")]);
}

#[test]
fn python_syntax_translation() {
    ok(r"(?i)deploy {{app}}", "DePloy web", &[("app", "web")]);
    ok(r"(?P<a>x)(?P=a) {{b}}", "xx q", &[("a", "x"), ("b", "q")]);
    no_match(r"(?P<a>x)(?P=a) {{b}}", "xy q");
    // Verbose mode (applies globally, Python < 3.11): the padding before the
    // placeholder is ignored, and a trailing comment swallows the added `\s*$`.
    ok(r"(?x) show \  {{what}}", "show  it", &[("what", " it")]);
    ok(
        r"(?x) show \  {{what}}  # comment",
        "show  it",
        &[("what", " ")],
    );
    ok(r"(a)?(?(1)b|c) {{v}}", "ab v", &[("v", "v")]);
    ok(r"(a)?(?(1)b|c) {{v}}", "c v", &[("v", "v")]);
    ok(r"\x41\101\u0042 {{v}}", "AAB v", &[("v", "v")]);
    ok(r"[\]a-] {{v}}", "] v", &[("v", "v")]);
    ok(r"[^\d\s]+ {{v}}", "ab v", &[("v", "v")]);
    no_match(r"[^\d\s]+ {{v}}", "a1 v");
    ok(r"it's \w+ {{v}}", "it's héllo v", &[("v", "v")]);
    // `$` before a final newline, `\Z` only at the very end.
    no_match(r"^\s*end$", "end");
    ok(r"^\s*end\s$", "end", &[]);
    no_match(r"^ end\Z", "end");
    ok(r"^ end \Z", "end", &[]);
    // Information separators are whitespace to Python.
    ok(r"a\s{{b}}", "a\u{1f}x", &[("b", "x")]);
    no_match("a {{b}}", "a\u{1f}x");
}

#[test]
fn match_multiple_finditer() {
    // Anchored by the quirky anchor search (second branches `^` and `$`), so
    // no `^\s*`/`\s*$` is added and `finditer` finds two matches.
    let f = r"(?:\s|^)deploy {{app}}(?=\s)(?:\b|$)";
    let r = extract_parameters(f, "deploy a deploy b", true).unwrap();
    assert_eq!(r, vec![map(&[("app", "a")]), map(&[("app", "b")])]);
    // Single mode takes the first.
    let r = extract_parameters(f, "deploy a deploy b", false).unwrap();
    assert_eq!(r, vec![map(&[("app", "a")])]);
    // No match in multiple mode is an empty list, as in st2.
    assert!(extract_parameters(f, "nothing", true).unwrap().is_empty());
    // Auto-anchored formats give at most one match.
    let r = extract_parameters("run {{x}}", "run a", true).unwrap();
    assert_eq!(r, vec![map(&[("x", "a")])]);
}

#[test]
fn prepared_command_parts() {
    let p = prepare("  deploy web x=1 y=\"a b\"");
    assert_eq!(p.stream(), "   deploy web ");
    assert_eq!(
        p.pairs(),
        &[
            ("x".to_string(), "1".to_string()),
            ("y".to_string(), "a b".to_string())
        ]
    );
    assert_eq!(p.first_word(), "deploy");
    assert_eq!(p.trimmed(), "deploy web ");
    let p = prepare("a=b");
    assert_eq!(p.stream(), "  ");
    assert_eq!(p.first_word(), "");
}

#[test]
fn literal_prefix_analysis() {
    let c = |f: &str| {
        let c = CompiledFormat::compile(f).unwrap();
        (
            c.literal_prefix().to_string(),
            c.index_key().map(str::to_string),
        )
    };
    let s = |p: &str, k: Option<&str>| (p.to_string(), k.map(str::to_string));
    assert_eq!(c("run {{cmd}} on {{host}}"), s("run ", Some("run ")));
    assert_eq!(c("get pods {{ns}}"), s("get pods ", Some("get pods ")));
    assert_eq!(c("get pods{{ns}}"), s("get pods", Some("get ")));
    assert_eq!(c("status"), s("status", Some("status")));
    assert_eq!(c("status {{x=1}}"), s("status", Some("status")));
    assert_eq!(c("status{{x}}"), s("status", None));
    assert_eq!(c("runs? {{x}}"), s("run", None));
    assert_eq!(c("{{x}} cross"), s("", None));
    assert_eq!(c("(?i)Run {{x}}"), s("run ", Some("run ")));
    assert_eq!(c("(?i)RunÉ {{x}}"), s("run", None));
    let f = CompiledFormat::compile("(?i)Status {{x}}").unwrap();
    assert!(f.is_case_insensitive());
    assert!(f.may_match(&prepare("STATUS a")));
    assert!(f.may_match(&prepare("\u{17F}TATUS a")));
    assert_eq!(f.extract(&prepare("\u{17F}TATUS a")).unwrap()["x"], "a");
    assert_eq!(c(r"(?:\b|^)run {{x}}"), s("", None));
    assert_eq!(c(r"^\s*foo (?P<k>\w+)"), s("foo ", Some("foo ")));
    assert_eq!(c(" \t go {{x}}"), s("go ", Some("go ")));
    assert_eq!(c("a|b"), s("", None));
    assert_eq!(c("(?:run) {{x}}"), s("run ", Some("run ")));
    assert_eq!(c(r"run\. {{x}}"), s("run. ", Some("run. ")));
    assert_eq!(c("(?m)run {{x}}"), s("", None));
    let f = CompiledFormat::compile("run {{cmd}} on {{host}}").unwrap();
    assert_eq!(f.literal_len(), 8);
    assert_eq!(f.required_literal(), "run ");
    let f = CompiledFormat::compile("{{choice}} cross the {{target}}").unwrap();
    assert_eq!(f.required_token(), Some("cross"));
    assert_eq!(
        CompiledFormat::compile("{{a}} b").unwrap().required_token(),
        None
    );
    assert_eq!(f.required_literal(), " cross the ");
    assert!(f.may_match(&prepare("Don't cross the streams")));
    assert!(!f.may_match(&prepare("Don't cross streams")));
    let keys: Vec<String> = prepare("get  pods x")
        .index_keys(2)
        .map(String::from)
        .collect();
    assert_eq!(keys, ["get", "get ", "get  "]);
}

#[test]
fn never_panics_on_odd_input() {
    let formats = [
        "",
        "{{",
        "}}",
        "{{}}",
        "{{ }}",
        "{{=}}",
        "{{a=}}}",
        "\\",
        "(?",
        "(?P",
        "(?P<",
        "[",
        "[^",
        "[]",
        "a{",
        "a{1",
        "a{1,",
        "(?#",
        "(?(",
        "(?(1)a|b|c)",
        "\u{0}",
        "é{{ü}}",
        "(?P<ü>x)",
        "(?<=a+)b",
        "(?<=(a)\\1)b",
        "\\8",
        "\\777",
        "(?u)(?a)",
        "(?L)",
        "(?t:a)",
    ];
    let commands = [
        "", " ", "x", "a=b", "\"", "'", "{", "= =", "é=ü", "a=\"b", "\u{0}",
    ];
    for f in formats {
        for c in commands {
            let _ = extract_parameters(f, c, false);
            let _ = extract_parameters(f, c, true);
        }
    }
}

#[test]
fn backtrack_limit_is_an_error_not_a_hang() {
    let f = r"(?:(?:a|a)+)+b{{x}}";
    let cmd = "a".repeat(40);
    match one(f, &cmd) {
        Err(ParseError::Runtime { .. }) | Err(ParseError::NoMatch { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
}

/// (format, command, match_multiple) cases with the result of st2's parser
/// running on CPython (`ok`: list of dicts, `parse`: ParseException text),
/// generated by the differential harness: realistic formats and random
/// Python-regex formats. One JSON object per line.
const CPYTHON_CORPUS: &str = include_str!("cpython_corpus.jsonl");

#[test]
fn agrees_with_cpython_corpus() {
    let mut n = 0;
    for line in CPYTHON_CORPUS.lines().filter(|l| !l.trim().is_empty()) {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let f = case["f"].as_str().unwrap();
        let c = case["c"].as_str().unwrap();
        let m = case["m"].as_bool().unwrap();
        let got = extract_parameters(f, c, m);
        if let Some(ok) = case.get("ok") {
            let want: Vec<BTreeMap<String, String>> = serde_json::from_value(ok.clone()).unwrap();
            assert_eq!(got.as_ref().ok(), Some(&want), "{line}");
        } else {
            let want = case["parse"].as_str().unwrap();
            match got {
                Err(e @ (ParseError::NoMatch { .. } | ParseError::NoValue)) => {
                    assert_eq!(e.to_string(), want, "{line}")
                }
                other => panic!("{line}: expected ParseException, got {other:?}"),
            }
        }
        n += 1;
    }
    assert!(n > 200);
}
