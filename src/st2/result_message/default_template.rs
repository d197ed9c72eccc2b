//! [`DEFAULT_TEMPLATE`]: the message the chatops pack renders when the alias has no
//! `result.format`, i.e. `contrib/chatops/actions/templates/default.j2`.
//!
//! # Why a rewrite and not a copy
//!
//! `default.j2` gets its layout from st2's whitespace settings: `trim_blocks` drops
//! the newline after each tag, `lstrip_blocks` drops the indentation before block
//! and comment tags (not before `{{ }}`), and the line breaks left between tags end
//! up in the message. Rather than depend on minijinja applying those rules exactly
//! as Jinja2 does in every corner, this template spells the output out: every tag
//! trims the whitespace around it, and each line break or space of the original
//! output is a string literal. Indentation that `default.j2` leaves in the output
//! is written out too: the two spaces that open the `http-request` branch, and the
//! six spaces before the line break that starts a multi-line string value.
//!
//! The rest is spelling: the macro is `pairs_text` (for `serialize`), strings are
//! joined with `~` (for `+`), and runner names are lists rather than tuples. The
//! goldens in `tests/goldens.rs`, produced by Jinja2 3.1.6 rendering the real
//! `default.j2` in st2's environment, check that the bytes are the same.

/// A template that renders the same text as the chatops pack's `default.j2` in
/// st2's Jinja environment (trim_blocks, lstrip_blocks). Written for this module:
/// every tag trims the whitespace around it and newlines are spelt out.
pub const DEFAULT_TEMPLATE: &str = r#"{#- One "name : value" line per pair; mappings nest two spaces deeper. -#}
{%- macro pairs_text(pairs, pad='') -%}
  {%- for name, item in pairs -%}
    {{- pad }}{{ name }} : {% if item is mapping -%}
      {{- '\n' }}{{ pairs_text(six.iteritems(item), pad ~ '  ') -}}
    {%- elif item is string and (item | trim).split('\n') | length > 1 -%}
      {{- '      \n' }}{{ pad }}  {{ item | trim }}{{ '\n' -}}
    {%- else -%}
      {{- item | trim }}{{ '\n' -}}
    {%- endif -%}
  {%- endfor -%}
{%- endmacro -%}
{%- set wanted_shell = ['stdout', 'stderr', 'return_code', 'error'] -%}
{{ '\n' }}Action {{ execution.action.ref }} completed.{{ '\n' -}}
status : {{ execution.status }}{{ '\n' -}}
execution: {{ execution.id }}{{ '\n\n' -}}
{%- if execution.web_url -%}
  web_url: {{ execution.web_url }}{{ '\n' -}}
{%- endif -%}
{{ '\n' -}}
{%- if execution.elapsed_seconds -%}
  Took {{ execution.elapsed_seconds | to_human_time_from_seconds }} to complete.{{ '\n' -}}
{%- endif -%}
{{ '\n' -}}
{%- if execution.result -%}
  result :{{ '\n' }}--------{{ '\n' -}}
  {%- set runner_name = execution.runner['name'] -%}
  {%- if runner_name in ['http-request'] -%}
    {{ '  ' }}{{ pairs_text(six.iteritems(execution.result)) }}{{ '\n' -}}
  {%- elif runner_name in ['python-script', 'windows-cmd', 'windows-script'] -%}
    {{ pairs_text(six.iteritems(execution.result)
                  | selectattr('0', 'in', ['result', 'stdout', 'stderr', 'exit_code'])
                  | selectattr('1')) }}{{ '\n' -}}
  {%- elif runner_name in ['remote-shell-cmd', 'remote-shell-script'] -%}
    {%- for host, host_result in six.iteritems(execution.result) -%}
      {{ host }} : {{ '\n' }}{{ pairs_text(six.iteritems(host_result)
                                           | selectattr('0', 'in', wanted_shell)
                                           | selectattr('1'), '  ') }}{{ '\n' -}}
    {%- endfor -%}
  {%- elif runner_name in ['local-shell-cmd', 'local-shell-script'] -%}
    {{ pairs_text(six.iteritems(execution.result)
                  | selectattr('0', 'in', wanted_shell)
                  | selectattr('1')) }}{{ '\n' -}}
  {%- elif execution.result is mapping -%}
    {{ pairs_text(six.iteritems(execution.result)) }}{{ '\n' -}}
  {%- else -%}
    {{ execution.result }}{{ '\n' -}}
  {%- endif -%}
{%- endif -%}
"#;
