#!/usr/bin/env python3
"""CI's check of deploy/'s files as files (helm's own lint and rendering of the chart is
deploy/ci-kubernetes-check). It renders nothing; it checks that
  - every chart file without template directives (Chart.yaml, values.yaml) parses as YAML;
  - every .Values path a template uses exists in values.yaml;
  - the default `config` in values.yaml is TOML and leaves [http]/[store] to the chart;
  - deploy/prometheus/alerts.yaml is a rule file Prometheus accepts (`promtool check rules`),
    and its alerts fire when they should and only then (`promtool test rules` with
    alerts.test.yaml);
  - deploy/grafana/stormbridge.json is JSON with the ${DS_PROMETHEUS} input, and every query
    in it is PromQL that Prometheus parses (with Grafana's $instance and $__rate_interval
    filled in; promtool checks them as recording rules);
  - the k8s manifest parses.
(That the dashboard and the alerts use only series the bridge exports is tests/it/deploy.rs.)
"""
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

root = pathlib.Path(__file__).resolve().parent
chart = root / "helm" / "stormbridge"
problems = []
checked = 0

for path in sorted(chart.rglob("*")):
    if path.suffix in (".yaml", ".yml") and "{{" not in path.read_text():
        try:
            list(yaml.safe_load_all(path.read_text()))
            checked += 1
        except yaml.YAMLError as e:
            problems.append(f"{path.relative_to(root)}: {e}")

values = yaml.safe_load((chart / "values.yaml").read_text())
for meta in ("apiVersion", "name", "version"):
    if meta not in yaml.safe_load((chart / "Chart.yaml").read_text()):
        problems.append(f"Chart.yaml: no {meta}")

ref = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
for tpl in sorted((chart / "templates").iterdir()):
    for m in ref.finditer(tpl.read_text()):
        node = values
        for key in m.group(1).strip(".").split("."):
            if not isinstance(node, dict) or key not in node:
                problems.append(f"{tpl.relative_to(root)}: .Values{m.group(1)} is not in values.yaml")
                break
            node = node[key]
        checked += 1

try:
    config = tomllib.loads(values["config"])
    for table in ("http", "store"):
        if table in config:
            problems.append(f"values.yaml config: [{table}] is written by the chart, leave it out")
    checked += 1
except tomllib.TOMLDecodeError as e:
    problems.append(f"values.yaml config is not TOML: {e}")

alerts = yaml.safe_load((root / "prometheus" / "alerts.yaml").read_text())
for group in alerts.get("groups", []):
    for rule in group.get("rules", []):
        if not rule.get("alert") or not rule.get("expr"):
            problems.append(f"alerts.yaml: a rule without alert/expr: {rule}")
        checked += 1
if not alerts.get("groups"):
    problems.append("alerts.yaml: no groups")

dashboard = json.loads((root / "grafana" / "stormbridge.json").read_text())
if not any(i.get("name") == "DS_PROMETHEUS" for i in dashboard.get("__inputs", [])):
    problems.append("stormbridge.json: no DS_PROMETHEUS input")
checked += 1

promtool = shutil.which("promtool")
if promtool is None:
    problems.append("promtool not found (Debian's prometheus package; .ci/test-deps installs it)")
else:
    for args in (["check", "rules", "alerts.yaml"], ["test", "rules", "alerts.test.yaml"]):
        run = subprocess.run([promtool, *args], cwd=root / "prometheus", capture_output=True, text=True)
        if run.returncode != 0:
            problems.append(f"promtool {' '.join(args)}: {run.stdout}{run.stderr}")
        checked += 1
    rules = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$instance", ".*").replace("$__rate_interval", "5m")
            rules.append({"record": f"dashboard:panel{panel['id']}:{target['refId']}", "expr": expr})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        f.flush()
        run = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
        if run.returncode != 0:
            problems.append(f"stormbridge.json: a query Prometheus does not parse: {run.stdout}{run.stderr}")
    checked += len(rules)

list(yaml.safe_load_all((root / "k8s" / "stormbridge.yaml").read_text()))
checked += 1

for p in problems:
    print(p, file=sys.stderr)
print(f"deploy/check.py: {checked} checks, {len(problems)} problems")
sys.exit(1 if problems else 0)
