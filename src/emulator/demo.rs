//! A small, realistic alias set for `stormbridge demo` and for tests that do not
//! bring their own. Shaped exactly like items of st2's `GET /api/v1/actionalias`.

use serde_json::{json, Value};

/// Demo aliases in three packs (`examples`, `linux`, `ops`):
///
/// | ref | formats | action | notes |
/// |---|---|---|---|
/// | `examples.run_local` | `run {{cmd}}` | `core.local` | |
/// | `examples.run_remote` | display `run <cmd> on <hosts>`, `run {{cmd}} on {{hosts}}` | `core.remote` | `ack.format` |
/// | `linux.date` | `date`, `what time is it` | `core.local` | `immutable_parameters.cmd = date`, `ack.append_url: false` |
/// | `ops.deploy` | `deploy {{app}} to {{env}}` | `ops.deploy` | `ack.format`, `result.format`, `result.extra` |
/// | `ops.restart_service` | `restart {{service}} on {{hosts}}` | `ops.restart_service` | `result.enabled: false` |
/// | `ops.maintenance` | `maintenance on` | `core.noop` | disabled |
/// | `examples.remote_shell_cmd` | `shell {{cmd}} on {{hosts}}` | `core.remote` | `result.format` with `{% for %}` blocks |
///
/// Note that, exactly as on a real st2 with these aliases, `run date on web1`
/// matches both `run {{cmd}}` and `run {{cmd}} on {{hosts}}`, so st2's
/// `/actionalias/match` calls it ambiguous.
#[must_use]
pub fn demo_aliases() -> Vec<Value> {
    vec![
        json!({
            "id": "5f3c1a0e9d1b2c0001a1b001",
            "name": "run_local",
            "pack": "examples",
            "ref": "examples.run_local",
            "uid": "action_alias:examples:run_local",
            "description": "Run a shell command on the StackStorm host",
            "enabled": true,
            "action_ref": "core.local",
            "formats": ["run {{cmd}}"],
            "metadata_file": "aliases/run_local.yaml"
        }),
        json!({
            "id": "5f3c1a0e9d1b2c0001a1b002",
            "name": "run_remote",
            "pack": "examples",
            "ref": "examples.run_remote",
            "uid": "action_alias:examples:run_remote",
            "description": "Run a shell command on one or more remote hosts",
            "enabled": true,
            "action_ref": "core.remote",
            "formats": [{
                "display": "run <cmd> on <hosts>",
                "representation": ["run {{cmd}} on {{hosts}}"]
            }],
            "ack": {
                "format": "Running `{{ execution.parameters.cmd }}` on {{ execution.parameters.hosts }} (execution {{ execution.id }})."
            },
            "metadata_file": "aliases/run_remote.yaml"
        }),
        json!({
            "id": "5f3c1a0e9d1b2c0001a1b003",
            "name": "date",
            "pack": "linux",
            "ref": "linux.date",
            "uid": "action_alias:linux:date",
            "description": "Show the current date and time on the StackStorm host",
            "enabled": true,
            "action_ref": "core.local",
            "formats": ["date", "what time is it"],
            "immutable_parameters": {"cmd": "date"},
            "ack": {"enabled": true, "append_url": false},
            "metadata_file": "aliases/date.yaml"
        }),
        json!({
            "id": "5f3c1a0e9d1b2c0001a1b004",
            "name": "deploy",
            "pack": "ops",
            "ref": "ops.deploy",
            "uid": "action_alias:ops:deploy",
            "description": "Deploy an application to an environment",
            "enabled": true,
            "action_ref": "ops.deploy",
            "formats": ["deploy {{app}} to {{env}}"],
            "ack": {
                "format": "Deploying {{ execution.parameters.app }} to {{ execution.parameters.env }}...",
                "append_url": true
            },
            "result": {
                "format": "Deployment of {{ execution.parameters.app }} to {{ execution.parameters.env }}: {{ execution.status }}",
                "extra": {"slack": {"color": "good", "thread_response": true}}
            },
            "metadata_file": "aliases/deploy.yaml"
        }),
        json!({
            "id": "5f3c1a0e9d1b2c0001a1b005",
            "name": "restart_service",
            "pack": "ops",
            "ref": "ops.restart_service",
            "uid": "action_alias:ops:restart_service",
            "description": "Restart a service on some hosts (the result is not posted to chat)",
            "enabled": true,
            "action_ref": "ops.restart_service",
            "formats": ["restart {{service}} on {{hosts}}"],
            "ack": {
                "format": "Restarting {{ execution.parameters.service }} on {{ execution.parameters.hosts }}; no result will be posted."
            },
            "result": {"enabled": false},
            "metadata_file": "aliases/restart_service.yaml"
        }),
        json!({
            "id": "5f3c1a0e9d1b2c0001a1b006",
            "name": "maintenance",
            "pack": "ops",
            "ref": "ops.maintenance",
            "uid": "action_alias:ops:maintenance",
            "description": "Switch maintenance mode on (disabled alias)",
            "enabled": false,
            "action_ref": "core.noop",
            "formats": ["maintenance on"],
            "metadata_file": "aliases/maintenance.yaml"
        }),
        // After st2's own `contrib/examples/aliases/remote_shell_cmd.yaml`: a result format
        // that loops over the remote runner's per-host result with Jinja blocks and their
        // whitespace control (`-%}` eats the indentation of the loop's first line, `{%+`
        // keeps `lstrip_blocks` off for the `endfor`), as real packs write them. The
        // format differs from the original's `run {{cmd}} on {{hosts}}`, which
        // `examples.run_remote` already has.
        json!({
            "id": "5f3c1a0e9d1b2c0001a1b009",
            "name": "remote_shell_cmd",
            "pack": "examples",
            "ref": "examples.remote_shell_cmd",
            "uid": "action_alias:examples:remote_shell_cmd",
            "description": "Execute a command on remote hosts via SSH, with a per-host report",
            "enabled": true,
            "action_ref": "core.remote",
            "formats": ["shell {{cmd}} on {{hosts}}"],
            "ack": {
                "format": "Hold on while I run *{{execution.parameters.cmd}}* on *{{execution.parameters.hosts}}*"
            },
            "result": {
                "format": "Ran *{{execution.parameters.cmd}}* on *{{ execution.result | length }}* hosts.\n\nPer host:\n{% for host in execution.result -%}\n    Host: *{{host}}*\n    ---> stdout: {{execution.result[host].stdout}}\n    ---> stderr: {{execution.result[host].stderr}}\n{%+ endfor %}\n"
            },
            "metadata_file": "aliases/remote_shell_cmd.yaml"
        }),
    ]
}

/// An alias that passes a secret parameter, for tests of the bridge's masking: `ops.set_password`,
/// format `set password for {{user}} to {{password}}`, running the built-in action
/// `ops.set_password` (`password` is `secret: true`; its emulated output echoes the
/// password, so the announced result carries it). Not part of [`demo_aliases`], whose
/// size and order tests and the demo's help listing rely on; add it with
/// `EmulatorConfig { aliases: [demo_aliases(), vec![set_password_alias()]].concat(), .. }`
/// or [`super::Emulator::set_aliases`].
#[must_use]
pub fn set_password_alias() -> Value {
    json!({
        "id": "5f3c1a0e9d1b2c0001a1b007",
        "name": "set_password",
        "pack": "ops",
        "ref": "ops.set_password",
        "uid": "action_alias:ops:set_password",
        "description": "Set a user's password (the action prints it: the bridge must mask it)",
        "enabled": true,
        "action_ref": "ops.set_password",
        "formats": ["set password for {{user}} to {{password}}"],
        "ack": {
            "format": "Setting the password of {{ execution.parameters.user }}..."
        },
        "metadata_file": "aliases/set_password.yaml"
    })
}

/// An alias for the long-running action, for tests and demos of following and cancelling a
/// job: `ops.long_job`, format `start long job {{seconds=30}}`, running the built-in action
/// `ops.long_job` (runner `local-shell-cmd`), which prints `step i of N` five times a second
/// for `seconds` seconds — each line stored as an output record and published as
/// `st2.execution.output__create` — then succeeds (see `actions.rs`, `state.rs`).
///
/// The format does not start with `run`: `examples.run_local`'s `run {{cmd}}` would match
/// `run long job 5` too, and st2 calls a command two aliases match ambiguous. Like
/// [`set_password_alias`], not part of [`demo_aliases`]; add it with
/// `EmulatorConfig { aliases: [demo_aliases(), vec![long_job_alias()]].concat(), .. }`.
#[must_use]
pub fn long_job_alias() -> Value {
    json!({
        "id": "5f3c1a0e9d1b2c0001a1b008",
        "name": "long_job",
        "pack": "ops",
        "ref": "ops.long_job",
        "uid": "action_alias:ops:long_job",
        "description": "Run a job that prints a line five times a second for a while (follow it, cancel it)",
        "enabled": true,
        "action_ref": "ops.long_job",
        "formats": ["start long job {{seconds=30}}"],
        "ack": {
            "format": "Long job of {{ execution.parameters.seconds }} s started (execution {{ execution.id }})."
        },
        "metadata_file": "aliases/long_job.yaml"
    })
}
