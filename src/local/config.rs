//! `[[commands]]`: the local commands an operator declares, validated, and the matcher that
//! recognises one in a command's text.
//!
//! ```toml
//! [[commands]]
//! name = "uptime"                      # the chat word: `!st2 uptime`
//! executable = "/usr/bin/uptime"       # absolute path, checked at load
//! help = "load averages of the bridge's host"
//! allow_arguments = false
//!
//! [[commands]]
//! name = "ping"
//! executable = "/usr/bin/ping"
//! args = ["-c", "3", "-W", "2"]        # fixed leading arguments
//! help = "ping <host>: three pings from the bridge's host"
//! timeout_secs = 20                    # default 60, 1 to 86,400
//! max_output_bytes = 8192              # default 65,536
//! env = { LC_ALL = "C" }               # set on top of the bridge's environment
//! working_dir = "/tmp"                 # default: the bridge's working directory
//! ```
//!
//! `!st2 ping web1 -4` runs `/usr/bin/ping -c 3 -W 2 web1 -4`: the fixed `args`, then the
//! user's words split by [`super::args`] (quotes group; nothing is expanded, no shell is
//! involved).
//!
//! # Matching
//!
//! [`LocalCommands::find`] takes the command text after the bot and plugin prefixes (what
//! the dispatcher would match against StackStorm's aliases: `ping web1` for
//! `!st2 ping web1`). Its first word, compared without regard to ASCII letter case, is the
//! command's name; the rest are the user's arguments. A local command therefore shadows
//! every alias whose text starts with the same word: the dispatcher consults local
//! commands first, so pick names no alias uses.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use super::args::{split_arguments, ArgumentError};

/// `timeout_secs` when absent.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// The longest `timeout_secs` accepted: one day.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
/// `max_output_bytes` when absent: 64 KiB.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// The largest `max_output_bytes` accepted: 16 MiB (a chat room is no place for more).
pub const MAX_OUTPUT_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// The longest command name accepted, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// One `[[commands]]` entry: a program the bridge runs itself when a chat user types its
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalCommandConfig {
    /// The chat word that runs it (`!st2 <name> args…`): 1 to [`MAX_NAME_LEN`] ASCII
    /// letters, digits, `-`, `_` or `.`, starting with a letter or a digit. Matched without
    /// regard to letter case.
    pub name: String,
    /// The program, as an absolute path; it must exist and be executable by the bridge's
    /// user when the configuration is loaded. It is executed directly (fork/exec), never
    /// through a shell.
    pub executable: PathBuf,
    /// Fixed leading arguments, passed verbatim before the user's.
    #[serde(default)]
    pub args: Vec<String>,
    /// Seconds the command may run before its whole process group is stopped (SIGTERM,
    /// then SIGKILL). 1 to [`MAX_TIMEOUT_SECS`], default [`DEFAULT_TIMEOUT_SECS`].
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// One line shown in the help listing; required.
    #[serde(default)]
    pub help: String,
    /// Whether the user's words after the name are appended as arguments (default true).
    /// When false, a command given any argument is refused
    /// ([`ArgumentError::NotAllowed`]).
    #[serde(default = "default_allow_arguments")]
    pub allow_arguments: bool,
    /// The most output (stdout and stderr together, in bytes) kept for chat; the rest is
    /// read, counted and dropped. 1 to [`MAX_OUTPUT_BYTES_LIMIT`], default
    /// [`DEFAULT_MAX_OUTPUT_BYTES`].
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: usize,
    /// Extra environment variables, set on top of the bridge's environment as
    /// [`super::env`] describes (the bridge's own `STORMBRIDGE_…` variables are removed).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory, an absolute path to an existing directory; absent: the
    /// bridge's own.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
}

fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

fn default_allow_arguments() -> bool {
    true
}

fn default_max_output_bytes() -> usize {
    DEFAULT_MAX_OUTPUT_BYTES
}

impl LocalCommandConfig {
    /// A command with every optional field at its default (tests, programmatic setups).
    pub fn new(
        name: impl Into<String>,
        executable: impl Into<PathBuf>,
        help: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            executable: executable.into(),
            args: Vec::new(),
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            help: help.into(),
            allow_arguments: true,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            env: BTreeMap::new(),
            working_dir: None,
        }
    }

    /// `timeout_secs` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Every problem with this entry on its own (the file system is consulted for
    /// `executable` and `working_dir`); empty when it is valid. Name clashes between
    /// entries are [`LocalCommands::new`]'s to find.
    pub fn problems(&self) -> Vec<LocalConfigError> {
        let mut problems = Vec::new();
        if !valid_name(&self.name) {
            problems.push(LocalConfigError::BadName {
                name: self.name.clone(),
            });
        }
        if let Err(e) = check_executable(&self.executable) {
            problems.push(e);
        }
        if let Some(index) = self.args.iter().position(|a| a.contains('\0')) {
            problems.push(LocalConfigError::NulInArgument { index });
        }
        if !(1..=MAX_TIMEOUT_SECS).contains(&self.timeout_secs) {
            problems.push(LocalConfigError::TimeoutOutOfRange {
                secs: self.timeout_secs,
            });
        }
        if self.help.trim().is_empty() {
            problems.push(LocalConfigError::MissingHelp);
        }
        if !(1..=MAX_OUTPUT_BYTES_LIMIT).contains(&self.max_output_bytes) {
            problems.push(LocalConfigError::OutputLimitOutOfRange {
                bytes: self.max_output_bytes,
            });
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains(['=', '\0']) {
                problems.push(LocalConfigError::BadEnvName { name: name.clone() });
            } else if value.contains('\0') {
                problems.push(LocalConfigError::NulInEnvValue { name: name.clone() });
            }
        }
        if let Some(dir) = &self.working_dir {
            if let Err(e) = check_working_dir(dir) {
                problems.push(e);
            }
        }
        problems
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() <= MAX_NAME_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "does not exist".to_owned(),
        io::ErrorKind::PermissionDenied => "cannot be reached: permission denied".to_owned(),
        _ => e.to_string(),
    }
}

fn check_executable(path: &Path) -> Result<(), LocalConfigError> {
    let fail = |reason: String| LocalConfigError::BadExecutable {
        path: path.to_owned(),
        reason,
    };
    if !path.is_absolute() {
        return Err(fail("must be an absolute path".to_owned()));
    }
    let meta = std::fs::metadata(path).map_err(|e| fail(io_reason(&e)))?;
    if !meta.is_file() {
        return Err(fail("is not a regular file".to_owned()));
    }
    rustix::fs::access(path, rustix::fs::Access::EXEC_OK)
        .map_err(|_| fail("is not executable by the bridge's user".to_owned()))
}

fn check_working_dir(path: &Path) -> Result<(), LocalConfigError> {
    let fail = |reason: String| LocalConfigError::BadWorkingDir {
        path: path.to_owned(),
        reason,
    };
    if !path.is_absolute() {
        return Err(fail("must be an absolute path".to_owned()));
    }
    let meta = std::fs::metadata(path).map_err(|e| fail(io_reason(&e)))?;
    if !meta.is_dir() {
        return Err(fail("is not a directory".to_owned()));
    }
    Ok(())
}

/// What is wrong with one `[[commands]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalConfigError {
    /// `name` breaks the naming rule.
    #[error(
        "{name:?} is not a valid command name: use 1 to {MAX_NAME_LEN} ASCII letters, digits, \
         '-', '_' or '.', starting with a letter or a digit"
    )]
    BadName {
        /// The name as written.
        name: String,
    },
    /// Another entry has the same name (letter case aside).
    #[error("the name {name:?} is already used by commands[{first}]")]
    DuplicateName {
        /// The name as written in this entry.
        name: String,
        /// The index of the first entry with that name.
        first: usize,
    },
    /// The name is one of the bridge's built-in words.
    #[error("{name:?} is a built-in command of the bridge; choose another name")]
    ReservedName {
        /// The name as written.
        name: String,
    },
    /// `executable` is not an absolute path to an executable file.
    #[error("executable {}: {reason}", path.display())]
    BadExecutable {
        /// The path as written.
        path: PathBuf,
        /// Why, in words an operator can act on.
        reason: String,
    },
    /// A fixed argument holds a NUL character.
    #[error("args[{index}] contains a NUL character")]
    NulInArgument {
        /// Its index in `args`.
        index: usize,
    },
    /// `timeout_secs` is 0 or above [`MAX_TIMEOUT_SECS`].
    #[error("timeout_secs must be 1 to {MAX_TIMEOUT_SECS} (got {secs})")]
    TimeoutOutOfRange {
        /// The value as written.
        secs: u64,
    },
    /// `help` is absent or blank.
    #[error("help is required: one line saying what the command does, shown in the help listing")]
    MissingHelp,
    /// `max_output_bytes` is 0 or above [`MAX_OUTPUT_BYTES_LIMIT`].
    #[error("max_output_bytes must be 1 to {MAX_OUTPUT_BYTES_LIMIT} (got {bytes})")]
    OutputLimitOutOfRange {
        /// The value as written.
        bytes: usize,
    },
    /// An `env` name is empty or holds `=` or NUL.
    #[error("env: {name:?} is not a valid variable name")]
    BadEnvName {
        /// The name as written.
        name: String,
    },
    /// An `env` value holds a NUL character.
    #[error("env: the value of {name} contains a NUL character")]
    NulInEnvValue {
        /// The variable's name.
        name: String,
    },
    /// `working_dir` is not an absolute path to an existing directory.
    #[error("working_dir {}: {reason}", path.display())]
    BadWorkingDir {
        /// The path as written.
        path: PathBuf,
        /// Why, in words an operator can act on.
        reason: String,
    },
}

impl LocalConfigError {
    /// The entry's field the problem is about (`name`, `executable`, …).
    pub fn field(&self) -> &'static str {
        match self {
            Self::BadName { .. } | Self::DuplicateName { .. } | Self::ReservedName { .. } => "name",
            Self::BadExecutable { .. } => "executable",
            Self::NulInArgument { .. } => "args",
            Self::TimeoutOutOfRange { .. } => "timeout_secs",
            Self::MissingHelp => "help",
            Self::OutputLimitOutOfRange { .. } => "max_output_bytes",
            Self::BadEnvName { .. } | Self::NulInEnvValue { .. } => "env",
            Self::BadWorkingDir { .. } => "working_dir",
        }
    }
}

/// A problem with the entry at `index` of the `[[commands]]` array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {error}", self.key())]
pub struct LocalConfigProblem {
    /// The entry's index in `[[commands]]`, from 0.
    pub index: usize,
    /// What is wrong.
    pub error: LocalConfigError,
}

impl LocalConfigProblem {
    /// The dotted key the configuration's problems use, e.g. `commands[2].executable`.
    pub fn key(&self) -> String {
        format!("commands[{}].{}", self.index, self.error.field())
    }
}

/// Every problem found in `[[commands]]`, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid [[commands]]: {}", self.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct LocalConfigErrors {
    /// The problems, at least one.
    pub problems: Vec<LocalConfigProblem>,
}

/// The validated `[[commands]]`: names unique (letter case aside), none a built-in word.
/// Empty by default: local commands are off unless configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalCommands {
    commands: Vec<LocalCommandConfig>,
}

/// A local command recognised in a command's text, with the user's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMatch<'a> {
    /// The command.
    pub command: &'a LocalCommandConfig,
    /// The user's arguments, split, to append after the command's fixed `args`.
    pub args: Vec<String>,
}

impl LocalCommands {
    /// Validates every entry and the set as a whole. `reserved` holds the bridge's built-in
    /// words (`help`, `whoami`, …, compared without regard to letter case), which no local
    /// command may take. Every problem is reported, not just the first.
    pub fn new(
        commands: Vec<LocalCommandConfig>,
        reserved: &[&str],
    ) -> Result<Self, LocalConfigErrors> {
        let mut problems = Vec::new();
        for (index, command) in commands.iter().enumerate() {
            problems.extend(
                command
                    .problems()
                    .into_iter()
                    .map(|error| LocalConfigProblem { index, error }),
            );
            if reserved
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&command.name))
            {
                problems.push(LocalConfigProblem {
                    index,
                    error: LocalConfigError::ReservedName {
                        name: command.name.clone(),
                    },
                });
            }
            if let Some(first) = commands[..index]
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(&command.name))
            {
                problems.push(LocalConfigProblem {
                    index,
                    error: LocalConfigError::DuplicateName {
                        name: command.name.clone(),
                        first,
                    },
                });
            }
        }
        if problems.is_empty() {
            Ok(Self { commands })
        } else {
            Err(LocalConfigErrors { problems })
        }
    }

    /// No local commands configured.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// How many local commands there are.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// The commands, in file order (for the help listing).
    pub fn iter(&self) -> impl Iterator<Item = &LocalCommandConfig> {
        self.commands.iter()
    }

    /// The command called `name` (letter case aside).
    pub fn get(&self, name: &str) -> Option<&LocalCommandConfig> {
        self.commands
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Recognises a local command in `text`, the command text after the bot and plugin
    /// prefixes (`ping web1 -4`).
    ///
    /// `None`: the first word is no local command's name (the text is for StackStorm).
    /// `Some(Err(_))`: it is, and the rest cannot be used as its arguments (an unterminated
    /// quote, or arguments given to a command with `allow_arguments = false`); the
    /// dispatcher tells the user instead of running anything.
    pub fn find(&self, text: &str) -> Option<Result<LocalMatch<'_>, ArgumentError>> {
        let text = text.trim_start();
        let word_end = text.find(char::is_whitespace).unwrap_or(text.len());
        let (word, rest) = text.split_at(word_end);
        let command = self.get(word)?;
        Some(split_arguments(rest).and_then(|args| {
            if !command.allow_arguments && !args.is_empty() {
                return Err(ArgumentError::NotAllowed {
                    command: command.name.clone(),
                });
            }
            Ok(LocalMatch { command, args })
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const RESERVED: &[&str] = &["help", "whoami", "session_start"];

    fn sh(name: &str) -> LocalCommandConfig {
        LocalCommandConfig::new(name, "/bin/sh", "a shell")
    }

    fn toml_entry(text: &str) -> Result<LocalCommandConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_from_toml() {
        let c = toml_entry(
            r#"
            name = "uptime"
            executable = "/usr/bin/uptime"
            help = "load averages"
            "#,
        )
        .unwrap();
        assert_eq!(
            c,
            LocalCommandConfig::new("uptime", "/usr/bin/uptime", "load averages")
        );
        assert_eq!(c.timeout(), Duration::from_secs(60));
        assert!(c.allow_arguments);
        assert_eq!(c.max_output_bytes, 65_536);
        assert!(c.env.is_empty() && c.args.is_empty() && c.working_dir.is_none());
    }

    #[test]
    fn every_field_from_toml() {
        let c = toml_entry(
            r#"
            name = "ping"
            executable = "/usr/bin/ping"
            args = ["-c", "3"]
            timeout_secs = 20
            help = "ping <host>"
            allow_arguments = false
            max_output_bytes = 8192
            env = { LC_ALL = "C" }
            working_dir = "/tmp"
            "#,
        )
        .unwrap();
        assert_eq!(c.args, ["-c", "3"]);
        assert_eq!(c.timeout_secs, 20);
        assert!(!c.allow_arguments);
        assert_eq!(c.max_output_bytes, 8192);
        assert_eq!(c.env["LC_ALL"], "C");
        assert_eq!(c.working_dir.as_deref(), Some(Path::new("/tmp")));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = toml_entry(
            r#"
            name = "x"
            executable = "/bin/sh"
            help = "x"
            shell = true
            "#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `shell`"), "{e}");
    }

    #[test]
    fn a_valid_entry_has_no_problems() {
        assert_eq!(sh("diag").problems(), []);
        let mut c = sh("disk-usage_2.x");
        c.working_dir = Some("/".into());
        c.env.insert("LC_ALL".into(), "C".into());
        assert_eq!(c.problems(), []);
    }

    #[test]
    fn names_follow_the_rule() {
        for bad in ["", "-x", ".x", "a b", "ping!", "é", &"a".repeat(65)] {
            assert_eq!(
                sh(bad).problems(),
                [LocalConfigError::BadName { name: bad.into() }],
                "{bad:?}"
            );
        }
        assert_eq!(sh(&"a".repeat(64)).problems(), []);
    }

    #[test]
    fn executable_must_be_absolute_existing_file_and_executable() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cases = [
            ("bin/sh".into(), "must be an absolute path"),
            (dir.path().join("missing"), "does not exist"),
            (dir.path().to_owned(), "is not a regular file"),
            (plain, "is not executable by the bridge's user"),
        ];
        for (path, reason) in cases {
            let c = LocalCommandConfig::new("x", &path, "x");
            let problems = c.problems();
            assert_eq!(
                problems,
                [LocalConfigError::BadExecutable {
                    path: path.clone(),
                    reason: reason.into()
                }]
            );
            assert_eq!(
                problems[0].to_string(),
                format!("executable {}: {reason}", path.display())
            );
        }
    }

    #[test]
    fn ranges_help_env_and_args_are_checked() {
        let mut c = sh("x");
        c.timeout_secs = 0;
        c.max_output_bytes = 0;
        c.help = "  ".into();
        c.args = vec!["ok".into(), "a\0b".into()];
        c.env.insert("A=B".into(), "x".into());
        c.env.insert("GOOD".into(), "x\0y".into());
        let fields: Vec<_> = c.problems().iter().map(LocalConfigError::field).collect();
        assert_eq!(
            fields,
            [
                "args",
                "timeout_secs",
                "help",
                "max_output_bytes",
                "env",
                "env"
            ]
        );
        assert_eq!(
            c.problems()[0],
            LocalConfigError::NulInArgument { index: 1 }
        );
        c = sh("x");
        c.timeout_secs = MAX_TIMEOUT_SECS + 1;
        c.max_output_bytes = MAX_OUTPUT_BYTES_LIMIT + 1;
        assert_eq!(c.problems().len(), 2);
        c.timeout_secs = MAX_TIMEOUT_SECS;
        c.max_output_bytes = MAX_OUTPUT_BYTES_LIMIT;
        assert_eq!(c.problems(), []);
    }

    #[test]
    fn working_dir_must_be_an_absolute_existing_directory() {
        let mut c = sh("x");
        for (dir, reason) in [
            ("tmp", "must be an absolute path"),
            ("/nonexistent-stormbridge-dir", "does not exist"),
            ("/bin/sh", "is not a directory"),
        ] {
            c.working_dir = Some(dir.into());
            assert_eq!(
                c.problems(),
                [LocalConfigError::BadWorkingDir {
                    path: dir.into(),
                    reason: reason.into()
                }]
            );
        }
    }

    #[test]
    fn the_collection_refuses_duplicates_and_reserved_words_with_keys() {
        let err = LocalCommands::new(
            vec![sh("diag"), sh("Help"), sh("DIAG"), sh("ok"), sh("bad name")],
            RESERVED,
        )
        .unwrap_err();
        let keys: Vec<_> = err
            .problems
            .iter()
            .map(|p| (p.key(), p.error.clone()))
            .collect();
        assert_eq!(
            keys,
            [
                (
                    "commands[1].name".to_owned(),
                    LocalConfigError::ReservedName {
                        name: "Help".into()
                    }
                ),
                (
                    "commands[2].name".to_owned(),
                    LocalConfigError::DuplicateName {
                        name: "DIAG".into(),
                        first: 0
                    }
                ),
                (
                    "commands[4].name".to_owned(),
                    LocalConfigError::BadName {
                        name: "bad name".into()
                    }
                ),
            ]
        );
        assert_eq!(
            err.problems[1].to_string(),
            r#"commands[2].name: the name "DIAG" is already used by commands[0]"#
        );
        assert!(err
            .to_string()
            .starts_with("invalid [[commands]]: commands[1].name: "));
    }

    #[test]
    fn empty_by_default() {
        let none = LocalCommands::default();
        assert!(none.is_empty());
        assert_eq!(none.find("diag"), None);
        assert_eq!(LocalCommands::new(Vec::new(), RESERVED).unwrap(), none);
    }

    #[test]
    fn find_matches_the_first_word_case_insensitively() {
        let mut ping = LocalCommandConfig::new("ping", "/bin/sh", "ping");
        ping.args = vec!["-c".into(), "3".into()];
        let mut up = LocalCommandConfig::new("uptime", "/bin/sh", "uptime");
        up.allow_arguments = false;
        let commands = LocalCommands::new(vec![ping, up], RESERVED).unwrap();
        assert_eq!(commands.len(), 2);
        assert_eq!(
            commands.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["ping", "uptime"]
        );

        let m = commands.find("PING web1 'a b' $HOME").unwrap().unwrap();
        assert_eq!(m.command.name, "ping");
        assert_eq!(m.args, ["web1", "a b", "$HOME"]);
        assert_eq!(
            commands.find("  ping").unwrap().unwrap().args,
            Vec::<String>::new()
        );

        assert_eq!(
            commands.find("uptime").unwrap().unwrap().command.name,
            "uptime"
        );
        assert_eq!(commands.find("uptime  ").unwrap().unwrap().args.len(), 0);
        assert_eq!(
            commands.find("uptime now"),
            Some(Err(ArgumentError::NotAllowed {
                command: "uptime".into()
            }))
        );
        assert_eq!(
            commands.find("ping 'web1"),
            Some(Err(ArgumentError::UnterminatedQuote { quote: '\'' }))
        );

        assert_eq!(commands.find("pingx web1"), None);
        assert_eq!(commands.find("run ping"), None);
        assert_eq!(commands.find(""), None);
        assert_eq!(
            commands.get("Uptime").map(|c| c.name.as_str()),
            Some("uptime")
        );
    }
}
