#!/usr/bin/env python3
"""Manual check (not in CI): Helm's own lint of the chart, through the Helm Go library that the
PyPI package helm-sdkpy ships (libhelm_sdkpy.so, about 120 MB; it needs Python >= 3.12). Lint
renders every template and parses the output; the library gives no `template` action and its
lint messages lose their text (an error shows only its file), so this is a yes/no check.

    python3.12 -m venv /tmp/helmlib && /tmp/helmlib/bin/pip install helm-sdkpy pyyaml
    /tmp/helmlib/bin/python deploy/helm/lint-with-helm-library.py deploy/helm/stormbridge [VALUES.yaml ...]

Values files are merged over values.yaml in a copy of the chart (the library's lint takes no
values), so each combination is linted as the chart's defaults. Helm's lint does not stop at
`fail` (it only logs it): a refused combination shows as an INFO line.
"""
import asyncio
import json
import os
import shutil
import sys
import tempfile

import yaml
from helm_sdkpy import Configuration, Lint


def merge(a, b):
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            merge(a[k], v)
        else:
            a[k] = v
    return a


chart = sys.argv[1]
with tempfile.TemporaryDirectory() as d:
    dst = os.path.join(d, os.path.basename(chart.rstrip("/")))
    shutil.copytree(chart, dst)
    values = yaml.safe_load(open(os.path.join(dst, "values.yaml")))
    for f in sys.argv[2:]:
        merge(values, yaml.safe_load(open(f)))
    yaml.safe_dump(values, open(os.path.join(dst, "values.yaml"), "w"))
    result = asyncio.run(Lint(Configuration()).run(dst))
bad = [m for m in result["Messages"] if m["Severity"] > 1]
print(json.dumps(bad) if bad else "lint: no warnings, no errors")
sys.exit(1 if bad else 0)
