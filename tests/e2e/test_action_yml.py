"""action.yml's contract: composite, every input used, every output set, the install step."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import ENTRYPOINT, ROOT, load_action, make_db, parse_env_file
from tokenspy.ci.settings import INPUT_ENV


def _steps_text(action: dict) -> str:
    import yaml

    return yaml.safe_dump(action["runs"]["steps"])


def test_composite_with_name_description_branding():
    action = load_action()
    assert action["name"] and action["description"]
    assert action["branding"]["icon"] and action["branding"]["color"]
    assert action["runs"]["using"] == "composite"
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert step.get("shell") == "bash", step["id"]
        else:
            assert re.fullmatch(r"actions/[a-z-]+@v\d+", step["uses"]), step["uses"]
    assert action["inputs"]["current-db"]["default"] == ".tokenspy/usage.db"
    assert action["inputs"]["fail-on-regression"]["default"] == "true"
    assert action["inputs"]["github-token"]["default"] == "${{ github.token }}"
    assert action["inputs"]["baseline"]["default"] == "auto"
    assert action["inputs"]["comment"]["default"] == "update"
    assert action["inputs"]["accept-label"]["default"] == "tokenspy:accept"


def test_every_input_is_used_and_passed_explicitly():
    action = load_action()
    text = _steps_text(action)
    for name in action["inputs"]:
        assert f"inputs.{name}" in text, f"input {name} is not used by any step"
    env = action["runs"]["steps"][[s.get("id") for s in action["runs"]["steps"]].index("tokenspy")]["env"]
    for name, var in INPUT_ENV.items():
        assert env.get(var) == f"${{{{ inputs.{name} }}}}", f"{name} must reach Python as {var}"
    assert "INPUT_" not in text  # composite actions get no implicit INPUT_* variables
    assert set(INPUT_ENV) | {"python-version"} == set(action["inputs"])


def test_outputs_mirror_the_step_and_python_sets_every_one(runner, gh):
    action = load_action()
    for name, spec in action["outputs"].items():
        step = "install" if name == "version" else "tokenspy"  # the version is the install step's
        assert spec["value"] == f"${{{{ steps.{step}.outputs.{name} }}}}", name
        assert spec.get("description")
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=2.0)
    make_db(runner.workspace / "b.db", commit="1" * 40)
    result = runner.run({"baseline-db": "b.db"})
    assert result.returncode == 1
    missing = set(action["outputs"]) - set(result.outputs) - {"version"}
    assert not missing, f"outputs never set by the Python entry: {missing}"
    for name in ("current-total-usd", "baseline-total-usd", "delta-usd", "delta-pct", "regressions", "verdict",
                 "report-path", "baseline-source", "comment-status", "comment-url"):
        assert result.action_outputs[name], name


def test_entrypoint_is_short_strict_bash_and_never_prints_inputs():
    text = ENTRYPOINT.read_text()
    code = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "set -euo pipefail" in code
    assert "python -m tokenspy.ci.action" in text.replace('"$python"', "python")
    assert len(code) <= 30
    assert "TOKENSPY_GITHUB_TOKEN" not in text
    assert not re.search(r"\b(echo|printf)\b[^\n]*\$TOKENSPY_", text)
    assert subprocess.run(["bash", "-n", str(ENTRYPOINT)]).returncode == 0


def _stub_python(tmp_path: Path, pip_rc: int = 0) -> tuple[Path, Path]:
    """``python3`` on PATH (and ``setup-python3``, standing in for setup-python's interpreter)
    that make a venv whose python logs its argv instead of running pip."""
    bindir = tmp_path / "stub-bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    for name in ("python3", "setup-python3"):
        (bindir / name).write_text(f"""#!/usr/bin/env bash
echo "{name} $*" >> {log}
if [[ "$1" == "-c" ]]; then echo 3.12.1; fi
if [[ "$1 $2" == "-m venv" ]]; then
  mkdir -p "$4/bin"
  printf '#!/usr/bin/env bash\\necho "venv-python $*" >> {log}\\n' > "$4/bin/python"
  printf 'if [[ "$1" == "-c" ]]; then echo 9.9.9; fi\\nexit {pip_rc}\\n' >> "$4/bin/python"
  chmod +x "$4/bin/python"
fi
""")
        (bindir / name).chmod(0o755)
    return bindir, log


def _run_install(runner, tmp_path: Path, pip_rc: int = 0, python_version: str = "", cache_hit: str = ""):
    """The python step, then the install step (actions/cache's cache-hit as given)."""
    bindir, log = _stub_python(tmp_path, pip_rc)
    run_dir = tmp_path / "install-run"
    run_dir.mkdir()
    env = runner.runner_env(run_dir)
    env["PATH"] = f"{bindir}:/usr/bin:/bin"
    setup = {"python-path": str(bindir / "setup-python3")} if python_version else {}
    ctx = runner.context({"python-version": python_version}, {"setup-python": setup})
    proc = runner.run_step("python", ctx, env, run_dir)
    assert proc.returncode == 0, proc.stderr
    py = parse_env_file((run_dir / "output.txt").read_text())
    (run_dir / "output.txt").write_text("")
    ctx = runner.context({"python-version": python_version},
                         {"setup-python": setup, "python": py, "cache": {"cache-hit": cache_hit}})
    proc = runner.run_step("install", ctx, env, run_dir)
    return proc, log.read_text() if log.exists() else "", parse_env_file((run_dir / "output.txt").read_text())


def test_install_step_installs_the_actions_own_checkout_into_a_venv(runner, tmp_path):
    proc, calls, outputs = _run_install(runner, tmp_path)
    assert proc.returncode == 0, proc.stderr
    venv = runner.temp / "tokenspy-action-venv"
    assert f"python3 -m venv --clear {venv}" in calls
    assert f"venv-python -m pip install --quiet --disable-pip-version-check {ROOT}" in calls
    assert outputs == {"python": f"{venv}/bin/python", "version": "9.9.9"}
    assert "pypi" not in calls.lower() and "tokenspy==" not in calls  # from its own path, not a registry


def test_install_step_uses_setup_pythons_interpreter(runner, tmp_path):
    step = runner.step("setup-python")
    assert step["if"] == "inputs.python-version != ''"
    assert step["with"] == {"python-version": "${{ inputs.python-version }}", "update-environment": False}
    proc, calls, _ = _run_install(runner, tmp_path, python_version="3.12")
    assert proc.returncode == 0, proc.stderr
    assert "setup-python3 -m venv" in calls and "\npython3 " not in "\n" + calls


def test_install_step_fails_when_pip_fails(runner, tmp_path):
    proc, _, outputs = _run_install(runner, tmp_path, pip_rc=1)
    assert proc.returncode != 0
    assert "python" not in outputs


def test_entrypoint_uses_the_installed_python(runner, gh, fp):
    """The main step's command line as the runner runs it, with pytest-subprocess standing in for
    bash: the script gets the venv's python and the inputs as TOKENSPY_* variables, not the token
    in argv."""
    step = runner.step("tokenspy")
    ctx = runner.context({"max-increase-pct": "5"}, {"install": {"python": "/venv/bin/python"}})
    from conftest import render

    script = render(step["run"], ctx)
    env = {k: render(str(v), ctx) for k, v in step["env"].items()}
    fp.register(["bash", "--noprofile", "--norc", "-eo", "pipefail", fp.any()], returncode=0)
    subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], env=env, check=True)
    [call] = fp.calls
    assert gh.token not in " ".join(map(str, call))
    assert script == 'bash "$ACTION_PATH/entrypoint.sh"'
    assert env["ACTION_PATH"] == str(ROOT)
    assert env["TOKENSPY_PYTHON"] == "/venv/bin/python"
    assert env["TOKENSPY_MAX_INCREASE_PCT"] == "5"
    assert env["TOKENSPY_GITHUB_TOKEN"] == gh.token


def test_upload_step_saves_the_snapshot_under_the_artifact_name():
    action = load_action()
    [upload] = [s for s in action["runs"]["steps"] if s.get("id") == "upload"]
    assert upload["uses"] == "actions/upload-artifact@v4"
    assert upload["if"] == "steps.tokenspy.outputs.artifact-path != ''"
    assert upload["with"]["name"] == "${{ inputs.artifact-name }}"
    assert upload["with"]["path"] == "${{ steps.tokenspy.outputs.artifact-path }}"


def test_workflows_use_the_action_with_matching_permissions():
    import yaml

    cost = yaml.safe_load((ROOT / ".github/workflows/cost.yml").read_text())
    assert cost["permissions"] == {"contents": "read", "pull-requests": "write", "actions": "read"}
    steps = cost["jobs"]["cost"]["steps"]
    [gate] = [s for s in steps if s.get("uses") == "./"]
    assert set(gate.get("with", {})) <= set(load_action()["inputs"])
    assert any("--tokenspy" in s.get("run", "") and "examples/cost-suite" in s.get("run", "") for s in steps)
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    assert ci["jobs"]["test"]["strategy"]["matrix"]["python-version"] == ["3.10", "3.11", "3.12", "3.13"]


def test_cached_venv_refreshes_only_tokenspy(runner, tmp_path):
    # actions/cache restored the venv (keyed on the action's ref and the Python version): the
    # dependencies are there, tokenspy itself is reinstalled from the checkout without them.
    step = runner.step("cache")
    assert step["uses"] == "actions/cache@v4"
    assert "github.action_ref" in step["with"]["key"] and "steps.python.outputs.version" in step["with"]["key"]
    venv = runner.temp / "tokenspy-action-venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "cached.log"
    (venv / "bin" / "python").write_text(f'#!/usr/bin/env bash\necho "cached $*" >> {log}\n'
                                         'if [[ "$1" == "-c" ]]; then echo 9.9.9; fi\n')
    (venv / "bin" / "python").chmod(0o755)
    proc, calls, outputs = _run_install(runner, tmp_path, cache_hit="true")
    assert proc.returncode == 0, proc.stderr
    cached = log.read_text()
    assert ("cached -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "
            f"{ROOT}") in cached
    assert "python3 -m venv" not in calls
    assert outputs["version"] == "9.9.9"


def test_readme_workflow_works_as_written():
    # The README's YAML: no tokenspy from PyPI (no such release of ours), the action's own ref
    # instead; the labeled/unlabeled trigger the accept label needs; only real inputs.
    import yaml

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Use in your workflow", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    wf = yaml.safe_load(block)
    assert {"labeled", "unlabeled"} <= set(wf[True]["pull_request"]["types"])  # YAML 1.1: on -> True
    steps = wf["jobs"]["cost"]["steps"]
    installs = [s["run"] for s in steps if "pip install" in s.get("run", "")]
    assert installs and all(re.search(r"\btokenspy @ git\+https://github\.com/OWNER/tokenspy@v0", r) for r in installs)
    assert not any(re.search(r"(?<![@/\w-])tokenspy(==|\s|$)", r.replace('"tokenspy @', '')) for r in installs)
    [gate] = [s for s in steps if str(s.get("uses", "")).startswith("OWNER/tokenspy@")]
    assert gate["uses"] == "OWNER/tokenspy@v0"
    assert set(gate.get("with") or {}) <= set(load_action()["inputs"])
    for name in re.findall(r"#\s*([a-z-]+):", block.split("with:", 1)[1]):
        assert name in load_action()["inputs"], name
