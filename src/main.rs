//! The `stormbridge` binary: command-line parsing and process lifetime. Everything else is
//! in the library.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use stormbridge::backends::registry::REGISTRY;
use stormbridge::{
    app::{self, AppOptions},
    cli::{self, Cli, Command},
    config::{self, Settings},
    telemetry,
};

/// Embedded configuration of `stormbridge demo`.
#[cfg(feature = "emulator")]
const DEMO_TOML: &str = include_str!("../config/demo.toml");

/// mimalloc rather than glibc's malloc: it hands memory freed after a big alias list back
/// to the system (see `cargo bench --bench memory_large`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => config::resolve_config_path(cli.config)
            .map_err(anyhow::Error::from)
            .and_then(|path| {
                let settings = config::load(&path, &REGISTRY)?;
                run(settings, path)
            }),
        Command::AclExplain {
            user,
            room,
            aliases,
            command,
        } => return acl_explain(cli.config, &user, &room, aliases, &command),
        Command::CheckConfig => return check_config(cli.config),
        Command::Demo { http_listen } => demo(http_listen),
        Command::Emulator { port } => emulator(port),
        Command::Parse {
            format,
            command,
            match_multiple,
        } => return print_or_fail(cli::parse_command(&format, &command, match_multiple)),
        Command::Match { aliases, command } => {
            return match std::fs::read_to_string(&aliases) {
                Ok(text) => print_or_fail(cli::match_command(&text, &command)),
                Err(e) => print_or_fail(Err(format!("cannot read {}: {e}", aliases.display()))),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stormbridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_or_fail(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn acl_explain(
    config_path: Option<std::path::PathBuf>,
    user: &str,
    room: &str,
    aliases: Option<std::path::PathBuf>,
    command: &str,
) -> ExitCode {
    let settings =
        match config::resolve_config_path(config_path).and_then(|p| config::load(&p, &REGISTRY)) {
            Ok(s) => s,
            Err(e) => {
                eprint!("{e}");
                return ExitCode::from(2);
            }
        };
    let aliases_json = match aliases.map(|p| {
        std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    }) {
        Some(Ok(text)) => Some(text),
        Some(Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
        None => None,
    };
    match cli::acl_explain(&settings, user, room, aliases_json.as_deref(), command) {
        Ok((allowed, text)) => {
            println!("{text}");
            if allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn check_config(path: Option<std::path::PathBuf>) -> ExitCode {
    match config::resolve_config_path(path)
        .and_then(|p| config::load(&p, &REGISTRY).map(|s| (p, s)))
    {
        Ok((path, settings)) => {
            println!(
                "{}: valid ({} chat connection{}, StackStorm at {})",
                path.display(),
                settings.chat.len(),
                if settings.chat.len() == 1 { "" } else { "s" },
                settings.st2.api_url
            );
            for line in settings.store.describe() {
                println!("{line}");
            }
            for warning in settings.st2.route_warnings() {
                println!("warning: {warning}");
            }
            for deprecation in &settings.deprecations {
                println!("warning: {deprecation}");
            }
            if settings.access.rule_count() == 0
                && settings.access.default_action() == stormbridge::acl::Action::Deny
            {
                println!(
                    "note: [access] default is \"deny\" and there are no rules, so every command will be refused; \
                     add [[access.rules]] (see config/default.toml)"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The running app, once started (for a clean stop).
type AppSlot = std::rc::Rc<std::cell::RefCell<Option<std::rc::Rc<app::RunningApp>>>>;

/// Longest a clean stop waits to give the chat connections' leases up.
const RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Stops the actix system on SIGINT or SIGTERM, after giving the chat connections up to
/// another bridge process sharing the store (if any).
fn stop_on_signals(slot: AppSlot) {
    actix_rt::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGTERM");
                        let _ = tokio::signal::ctrl_c().await;
                        actix_rt::System::current().stop();
                        return;
                    }
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("signal received; stopping");
        let app = slot.borrow().clone();
        if let Some(app) = app {
            let _ = tokio::time::timeout(RELEASE_TIMEOUT, app.release_leases()).await;
        }
        actix_rt::System::current().stop();
    });
}

/// On SIGHUP, re-reads the configuration file and swaps in its access rules; an invalid
/// file keeps the old rules and logs why.
#[cfg(unix)]
fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    app: std::rc::Rc<app::RunningApp>,
    path: std::path::PathBuf,
) {
    actix_rt::spawn(async move {
        while hup.recv().await.is_some() {
            match app.reload_aliases().await {
                Ok(count) => tracing::info!(count, "SIGHUP: aliases reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: reloading aliases failed"),
            }
            match app.reload_access(&path).await {
                Ok(rules) => {
                    tracing::info!(rules, path = %path.display(), "SIGHUP: access rules reloaded")
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), problems = %e.one_line(), "SIGHUP: configuration invalid; keeping the old access rules")
                }
            }
        }
    });
}

fn run(settings: Settings, path: std::path::PathBuf) -> anyhow::Result<()> {
    telemetry::init(&settings.log);
    let system = actix_rt::System::new();
    let slot = AppSlot::default();
    let app = system.block_on(async {
        stop_on_signals(slot.clone());
        // Listen before starting, so a SIGHUP sent right after start-up is not fatal.
        #[cfg(unix)]
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("listening for SIGHUP")?;
        let app = std::rc::Rc::new(app::start(settings, AppOptions::default()).await?);
        *slot.borrow_mut() = Some(app.clone());
        #[cfg(unix)]
        reload_on_sighup(hup, app.clone(), path);
        #[cfg(not(unix))]
        let _ = path;
        Ok::<_, anyhow::Error>(app)
    })?;
    system.run().context("actor system failed")?;
    slot.borrow_mut().take();
    drop(app);
    Ok(())
}

/// How long the demo's commands run.
#[cfg(feature = "emulator")]
const DEMO_EXECUTION_TIME: std::time::Duration = std::time::Duration::from_millis(1500);

/// Without the emulator there is nothing for the demo to talk to.
#[cfg(not(feature = "emulator"))]
fn demo(_http_listen: std::net::SocketAddr) -> anyhow::Result<()> {
    anyhow::bail!(
        "this stormbridge was built without the StackStorm emulator (cargo feature `emulator`), which the demo needs"
    )
}

#[cfg(not(feature = "emulator"))]
fn emulator(_port: u16) -> anyhow::Result<()> {
    anyhow::bail!(
        "this stormbridge was built without the StackStorm emulator (cargo feature `emulator`)"
    )
}

/// `stormbridge emulator`: the StackStorm emulator alone, with the demo's aliases, until the
/// end of its input or a signal. Its first line of output is its address.
#[cfg(feature = "emulator")]
fn emulator(port: u16) -> anyhow::Result<()> {
    use std::io::Write as _;
    use stormbridge::emulator::{demo_aliases, long_job_alias, Emulator, EmulatorConfig};
    let system = actix_rt::System::new();
    let emulator = system.block_on(async {
        stop_on_signals(AppSlot::default());
        // Commands take a second or two, as real ones do: StackStorm prints a duration under
        // a second as microseconds ("Took 0.02μs"), which would make the demo look broken.
        // Plus a job that runs for a while, to follow (`!st2tail`) and cancel.
        let emulator = Emulator::start(EmulatorConfig {
            execution_delay: DEMO_EXECUTION_TIME,
            aliases: [demo_aliases(), vec![long_job_alias()]].concat(),
            port,
            ..EmulatorConfig::default()
        })
        .await
        .context("starting the StackStorm emulator")?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", emulator.base_url())
            .and_then(|()| out.flush())
            .context("writing the emulator's address")?;
        let system = actix_rt::System::current();
        std::thread::Builder::new()
            .name("emulator-stdin".into())
            .spawn(move || {
                // Whoever started it (`stormbridge demo`, a terminal) closes the input to
                // stop it; so does the demo's end, even when it is killed.
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                system.stop();
            })
            .context("watching the emulator's input")?;
        Ok::<_, anyhow::Error>(emulator)
    })?;
    system.run().context("actor system failed")?;
    drop(emulator);
    Ok(())
}

/// The demo's StackStorm: `stormbridge emulator` in a process of its own, as StackStorm is
/// apart from the bridge, so the demo's bridge is the bridge alone (its memory, threads and
/// `/actors` are a deployed bridge's). It stops when this is dropped, or when the demo dies,
/// as its input then closes.
#[cfg(feature = "emulator")]
struct EmulatorProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    base_url: String,
}

#[cfg(feature = "emulator")]
impl EmulatorProcess {
    /// Longest the emulator may take to say its address.
    const START_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
    /// Longest it may take to stop once its input is closed, before it is killed.
    const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

    fn start() -> anyhow::Result<EmulatorProcess> {
        use std::io::BufRead as _;
        use std::process::{Command, Stdio};
        let program = std::env::current_exe().context("finding this program")?;
        let mut child = Command::new(program)
            .arg("emulator")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting `stormbridge emulator`")?;
        let Some(stdout) = child.stdout.take() else {
            anyhow::bail!("`stormbridge emulator` has no output to read");
        };
        let (tx, rx) = std::sync::mpsc::channel();
        // Only the first line is read; the emulator writes nothing after it.
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(read.map(|_| line));
        });
        let line = rx.recv_timeout(Self::START_WAIT);
        let mut process = EmulatorProcess {
            child,
            base_url: String::new(),
        };
        match line {
            Ok(Ok(line)) if line.trim_end().starts_with("http://127.0.0.1:") => {
                process.base_url = line.trim_end().to_owned();
                Ok(process)
            }
            // Dropping `process` stops the emulator.
            Ok(Ok(line)) if line.is_empty() => {
                anyhow::bail!("`stormbridge emulator` ended without saying its address")
            }
            // `{:?}` escapes control characters.
            Ok(Ok(line)) => anyhow::bail!(
                "`stormbridge emulator` said {:?} where its address was expected",
                line.trim_end()
            ),
            Ok(Err(e)) => Err(e).context("reading `stormbridge emulator`'s address"),
            Err(_) => anyhow::bail!(
                "`stormbridge emulator` did not say its address within {} s",
                Self::START_WAIT.as_secs()
            ),
        }
    }
}

#[cfg(feature = "emulator")]
impl Drop for EmulatorProcess {
    // Dropped after the actor system has stopped, on no arbiter: a short poll bounds the wait.
    #[allow(clippy::disallowed_methods)]
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + Self::STOP_WAIT;
        while std::time::Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(feature = "emulator")]
fn demo(http_listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let emulator = EmulatorProcess::start().context("starting the StackStorm emulator")?;
    let system = actix_rt::System::new();
    let app = system.block_on(async {
        stop_on_signals(AppSlot::default());
        let toml = format!(
            "{DEMO_TOML}\n[http]\nlisten = \"{http_listen}\"\n"
        );
        let mut settings = config::load_from_str(&toml, &REGISTRY).map_err(anyhow::Error::from)?;
        settings.st2.api_url = format!("{}/api/v1", emulator.base_url);
        settings.st2.auth_url = format!("{}/auth/v1", emulator.base_url);
        settings.st2.stream_url = format!("{}/stream/v1", emulator.base_url);
        telemetry::init(&settings.log);
        let app = app::start(settings, AppOptions::default()).await?;
        eprintln!(
            "stormbridge demo\n\
             \x20 StackStorm: the built-in EMULATOR at {} (a test double, not StackStorm; process {})\n\
             \x20 operator endpoints: http://{}/health /ready /actors /metrics\n\
             \x20 You are `demo-user` in room #demo. Try:  !st2help   !st2 run date   !st2 run uptime on web1\n\
             \x20 Jobs: !st2 start long job 30   !st2tail   !st2jobs   !st2cancel <n>\n\
             \x20 A line starting with /dm is a direct message. Ctrl-D quits.",
            emulator.base_url,
            emulator.child.id(),
            app.http_addr,
        );
        Ok::<_, anyhow::Error>(app)
    })?;
    system.run().context("actor system failed")?;
    drop(app);
    drop(emulator);
    Ok(())
}
