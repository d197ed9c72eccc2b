//! Execution documents and aliases the tests render, as StackStorm's API returns
//! them (`GET /api/v1/executions/{id}`, `GET /api/v1/actionalias`).

use serde_json::Value;

/// Execution documents (as `GET /api/v1/executions/{id}` returns them).
const EXECUTIONS: &[(&str, &str)] = &[
    (
        "days",
        r##"{"id": "65a1f733e4b0a1b2c3d4e6aa", "action": {"ref": "ops.long_job"}, "runner": {"name": "local-shell-cmd"}, "status": "timeout", "elapsed_seconds": 3456000.5, "result": {"failed": true, "succeeded": false, "return_code": -9, "stdout": "step 1\nstep 2\n", "stderr": "", "error": "Action failed to complete in 3456000 seconds"}, "context": {"user": "leo"}, "web_url": ""}"##,
    ),
    (
        "empty_result",
        r##"{"id": "65a1f711e4b0a1b2c3d4e688", "action": {"ref": "core.noop"}, "runner": {"name": "noop"}, "status": "succeeded", "elapsed_seconds": 0, "result": {}, "context": {"user": "judy"}}"##,
    ),
    (
        "http",
        r##"{"id": "65a1f4dde4b0a1b2c3d4e644", "action": {"ref": "core.http"}, "runner": {"name": "http-request"}, "status": "succeeded", "elapsed_seconds": 0.75, "parameters": {"url": "https://api.example.com/v1/status", "method": "GET"}, "result": {"status_code": 200, "body": {"service": "billing", "healthy": true, "checks": [{"name": "db", "ok": true}, {"name": "queue", "ok": false, "lag": 12.5}], "note": null}, "parsed": true, "headers": {"Content-Type": "application/json", "X-Request-Id": "abc-123"}}, "context": {"user": "frank", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261508", "name": "http_status"}}, "web_url": "https://st2.example.com/#/history/65a1f4dde4b0a1b2c3d4e644/general"}"##,
    ),
    (
        "integer_elapsed_small",
        r##"{"id": "65a1f777e4b0a1b2c3d4e6ee", "action": {"ref": "core.local"}, "runner": {"name": "local-shell-cmd"}, "status": "succeeded", "elapsed_seconds": 1e-05, "result": {"return_code": 0, "stdout": "x", "stderr": "", "succeeded": true, "failed": false}, "context": {"user": "pat"}}"##,
    ),
    (
        "list_result",
        r##"{"id": "65a1f700e4b0a1b2c3d4e677", "action": {"ref": "mypack.list_hosts"}, "runner": {"name": "action-chain"}, "status": "succeeded", "elapsed_seconds": 7200, "result": ["web1", "web2", {"db": 1}, true, null, 2.0], "context": {"user": "ivan"}}"##,
    ),
    (
        "local_fail",
        r##"{"id": "65a1f1d3e4b0a1b2c3d4e600", "action": {"ref": "core.local_sudo"}, "runner": {"name": "local-shell-script"}, "status": "failed", "elapsed_seconds": 3.5, "parameters": {"cmd": "systemctl restart nginx"}, "result": {"failed": true, "succeeded": false, "return_code": 1, "stdout": "", "stderr": "Job for nginx.service failed because the control process exited with error code.\nSee \"systemctl status nginx.service\" and \"journalctl -xe\" for details.\n"}, "context": {"user": "bob", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261505", "name": "restart"}}, "web_url": "https://st2.example.com/#/history/65a1f1d3e4b0a1b2c3d4e600/general"}"##,
    ),
    (
        "local_ok",
        r##"{"id": "65a1f0c2e4b0a1b2c3d4e5f6", "action": {"ref": "core.local", "name": "local", "pack": "core", "runner_type": "local-shell-cmd"}, "runner": {"name": "local-shell-cmd", "runner_module": "local_runner"}, "liveaction": {"id": "65a1f0c2e4b0a1b2c3d4e5f5", "action": "core.local"}, "status": "succeeded", "start_timestamp": "2024-01-13T02:14:58.123456Z", "end_timestamp": "2024-01-13T02:14:58.335790Z", "elapsed_seconds": 0.212334, "parameters": {"cmd": "uptime; df -h /"}, "result": {"failed": false, "succeeded": true, "return_code": 0, "stdout": " 02:14:58 up 12 days,  3:01,  1 user,  load average: 0.08, 0.03, 0.01\nFilesystem      Size  Used Avail Use% Mounted on\n/dev/sda1        40G   12G   26G  32% /", "stderr": ""}, "context": {"user": "alice", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261504", "name": "run_local"}, "api_user": "alice", "source_channel": "ops"}, "log": [{"status": "requested", "timestamp": "2024-01-13T02:14:58.100000Z"}], "web_url": "https://st2.example.com/#/history/65a1f0c2e4b0a1b2c3d4e5f6/general"}"##,
    ),
    (
        "no_result",
        r##"{"id": "65a1f722e4b0a1b2c3d4e699", "action": {"ref": "core.pause"}, "runner": {"name": "local-shell-cmd"}, "status": "canceled", "context": {"user": "ken"}}"##,
    ),
    (
        "orquesta",
        r##"{"id": "65a1f5eee4b0a1b2c3d4e655", "action": {"ref": "ops.deploy"}, "runner": {"name": "orquesta"}, "status": "succeeded", "elapsed_seconds": 93784.2, "parameters": {"app": "shop", "version": "2.4.0"}, "result": {"output": {"deployed": ["web-1", "web-2"], "summary": "Deployed shop 2.4.0 to 2 hosts\nAll health checks passed", "rollback": false, "stats": {"duration": 312, "retries": 0}}, "errors": []}, "context": {"user": "grace", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261509", "name": "deploy"}}, "web_url": "https://st2.example.com/#/history/65a1f5eee4b0a1b2c3d4e655/general"}"##,
    ),
    (
        "python_ok",
        r##"{"id": "65a1f3bbe4b0a1b2c3d4e622", "action": {"ref": "examples.isprime"}, "runner": {"name": "python-script"}, "status": "succeeded", "elapsed_seconds": 1.4999, "parameters": {"value": 7}, "result": {"exit_code": 0, "result": {"prime": true, "value": 7, "factors": [], "checked_by": "trial division", "ratio": 0.5}, "stderr": "st2.actions.python.PrimeChecker: DEBUG    value=7\n", "stdout": "checking 7\nit is prime"}, "context": {"user": "dave", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261507", "name": "isprime"}}, "web_url": "https://st2.example.com/#/history/65a1f3bbe4b0a1b2c3d4e622/general"}"##,
    ),
    (
        "python_scalar",
        r##"{"id": "65a1f3cce4b0a1b2c3d4e633", "action": {"ref": "packs.get_version"}, "runner": {"name": "python-script"}, "status": "succeeded", "elapsed_seconds": 2, "parameters": {}, "result": {"exit_code": 0, "result": "3.8.1", "stderr": "", "stdout": ""}, "context": {"user": "erin"}}"##,
    ),
    (
        "remote_nonmap",
        r##"{"id": "65a1f766e4b0a1b2c3d4e6dd", "action": {"ref": "core.remote"}, "runner": {"name": "remote-shell-cmd"}, "status": "failed", "elapsed_seconds": 1, "result": {"web1": "unexpected string"}, "context": {"user": "olga"}}"##,
    ),
    (
        "remote_two",
        r##"{"id": "65a1f2aae4b0a1b2c3d4e611", "action": {"ref": "core.remote"}, "runner": {"name": "remote-shell-cmd"}, "status": "failed", "elapsed_seconds": 65.5, "parameters": {"cmd": "uname -r", "hosts": "web1,web2"}, "result": {"web1.example.com": {"failed": false, "succeeded": true, "return_code": 0, "stdout": "5.15.0-91-generic", "stderr": ""}, "web2.example.com": {"failed": true, "succeeded": false, "return_code": 255, "stdout": "", "stderr": "ssh: connect to host web2.example.com port 22: Connection refused\nretrying...", "error": "Failed to connect to host."}}, "context": {"user": "carol", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261506", "name": "remote_run"}}}"##,
    ),
    (
        "string_result",
        r##"{"id": "65a1f6ffe4b0a1b2c3d4e666", "action": {"ref": "mypack.greet"}, "runner": {"name": "noop-like"}, "status": "succeeded", "parameters": {"name": "Zoë"}, "result": "Hello, Zoë! ✓ ünïcödé «ok»", "context": {"user": "heidi"}}"##,
    ),
    (
        "tricky",
        r##"{"id": "65a1f755e4b0a1b2c3d4e6cc", "action": {"ref": "mypack.tricky"}, "runner": {"name": "python-script"}, "status": "succeeded", "elapsed_seconds": 0.5, "result": {"stdout": "it's \"quoted\"\ttab", "result": {"nested": {"list": [1, "two", {"three": 3}], "quote": "it's", "both": "it's \"x\"", "uni": "Zoë ✓", "nl": "a\nb", "empty": "", "zero": 0, "f": 1e-05, "big": 1e+16, "neg": -0.0}}, "exit_code": 0, "stderr": ""}, "context": {"user": "nick", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261510", "name": "tricky"}}}"##,
    ),
    (
        "years",
        r##"{"id": "65a1f744e4b0a1b2c3d4e6bb", "action": {"ref": "ops.forever"}, "runner": {"name": "windows-cmd"}, "status": "succeeded", "elapsed_seconds": 31626061, "result": {"exit_code": 0, "result": null, "stdout": "  padded output  ", "stderr": "warning: one\nwarning: two"}, "context": {"user": "mia"}}"##,
    ),
    (
        "python_scalar_alias",
        r##"{"id": "65a1f3cce4b0a1b2c3d4e633", "action": {"ref": "packs.get_version"}, "runner": {"name": "python-script"}, "status": "succeeded", "elapsed_seconds": 2, "parameters": {}, "result": {"exit_code": 0, "result": "3.8.1", "stderr": "", "stdout": ""}, "context": {"user": "erin", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261599", "name": "x"}}}"##,
    ),
    (
        "list_result_alias",
        r##"{"id": "65a1f700e4b0a1b2c3d4e677", "action": {"ref": "mypack.list_hosts"}, "runner": {"name": "action-chain"}, "status": "succeeded", "elapsed_seconds": 7200, "result": ["web1", "web2", {"db": 1}, true, null, 2.0], "context": {"user": "ivan", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261599", "name": "x"}}}"##,
    ),
    (
        "string_result_alias",
        r##"{"id": "65a1f6ffe4b0a1b2c3d4e666", "action": {"ref": "mypack.greet"}, "runner": {"name": "noop-like"}, "status": "succeeded", "parameters": {"name": "Zoë"}, "result": "Hello, Zoë! ✓ ünïcödé «ok»", "context": {"user": "heidi", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261599", "name": "x"}}}"##,
    ),
];

/// Aliases whose `result` sections the goldens use.
const ALIASES: &[(&str, &str)] = &[
    (
        "stdout",
        r##"{"id": "5f0d9e8c7b6a594837261500", "name": "stdout", "pack": "ops", "ref": "ops.stdout", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.stdout }}"}}"##,
    ),
    (
        "status_branch",
        r##"{"id": "5f0d9e8c7b6a594837261501", "name": "status_branch", "pack": "ops", "ref": "ops.status_branch", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% if execution.status == 'succeeded' %}\n:white_check_mark: `{{ execution.parameters.cmd }}` finished in {{ execution.elapsed_seconds | to_human_time_from_seconds }}\n```\n{{ execution.result.stdout }}\n```\n{% else %}\n:x: `{{ execution.parameters.cmd }}` failed (rc={{ execution.result.return_code }})\n    {{ execution.result.stderr | trim }}\n{% endif %}\n"}}"##,
    ),
    (
        "json_all",
        r##"{"id": "5f0d9e8c7b6a594837261502", "name": "json_all", "pack": "ops", "ref": "ops.json_all", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "Result: {{ execution.result | to_json_string }}"}}"##,
    ),
    (
        "json_inner",
        r##"{"id": "5f0d9e8c7b6a594837261503", "name": "json_inner", "pack": "ops", "ref": "ops.json_inner", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.result | to_json_string }}\n---\n{{ execution.result.result | to_json_string(indent=2, sort_keys=True) }}\n---\n{{ execution.result.result | to_complex }}\n{{ execution.result.result | to_json_string(indent=0) }}|{{ execution.result | to_json_string(separators=[',', ':']) }}|{{ execution.result.result | tojson }}"}}"##,
    ),
    (
        "per_host",
        r##"{"id": "5f0d9e8c7b6a594837261504", "name": "per_host", "pack": "ops", "ref": "ops.per_host", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% for host, r in six.iteritems(execution.result) %}\n*{{ host }}* rc={{ r.return_code }}{% if r.error %} ({{ r.error }}){% endif %}\n\n  {% for line in (r.stdout ~ r.stderr).split('\\n') if line %}\n  > {{ line }}\n  {% endfor %}\n{% endfor %}\nDone: {{ execution.result | length }} hosts"}}"##,
    ),
    (
        "undefined_chain",
        r##"{"id": "5f0d9e8c7b6a594837261505", "name": "undefined_chain", "pack": "ops", "ref": "ops.undefined_chain", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "Value: {{ execution.result.missing.deeper }}"}}"##,
    ),
    (
        "undefined_soft",
        r##"{"id": "5f0d9e8c7b6a594837261506", "name": "undefined_soft", "pack": "ops", "ref": "ops.undefined_soft", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "[{{ execution.nothing }}][{{ alias.nothing }}][{{ nothing }}][{{ execution.result.nothing }}]{% if execution.nothing %}yes{% else %}no{% endif %}|{{ execution.nothing | default('dflt') }}|{% for x in nothing %}{{ x }}{% endfor %}|{{ nothing | length }}"}}"##,
    ),
    (
        "py_print",
        r##"{"id": "5f0d9e8c7b6a594837261507", "name": "py_print", "pack": "ops", "ref": "ops.py_print", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.parameters }} | {{ execution.result }} | {{ execution.result.exit_code == 0 }} | {{ none }} | {{ execution.result.result.note }} | {{ [1, 'a', none, true, 2.5] }} | {{ execution.elapsed_seconds }} | {{ execution.result.result.factors }} | {{ execution.result.result.ratio * 2 }} | {{ 7 / 2 }} | {{ 7 // 2 }} | {{ execution.result.result.value + 1 }}"}}"##,
    ),
    (
        "regex",
        r##"{"id": "5f0d9e8c7b6a594837261508", "name": "regex", "pack": "ops", "ref": "ops.regex", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.stdout | regex_replace('(\\\\w+) (\\\\d)', '\\\\2-\\\\1') }}\n{{ execution.result.stdout | regex_search('prime') }} {{ execution.result.stdout | regex_search('PRIME') }} {{ execution.result.stdout | regex_search('PRIME', ignorecase=True) }}\n{{ execution.result.stdout | regex_match('checking') }} {{ execution.result.stdout | regex_match('it') }}\n{{ execution.result.stdout | regex_substring('(\\\\w+) (\\\\d)') }} {{ execution.result.stdout | regex_substring('\\\\w+', 2) }} {{ execution.result.stdout | regex_substring('(\\\\w)(\\\\w)', -1) }}\n{{ execution.result.exit_code | regex_replace('^0$', 'zero') }} {{ 'aaa' | regex_replace('a*', '-') }} {{ 'abxd' | regex_replace('x*', '-') }} {{ 'a.b.c' | regex_replace('\\\\.', '\\\\n') }}|{{ 'line\\n' | regex_search('line$') }}|{{ 'Hello World' | regex_replace('(?P<first>\\\\w+) (?P<second>\\\\w+)', '\\\\g<second> \\\\g<first>') }}"}}"##,
    ),
    (
        "versions",
        r##"{"id": "5f0d9e8c7b6a594837261509", "name": "versions", "pack": "ops", "ref": "ops.versions", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.result | version_bump_minor }} {{ execution.result.result | version_bump_major }} {{ execution.result.result | version_bump_patch }} {{ execution.result.result | version_strip_patch }} {{ '1.2.3-rc.1+b5' | version_compare('1.2.3') }} {{ '1.2.3' | version_compare('1.2.3-rc.1') }} {{ '1.2.3-rc.2' | version_compare('1.2.3-rc.10') }} {{ '1.2.3-alpha' | version_compare('1.2.3-alpha.1') }} {{ '1.2.3-alpha.beta' | version_compare('1.2.3-alpha.1') }} {{ '2.0.0' | version_more_than('1.9.9') }} {{ '2.0.0' | version_less_than('10.0.0') }} {{ '1.0.0+a' | version_equal('1.0.0+b') }} {{ '2.0.0' | version_match('>=1.0.0') }} {{ '2.0.0' | version_match('!=2.0.0') }} {{ '2.0.0' | version_match('2.0.0') }} {{ '1.2.3-rc.1+build.7' | version_bump_patch }}"}}"##,
    ),
    (
        "bad_version",
        r##"{"id": "5f0d9e8c7b6a594837261510", "name": "bad_version", "pack": "ops", "ref": "ops.bad_version", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ 'v1.2' | version_bump_minor }}"}}"##,
    ),
    (
        "misc",
        r##"{"id": "5f0d9e8c7b6a594837261511", "name": "misc", "pack": "ops", "ref": "ops.misc", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ '/var/log/nginx/error.log' | basename }} {{ '/var/log/nginx/error.log' | dirname }} {{ 'dir/' | basename }}|{{ '/' | dirname }} {{ '//a//b//' | dirname }} {{ 'file' | dirname }}|{{ none | use_none }} {{ 'x' | use_none }} {{ 'say \"hi\"\\n\\tüber' | json_escape }} {{ '{\"a\": [1, 2], \"b\": {\"c\": null}}' | from_json_string }} {{ ('{\"k\": \"v\"}' | from_json_string).k }} {{ 3725 | to_human_time_from_seconds }} {{ 0.25 | to_human_time_from_seconds }} {{ 59.5 | to_human_time_from_seconds }} {{ 60.5 | to_human_time_from_seconds }} {{ 2678400 | to_human_time_from_seconds }} {{ -3 | to_human_time_from_seconds }} {{ true | to_human_time_from_seconds }}"}}"##,
    ),
    (
        "extra",
        r##"{"id": "5f0d9e8c7b6a594837261512", "name": "extra", "pack": "ops", "ref": "ops.extra", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.status }}", "extra": {"slack": {"color": "{% if execution.status == 'succeeded' %}good{% else %}danger{% endif %}", "fields": [{"title": "Action", "value": "{{ execution.action.ref }}", "short": true}, {"title": "Static", "value": "unchanged"}], "count": 3}, "title": "Run {{ execution.id }}", "static": "plain text", "flag": true, "num": 42, "none": null, "nl": "trailing\n", "ctx": "{{ __context.execution.status }}/{{ alias.name }}", "list": ["{{ execution.status }}", 1], "plain_list": ["a", 2]}}}"##,
    ),
    (
        "extra_strict",
        r##"{"id": "5f0d9e8c7b6a594837261513", "name": "extra_strict", "pack": "ops", "ref": "ops.extra_strict", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "ok", "extra": {"bad": "{{ execution.nothing }}"}}}"##,
    ),
    (
        "disabled",
        r##"{"id": "5f0d9e8c7b6a594837261514", "name": "disabled", "pack": "ops", "ref": "ops.disabled", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"enabled": false, "format": "{{ never.rendered.here }}"}}"##,
    ),
    (
        "syntax_error",
        r##"{"id": "5f0d9e8c7b6a594837261515", "name": "syntax_error", "pack": "ops", "ref": "ops.syntax_error", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% if execution.status %}oops"}}"##,
    ),
    (
        "uses_alias",
        r##"{"id": "5f0d9e8c7b6a594837261516", "name": "uses_alias", "pack": "ops", "ref": "ops.uses_alias", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ alias.name }} ({{ alias.ref }}) ran {{ execution.action.ref }} for {{ execution.context.user }}; formats={{ alias.formats }}; {{ alias.result.format | length }}"}}"##,
    ),
    (
        "whitespace",
        r##"{"id": "5f0d9e8c7b6a594837261517", "name": "whitespace", "pack": "ops", "ref": "ops.whitespace", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "Report for {{ execution.id }}\n  {# a comment line #}\n  {% for k in ['a', 'b'] %}\n    item {{ k }}\n  {% endfor %}\n  {%- if true %}\n trimmed-left\n  {%- endif %}\n\n{% raw %}{{ not rendered }}{% endraw %}\n{{ execution.status | upper }}   {{- ' glued' }}\nend\n"}}"##,
    ),
    (
        "builtins",
        r##"{"id": "5f0d9e8c7b6a594837261518", "name": "builtins", "pack": "ops", "ref": "ops.builtins", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.body.checks | map(attribute='name') | join(', ') }}|{{ execution.result.body.checks | selectattr('ok') | list | length }}|{{ execution.result.headers | dictsort | first }}|{{ execution.result.body.healthy | string }}|{{ [true, none, 1.5] | join(',') }}|{{ execution.result.body | tojson }}|{{ execution.result.status_code | int + 1 }}|{{ '%s-%d' | format('x', 3) }}|{{ execution.result.body.service | title }} {{ execution.result.body.service | capitalize }} {{ execution.result.body.service | replace('bill', 'sell') }}|{{ execution.result.headers.keys() | list }}|{{ execution.result.body.get('service') }} {{ execution.result.body.get('nope', 'd') }}|{{ execution.result.body.checks[1].lag | round }}|{{ execution.result.body.checks | last }}|{{ 'a,b,,c'.split(',') }}|{{ '  x  '.strip() }}|{{ execution.result.body.service.upper() }}|{{ execution.result.body.service.startswith('bil') }}|{{ 'k' in execution.result.body }} {{ 'service' in execution.result.body }}|{{ execution.result.body | length }}"}}"##,
    ),
    (
        "items_loop",
        r##"{"id": "5f0d9e8c7b6a594837261519", "name": "items_loop", "pack": "ops", "ref": "ops.items_loop", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% for k, v in execution.result.items() %}{{ k }}: {{ v }}\n{% endfor %}{% for k, v in six.iteritems(execution.result.body) if v is not mapping %}[{{ loop.index }}:{{ k }}={{ v | trim }}]{% endfor %}"}}"##,
    ),
    (
        "iteritems_list",
        r##"{"id": "5f0d9e8c7b6a594837261520", "name": "iteritems_list", "pack": "ops", "ref": "ops.iteritems_list", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% for k, v in six.iteritems(execution.result) %}{{ k }}{% endfor %}"}}"##,
    ),
    (
        "runtime_type_error",
        r##"{"id": "5f0d9e8c7b6a594837261521", "name": "runtime_type_error", "pack": "ops", "ref": "ops.runtime_type_error", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.stdout + 1 }}"}}"##,
    ),
    (
        "not_callable",
        r##"{"id": "5f0d9e8c7b6a594837261522", "name": "not_callable", "pack": "ops", "ref": "ops.not_callable", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.stdout() }}"}}"##,
    ),
    (
        "concat",
        r##"{"id": "5f0d9e8c7b6a594837261523", "name": "concat", "pack": "ops", "ref": "ops.concat", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ 'rc=' ~ execution.result.exit_code ~ ' ok=' ~ (execution.result.exit_code == 0) ~ ' r=' ~ execution.result.result }}"}}"##,
    ),
    (
        "format_not_str",
        r##"{"id": "5f0d9e8c7b6a594837261524", "name": "format_not_str", "pack": "ops", "ref": "ops.format_not_str", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": ""}}"##,
    ),
    (
        "json_unicode",
        r##"{"id": "5f0d9e8c7b6a594837261525", "name": "json_unicode", "pack": "ops", "ref": "ops.json_unicode", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result | to_json_string }}|{{ execution.result | to_complex }}|{{ execution.result | json_escape }}|{{ execution.parameters | to_json_string(indent=1) }}"}}"##,
    ),
    (
        "big_loop",
        r##"{"id": "5f0d9e8c7b6a594837261526", "name": "big_loop", "pack": "ops", "ref": "ops.big_loop", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}"}}"##,
    ),
    (
        "macro_recursion",
        r##"{"id": "5f0d9e8c7b6a594837261527", "name": "macro_recursion", "pack": "ops", "ref": "ops.macro_recursion", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% macro walk(v, d=0) %}{% if v is mapping %}{% for k, x in six.iteritems(v) %}{{ ' ' * d }}{{ k }}:\n{{ walk(x, d + 2) }}{% endfor %}{% elif v is sequence and v is not string %}{% for x in v %}{{ walk(x, d) }}{% endfor %}{% else %}{{ ' ' * d }}{{ v }}\n{% endif %}{% endmacro %}{{ walk(execution.result) }}"}}"##,
    ),
    (
        "extra_breaks_json",
        r##"{"id": "5f0d9e8c7b6a594837261528", "name": "extra_breaks_json", "pack": "ops", "ref": "ops.extra_breaks_json", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "ok", "extra": {"fields": [{"value": "{{ execution.result.stderr }}"}]}}}"##,
    ),
    (
        "extra_empty",
        r##"{"id": "5f0d9e8c7b6a594837261529", "name": "extra_empty", "pack": "ops", "ref": "ops.extra_empty", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "ok", "extra": {}}}"##,
    ),
    (
        "enabled_null",
        r##"{"id": "5f0d9e8c7b6a594837261500", "name": "enabled_null", "pack": "ops", "ref": "ops.enabled_null", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"enabled": null, "format": "x"}}"##,
    ),
    (
        "result_empty",
        r##"{"id": "5f0d9e8c7b6a594837261500", "name": "result_empty", "pack": "ops", "ref": "ops.result_empty", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {}}"##,
    ),
    (
        "extra_only",
        r##"{"id": "5f0d9e8c7b6a594837261532", "name": "extra_only", "pack": "ops", "ref": "ops.extra_only", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"extra": {"where": "{{ execution.context.user }}@{{ execution.context.source_channel }}", "n": 1.5}}}"##,
    ),
    (
        "enabled_true_explicit",
        r##"{"id": "5f0d9e8c7b6a594837261500", "name": "enabled_true_explicit", "pack": "ops", "ref": "ops.enabled_true_explicit", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"enabled": true, "format": "{{ execution.status }}!"}}"##,
    ),
];

/// The execution document called `name`.
pub(super) fn execution(name: &str) -> Value {
    let (_, text) = EXECUTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no execution {name}"));
    serde_json::from_str(text).unwrap()
}

/// The alias called `name`.
pub(super) fn alias(name: &str) -> Value {
    let (_, text) = ALIASES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no alias {name}"));
    serde_json::from_str(text).unwrap()
}
