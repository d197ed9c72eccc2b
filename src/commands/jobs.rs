//! `!st2jobs`, `!st2job`, `!st2last`, `!st2logs`, `!st2tail`, `!st2cancel` and the admins'
//! `!st2audit`, `!st2auditjob`, `!st2auditlogs`: reading their arguments and composing
//! their replies from the job records ([`crate::store::jobs`]).
//!
//! Who may see what is decided by the caller (the job keeper): these functions only say
//! whether a record is the asker's own ([`owned_by`]).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::{
    render::Templates,
    store::{
        jobs::{JobKind, JobRecord, JobStatus},
        model::UserKey,
    },
};

/// Most jobs listed at once.
pub const MAX_LIST: usize = 100;
/// Jobs listed when `--limit` is not given.
pub const DEFAULT_LIST: usize = 10;
/// Characters of output per `!st2logs` page (chat platforms cut long messages; the
/// connection splits what is longer, but a page should read as one message).
pub const LOGS_PAGE_CHARS: usize = 3_000;

/// Why a job command's arguments were refused: the text says it plainly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgError(pub String);

/// `!st2jobs [--limit N] [--status S]`, `!st2audit [--user U] [--limit N] [--status S]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListArgs {
    /// How many, newest first.
    pub limit: usize,
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// `--user`: a `<connection>:<id>` key, or a bare id taken in the asker's connection.
    pub user: Option<String>,
}

/// `!st2logs <id> [page]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogsArgs {
    /// The job.
    pub id: u64,
    /// 1-based page; the last page when not given (the end of the output is what people
    /// look for first).
    pub page: Option<usize>,
}

/// Splits `--name value` / `--name=value` options from the words; anything else is an error.
fn options<'a>(args: &'a str, known: &[&str]) -> Result<Vec<(&'a str, &'a str)>, ArgError> {
    let mut out = Vec::new();
    let mut words = args.split_whitespace();
    while let Some(word) = words.next() {
        let Some(option) = word.strip_prefix("--") else {
            return Err(ArgError(format!(
                "I did not understand `{word}`; the options are {}.",
                known
                    .iter()
                    .map(|k| format!("`--{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let (name, value) = match option.split_once('=') {
            Some((n, v)) => (n, v),
            None => (
                option,
                words
                    .next()
                    .ok_or_else(|| ArgError(format!("`--{option}` needs a value.")))?,
            ),
        };
        if !known.contains(&name) {
            return Err(ArgError(format!("`--{name}` is not an option here.")));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// Reads `!st2jobs`' (`audit = false`) or `!st2audit`'s arguments.
pub fn list_args(args: &str, audit: bool) -> Result<ListArgs, ArgError> {
    let known: &[&str] = if audit {
        &["limit", "status", "user"]
    } else {
        &["limit", "status"]
    };
    let mut parsed = ListArgs {
        limit: DEFAULT_LIST,
        status: None,
        user: None,
    };
    for (name, value) in options(args, known)? {
        match name {
            "limit" => {
                parsed.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIST).contains(n))
                    .ok_or_else(|| {
                        ArgError(format!(
                            "`--limit` takes a number from 1 to {MAX_LIST}, not `{value}`."
                        ))
                    })?
            }
            "status" => {
                parsed.status = Some(value.parse::<JobStatus>().map_err(|_| {
                    ArgError(format!(
                        "`{value}` is not a job status; use one of {}.",
                        JobStatus::ALL
                            .iter()
                            .map(|s| format!("`{}`", s.as_str()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?)
            }
            _ => parsed.user = Some(value.to_owned()),
        }
    }
    Ok(parsed)
}

/// A job id as people type it: `42` or `#42`.
pub fn job_id(word: &str) -> Result<u64, ArgError> {
    let digits = word.trim().trim_start_matches('#');
    digits
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            if word.trim().is_empty() {
                ArgError("Which job? Give its number, as `!st2jobs` lists them.".to_owned())
            } else {
                ArgError(format!(
                    "`{}` is not a job number; `!st2jobs` lists yours.",
                    word.trim()
                ))
            }
        })
}

/// The one job id a command takes (`!st2job 42`); `None` for `!st2tail` with no id.
pub fn single_id(args: &str, optional: bool) -> Result<Option<u64>, ArgError> {
    let mut words = args.split_whitespace();
    let first = words.next();
    if let Some(extra) = words.next() {
        return Err(ArgError(format!(
            "I only take a job number here; `{extra}` is one word too many."
        )));
    }
    match first {
        None if optional => Ok(None),
        None => job_id("").map(Some),
        Some(word) => job_id(word).map(Some),
    }
}

/// Reads `!st2logs <id> [page]` (also `--page N`).
pub fn logs_args(args: &str) -> Result<LogsArgs, ArgError> {
    let mut words = args.split_whitespace();
    let id = job_id(words.next().unwrap_or(""))?;
    let rest: Vec<&str> = words.collect();
    let page_word = match rest.as_slice() {
        [] => None,
        [page] => Some(*page),
        ["--page", page] => Some(*page),
        _ => {
            return Err(ArgError(
                "Give a job number and, if you like, a page number: `!st2logs 42 2`.".to_owned(),
            ))
        }
    };
    let page = page_word
        .map(|w| {
            w.trim_start_matches("--page=")
                .parse::<usize>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| ArgError(format!("`{w}` is not a page number.")))
        })
        .transpose()?;
    Ok(LogsArgs { id, page })
}

/// Whether `user` is the job's owner.
pub fn owned_by(job: &JobRecord, user: &UserKey) -> bool {
    &job.user == user
}

/// The `--user` of `!st2audit` as a store key: `<connection>:<id>` as given, or a bare id
/// in the asker's connection.
pub fn audit_user(given: &str, asker_connection: &str) -> UserKey {
    if given.contains(':') {
        UserKey(given.to_owned())
    } else {
        UserKey(format!("{asker_connection}:{given}"))
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How long from `from` to `to`, as people read it: `3 s`, `2 min 5 s`, `1 h 4 min`.
pub fn duration(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let secs = (to - from).num_seconds().max(0);
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// From when to when a finished job ran: StackStorm's own start and end when it ran
/// executions (when the bridge learnt of the end says nothing of how long it took: a job
/// looked at an hour after it ended did not take an hour); the bridge's own times for a
/// job without executions (a local command, a refusal). `None` while it runs, or when
/// StackStorm's times are not known.
pub fn took(job: &JobRecord) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if !job.status.is_finished() {
        return None;
    }
    if job.execution_ids.is_empty() {
        return job.finished_at.map(|end| (job.created_at, end));
    }
    Some((job.run_started_at?, job.run_ended_at?))
}

/// How a job is shown to templates. `audit`: the asker is an admin looking at anyone's
/// jobs, so the owner and the place are named (a private room by its name or id only:
/// the bridge keeps no member lists).
pub fn job_view(job: &JobRecord, web_url: Option<&str>, now: DateTime<Utc>) -> Value {
    let what = match &job.kind {
        JobKind::Alias { alias_ref } => json!({"alias": alias_ref}),
        JobKind::Local { command } => json!({"local": command}),
        JobKind::Builtin { command } => json!({"builtin": command}),
    };
    // The configured st2web address wins (StackStorm builds `web_url` from its own host
    // name, often an internal one); without it, the execution's own `web_url`.
    let links: Vec<Value> = job
        .execution_ids
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "url": web_url
                    .map(|w| format!("{w}/#/history/{id}/general"))
                    .or_else(|| job.web_urls.get(id).cloned()),
            })
        })
        .collect();
    json!({
        "id": job.id,
        "user": job.user.0,
        "user_name": if job.user_name.is_empty() { &job.user.0 } else { &job.user_name },
        "connection": job.connection,
        "room": job.room_name.clone().unwrap_or_else(|| job.room_id.clone()),
        "direct": job.room_kind == crate::domain::message::RoomKind::Direct,
        "text": job.text,
        "what": what,
        "parameters": job.parameters,
        "has_parameters": !job.parameters.is_empty(),
        "executions": links,
        "status": job.status.as_str(),
        "finished": job.status.is_finished(),
        "created": time(job.created_at),
        "took": took(job).map(|(from, to)| duration(from, to)),
        "running_for": (!job.status.is_finished()).then(|| duration(job.created_at, now)),
        "decided_by": job.decided_by,
    })
}

/// `!st2jobs` / `!st2audit`: the list.
pub fn list(
    templates: &Templates,
    jobs: &[JobRecord],
    audit: bool,
    args: &ListArgs,
    web_url: Option<&str>,
    prefix: &str,
) -> String {
    let now = Utc::now();
    templates.render(
        "jobs",
        &json!({
            "jobs": jobs.iter().map(|j| job_view(j, web_url, now)).collect::<Vec<_>>(),
            "audit": audit,
            "status": args.status.map(|s| s.as_str()),
            "user": args.user,
            "command_prefix": prefix,
        }),
    )
}

/// `!st2job` / `!st2last` / `!st2auditjob`: one job in full.
pub fn detail(
    templates: &Templates,
    job: &JobRecord,
    audit: bool,
    web_url: Option<&str>,
    prefix: &str,
) -> String {
    let mut view = job_view(job, web_url, Utc::now());
    view["audit"] = json!(audit);
    view["command_prefix"] = json!(prefix);
    templates.render("job", &view)
}

/// One page of a job's output: the page asked for (1-based), the page count, the text.
/// Pages are cut at line ends where a line end is near, never inside a character.
pub fn page_of(output: &str, page: Option<usize>) -> (usize, usize, &str) {
    let mut bounds = vec![0];
    let mut start = 0;
    while output.len() - start > LOGS_PAGE_CHARS {
        let mut end = start + LOGS_PAGE_CHARS;
        while !output.is_char_boundary(end) {
            end -= 1;
        }
        // A line end in the page's last quarter makes a cleaner cut.
        if let Some(nl) = output[start..end].rfind('\n') {
            if nl > LOGS_PAGE_CHARS * 3 / 4 {
                end = start + nl + 1;
            }
        }
        bounds.push(end);
        start = end;
    }
    bounds.push(output.len());
    let pages = bounds.len() - 1;
    let page = page.unwrap_or(pages).clamp(1, pages);
    (page, pages, &output[bounds[page - 1]..bounds[page]])
}

/// `!st2logs` / `!st2auditlogs`: a page of output.
pub fn logs(
    templates: &Templates,
    job: &JobRecord,
    output: &str,
    page: Option<usize>,
    prefix: &str,
) -> String {
    let (page, pages, text) = page_of(output, page);
    templates.render(
        "job_logs",
        &json!({
            "id": job.id,
            "status": job.status.as_str(),
            "output": text.trim_end(),
            "empty": text.trim().is_empty(),
            "page": page,
            "pages": pages,
            "paged": pages > 1,
            "next_page": (page < pages).then_some(page + 1),
            "command_prefix": prefix,
        }),
    )
}

/// A short answer about a job: `kind` names the case (`not_found`, `cancel_sent`,
/// `cancel_refused`, `cancel_done`, `already_finished`, `usage`, `failed`, `tail_started`,
/// `tail_ended`, `no_job`) and `reason` carries the details.
pub fn notice(templates: &Templates, kind: &str, id: Option<u64>, reason: &str) -> String {
    templates.render(
        "job_notice",
        &json!({ kind: true, "id": id, "reason": reason }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_options_are_read_in_both_spellings() {
        let a = list_args("--limit 5 --status=failed", false).unwrap();
        assert_eq!(a.limit, 5);
        assert_eq!(a.status, Some(JobStatus::Failed));
        assert_eq!(list_args("", false).unwrap().limit, DEFAULT_LIST);
        let audit = list_args("--user slack:U1 --limit 100", true).unwrap();
        assert_eq!(audit.user.as_deref(), Some("slack:U1"));
    }

    #[test]
    fn bad_list_options_say_what_is_wrong() {
        assert!(list_args("--limit 0", false)
            .unwrap_err()
            .0
            .contains("1 to 100"));
        assert!(list_args("--limit 101", false).is_err());
        assert!(list_args("--status nope", false)
            .unwrap_err()
            .0
            .contains("`succeeded`"));
        // Users cannot ask for someone else's jobs outside the audit.
        assert!(list_args("--user slack:U2", false)
            .unwrap_err()
            .0
            .contains("not an option"));
        assert!(list_args("--limit", false)
            .unwrap_err()
            .0
            .contains("needs a value"));
        assert!(list_args("five", false).is_err());
    }

    #[test]
    fn job_ids_take_an_optional_hash() {
        assert_eq!(job_id("42").unwrap(), 42);
        assert_eq!(job_id("#7").unwrap(), 7);
        assert!(job_id("0").is_err());
        assert!(job_id("x1").is_err());
        assert!(job_id("").unwrap_err().0.contains("Which job"));
        assert_eq!(single_id("", true).unwrap(), None);
        assert!(single_id("", false).is_err());
        assert!(single_id("1 2", false).is_err());
    }

    #[test]
    fn logs_take_a_page() {
        assert_eq!(logs_args("42").unwrap(), LogsArgs { id: 42, page: None });
        assert_eq!(logs_args("#42 3").unwrap().page, Some(3));
        assert_eq!(logs_args("42 --page 2").unwrap().page, Some(2));
        assert!(logs_args("42 0").is_err());
        assert!(logs_args("42 1 2").is_err());
    }

    #[test]
    fn pages_cover_the_output_exactly_once() {
        let output: String = (0..2_000).map(|i| format!("line {i} é\n")).collect();
        let (_, pages, _) = page_of(&output, None);
        assert!(pages > 1);
        let joined: String = (1..=pages).map(|p| page_of(&output, Some(p)).2).collect();
        assert_eq!(joined, output);
        // The last page by default; out-of-range pages are clamped.
        assert_eq!(page_of(&output, None).0, pages);
        assert_eq!(page_of(&output, Some(pages + 5)).0, pages);
        assert_eq!(page_of("", None), (1, 1, ""));
    }

    #[test]
    fn took_is_stackstorms_run_time_when_it_ran_executions() {
        use chrono::TimeZone;
        let t = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
        let mut job = JobRecord {
            id: 1,
            user: UserKey("console:alice".into()),
            user_name: "Alice".into(),
            connection: "console".into(),
            room_id: "ops".into(),
            room_name: None,
            room_kind: crate::domain::message::RoomKind::Group,
            thread: None,
            text: "run date".into(),
            kind: JobKind::Alias {
                alias_ref: "core.run_local".into(),
            },
            parameters: Default::default(),
            execution_ids: vec!["e1".into()],
            status: JobStatus::Succeeded,
            created_at: t(0),
            updated_at: t(3600),
            // Learnt an hour later.
            finished_at: Some(t(3600)),
            decided_by: None,
            output: String::new(),
            run_started_at: Some(t(1)),
            run_ended_at: Some(t(4)),
            web_urls: [(
                "e1".to_owned(),
                "https://st2/#/history/e1/general".to_owned(),
            )]
            .into(),
        };
        let view = job_view(&job, None, t(7200));
        assert_eq!(view["took"], "3 s");
        assert_eq!(
            view["executions"][0]["url"],
            "https://st2/#/history/e1/general"
        );
        let view = job_view(&job, Some("https://web"), t(7200));
        assert_eq!(
            view["executions"][0]["url"],
            "https://web/#/history/e1/general"
        );
        // StackStorm's times unknown: no guess from when the bridge learnt it.
        job.run_ended_at = None;
        assert!(job_view(&job, None, t(7200))["took"].is_null());
        // Nothing ran in StackStorm (refused, local): the bridge's own times.
        job.execution_ids.clear();
        job.finished_at = Some(t(2));
        assert_eq!(job_view(&job, None, t(7200))["took"], "2 s");
    }

    #[test]
    fn audit_users_default_to_the_askers_connection() {
        assert_eq!(audit_user("U1", "slack").0, "slack:U1");
        assert_eq!(audit_user("matrix:@a:b", "slack").0, "matrix:@a:b");
    }
}
