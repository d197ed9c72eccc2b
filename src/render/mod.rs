//! The bridge's own messages (help, acknowledgements, errors, "did you mean"), as handlebars
//! templates. Defaults are embedded from `static/templates/`; an operator can override any
//! of them with a file of the same name in `bot.templates_dir`.

pub mod replies;

use std::path::Path;

use handlebars::Handlebars;
use parking_lot::RwLock;
use serde_json::Value;

/// Every template the bridge renders, with its embedded default.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("ack", include_str!("../../static/templates/ack.hbs")),
    ("error", include_str!("../../static/templates/error.hbs")),
    ("help", include_str!("../../static/templates/help.hbs")),
    (
        "no_match",
        include_str!("../../static/templates/no_match.hbs"),
    ),
    (
        "ambiguous",
        include_str!("../../static/templates/ambiguous.hbs"),
    ),
    (
        "alias_collision",
        include_str!("../../static/templates/alias_collision.hbs"),
    ),
    (
        "unknown_command",
        include_str!("../../static/templates/unknown_command.hbs"),
    ),
    ("denied", include_str!("../../static/templates/denied.hbs")),
    ("whoami", include_str!("../../static/templates/whoami.hbs")),
    (
        "not_ready",
        include_str!("../../static/templates/not_ready.hbs"),
    ),
    (
        "result_lost",
        include_str!("../../static/templates/result_lost.hbs"),
    ),
    (
        "inquiries",
        include_str!("../../static/templates/inquiries.hbs"),
    ),
    (
        "inquiry_offer",
        include_str!("../../static/templates/inquiry_offer.hbs"),
    ),
    (
        "inquiry_answered",
        include_str!("../../static/templates/inquiry_answered.hbs"),
    ),
    (
        "inquiry_error",
        include_str!("../../static/templates/inquiry_error.hbs"),
    ),
    ("reload", include_str!("../../static/templates/reload.hbs")),
    (
        "session_unavailable",
        include_str!("../../static/templates/session_unavailable.hbs"),
    ),
    (
        "session_start",
        include_str!("../../static/templates/session_start.hbs"),
    ),
    (
        "session_end",
        include_str!("../../static/templates/session_end.hbs"),
    ),
    (
        "session_list",
        include_str!("../../static/templates/session_list.hbs"),
    ),
    (
        "session_cancel",
        include_str!("../../static/templates/session_cancel.hbs"),
    ),
    (
        "acl_usage",
        include_str!("../../static/templates/acl_usage.hbs"),
    ),
    (
        "acl_explain",
        include_str!("../../static/templates/acl_explain.hbs"),
    ),
    (
        "waiting_ask",
        include_str!("../../static/templates/waiting_ask.hbs"),
    ),
    (
        "waiting_decided",
        include_str!("../../static/templates/waiting_decided.hbs"),
    ),
    (
        "waiting_refused",
        include_str!("../../static/templates/waiting_refused.hbs"),
    ),
    (
        "waiting_list",
        include_str!("../../static/templates/waiting_list.hbs"),
    ),
    ("jobs", include_str!("../../static/templates/jobs.hbs")),
    ("job", include_str!("../../static/templates/job.hbs")),
    (
        "job_logs",
        include_str!("../../static/templates/job_logs.hbs"),
    ),
    (
        "job_notice",
        include_str!("../../static/templates/job_notice.hbs"),
    ),
    (
        "personal_aliases",
        include_str!("../../static/templates/personal_aliases.hbs"),
    ),
    (
        "trigger_tokens",
        include_str!("../../static/templates/trigger_tokens.hbs"),
    ),
    (
        "local_result",
        include_str!("../../static/templates/local_result.hbs"),
    ),
];

/// Why templates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The override directory could not be read.
    #[error("cannot read template directory {dir}: {reason}")]
    Dir {
        /// The directory.
        dir: String,
        /// Why.
        reason: String,
    },
    /// A file in it is not a template the bridge knows (probably a typo).
    #[error("{file}: not a known template (known: {known})")]
    Unknown {
        /// The file.
        file: String,
        /// The known names.
        known: String,
    },
    /// A template did not compile.
    #[error("template {name}: {reason}")]
    Syntax {
        /// Template name.
        name: String,
        /// Compiler message.
        reason: String,
    },
}

/// The compiled templates. Rendering never fails: a broken override falls back to the default.
pub struct Templates {
    /// The built-in templates rendered so far, each compiled the first time it is needed:
    /// a compiled template takes about 25 times its text (all 35 about 0.3 MB), and a
    /// bridge uses a handful of them. They are known to compile (a unit test compiles
    /// every one).
    defaults: RwLock<Handlebars<'static>>,
    /// Only the templates the override directory replaces. No template includes another
    /// (no partials), so an override needs no copy of the rest: a compiled copy of every
    /// template would take about 0.3 MB for nothing.
    overrides: Handlebars<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

fn registry() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    // Chat text, not HTML: `<`, `&` and quotes must arrive as typed.
    hb.register_escape_fn(handlebars::no_escape);
    hb
}

impl Templates {
    /// Compiles the overrides found in `dir` (the built-in templates are compiled as they
    /// are first rendered).
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut overrides = registry();
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|e| TemplateError::Dir {
                dir: dir.display().to_string(),
                reason: e.to_string(),
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) != Some("hbs") {
                    continue;
                }
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_owned();
                if !TEMPLATES.iter().any(|(n, _)| *n == name) {
                    return Err(TemplateError::Unknown {
                        file: path.display().to_string(),
                        known: TEMPLATES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                let text = std::fs::read_to_string(&path).map_err(|e| TemplateError::Dir {
                    dir: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                overrides
                    .register_template_string(&name, text)
                    .map_err(|e| TemplateError::Syntax {
                        name: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
            }
        }
        Ok(Self {
            defaults: RwLock::new(registry()),
            overrides,
        })
    }

    /// Renders the built-in template `name`, compiling it on first use.
    fn render_default(&self, name: &str, data: &Value) -> Result<String, String> {
        {
            let compiled = self.defaults.read();
            if compiled.has_template(name) {
                return compiled.render(name, data).map_err(|e| e.to_string());
            }
        }
        let mut compiled = self.defaults.write();
        if !compiled.has_template(name) {
            let (_, text) = TEMPLATES
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| format!("no built-in template named {name}"))?;
            compiled
                .register_template_string(name, *text)
                .map_err(|e| e.to_string())?;
        }
        parking_lot::RwLockWriteGuard::downgrade(compiled)
            .render(name, data)
            .map_err(|e| e.to_string())
    }

    /// Renders `name` with `data`, trimmed.
    pub fn render(&self, name: &str, data: &Value) -> String {
        let text = if self.overrides.has_template(name) {
            self.overrides.render(name, data).or_else(|e| {
                tracing::warn!(template = name, error = %e, "template override failed, using the built-in one");
                self.render_default(name, data)
            })
        } else {
            self.render_default(name, data)
        };
        match text {
            Ok(t) => t.trim().to_owned(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "built-in template failed");
                "Sorry, something went wrong formatting my answer.".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_render_without_escaping() {
        let t = Templates::load(None).unwrap();
        let out = t.render(
            "error",
            &json!({"command": "run <x> & y", "reason": "it's \"bad\""}),
        );
        assert!(out.contains("run <x> & y"), "{out}");
        assert!(out.contains("it's \"bad\""));
    }

    #[test]
    fn alias_collision_names_the_alias_and_its_packs() {
        let t = Templates::load(None).unwrap();
        let out = t.render(
            "alias_collision",
            &json!({
                "command": "restart db main",
                "name": "restart",
                "alias_ref": "db.restart",
                "packs": ["db", "web"],
                "pack_list": "db and web",
            }),
        );
        assert_eq!(
            out,
            "The alias `restart` exists in packs db and web; StackStorm looks aliases up by name alone, \
             so I did not run `restart db main`. Ask an administrator to rename one of them."
        );
    }

    #[test]
    fn every_built_in_template_compiles() {
        for (name, text) in TEMPLATES {
            registry()
                .register_template_string(name, *text)
                .unwrap_or_else(|e| panic!("built-in template {name}: {e}"));
        }
    }

    #[test]
    fn a_built_in_template_is_compiled_when_first_rendered() {
        let t = Templates::load(None).unwrap();
        assert!(!t.defaults.read().has_template("error"));
        let data = json!({"command": "x", "reason": "r"});
        let first = t.render("error", &data);
        assert!(t.defaults.read().has_template("error"));
        assert!(!t.defaults.read().has_template("denied"));
        assert_eq!(t.render("error", &data), first);
        assert_eq!(
            t.render("no_such_template", &data),
            "Sorry, something went wrong formatting my answer."
        );
    }

    #[test]
    fn every_template_file_is_registered() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("static/templates");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("hbs"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut registered: Vec<String> = TEMPLATES.iter().map(|(n, _)| (*n).to_owned()).collect();
        registered.sort();
        assert_eq!(files, registered);
    }

    #[test]
    fn override_directory_replaces_one_template_and_rejects_typos() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("error.hbs"), "ERR {{command}}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(
            t.render("error", &json!({"command": "x", "reason": "r"})),
            "ERR x"
        );
        std::fs::write(dir.path().join("eror.hbs"), "x").unwrap();
        assert!(matches!(
            Templates::load(Some(dir.path())),
            Err(TemplateError::Unknown { .. })
        ));
    }

    #[test]
    fn an_override_replaces_only_its_own_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("error.hbs"), "ERR {{command}}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let data = json!({"command": "run <x>", "reason": "r"});
        assert_eq!(t.render("error", &data), "ERR run <x>");
        let denied = t.render("denied", &json!({"command": "run <x>"}));
        assert_eq!(
            denied,
            Templates::load(None)
                .unwrap()
                .render("denied", &json!({"command": "run <x>"}))
        );
        assert!(denied.contains("run <x>"), "{denied}");
    }

    #[test]
    fn an_override_cannot_include_another_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("error.hbs"), "{{> denied}}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let out = t.render("error", &json!({"command": "x", "reason": "r"}));
        assert_eq!(
            out,
            Templates::load(None)
                .unwrap()
                .render("error", &json!({"command": "x", "reason": "r"}))
        );
    }

    #[test]
    fn broken_override_falls_back_to_the_default_at_render_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("error.hbs"), "{{missing.variable}}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let out = t.render("error", &json!({"command": "x", "reason": "r"}));
        assert!(out.contains('x') && out.contains('r'), "{out}");
    }
}
