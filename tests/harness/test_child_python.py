"""How a candidate's Python starts (harness.sandbox.python_argv): the allowlisted PYTHONPATH is
honoured, so dependencies carried onto a bare GPU box on PYTHONPATH (scripts/gpu_session.sh)
reach every child; the child's cwd and the user's site-packages are not on its path."""

from __future__ import annotations

import sys

from harness.config import SandboxLimits
from harness.sandbox import ExitKind, python_argv, run_child

PROBE = """
import sys
import kscout_carried_dep
print("carried", kscout_carried_dep.VALUE, "no_user_site", sys.flags.no_user_site)
try:
    import kscout_cwd_shadow
    print("cwd shadow imported")
except ImportError:
    print("cwd not on the path")
"""


def test_a_child_sees_pythonpath_but_not_its_cwd_or_the_user_site(tmp_path, monkeypatch):
    site = tmp_path / "carried"
    site.mkdir()
    (site / "kscout_carried_dep.py").write_text("VALUE = 42\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "kscout_cwd_shadow.py").write_text("raise SystemExit('a module in the cwd was imported')\n")
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    monkeypatch.setenv("PYTHONPATH", str(site))
    ex = run_child(python_argv(script), cwd=cwd, timeout_s=60, limits=SandboxLimits(), confine=True)
    assert ex.kind == ExitKind.ok, ex.stderr
    assert "carried 42 no_user_site 1" in ex.stdout and "cwd not on the path" in ex.stdout, ex.stdout
    assert python_argv(script, "m.json")[0] == sys.executable and python_argv(script, "m.json")[-1] == "m.json"


def test_without_pythonpath_the_carried_module_is_missing(tmp_path, monkeypatch):
    # the check above is not vacuous: the module comes from PYTHONPATH and nowhere else
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    ex = run_child(python_argv(script), cwd=tmp_path, timeout_s=60, limits=SandboxLimits(), confine=True)
    assert ex.kind == ExitKind.nonzero and "No module named 'kscout_carried_dep'" in ex.stderr
