"""The SDKs' own test suites, plain and under tokenspy (issue 19, item 1).

    python benchmarks/sdk_suites.py [openai anthropic google-genai] [--cache .sdk-suites] [-n 2]

For each SDK at the version installed in this interpreter: download its source distribution
(the tests ship in it, already wired to httpx2), unpack it into the cache, build one venv there
with tokenspy (this checkout, editable), the three SDKs installed from those very sources, and
what their tests need, then run each suite twice, changing nothing in it:

- plain: ``-p no:tokenspy`` (tokenspy installed but not loaded);
- tokenspy: ``--tokenspy=DB`` and, before pytest starts, a session-wide
  ``tokenspy.init(persist=True)`` from a ``sitecustomize`` on PYTHONPATH (an app that imports
  tokenspy at module level, as real code does).

Outcomes come from ``--junitxml``. Prints per suite the counts of each run and every test
whose outcome differs; exits 1 if any does. Left out of both runs: the openai and anthropic
``tests/api_resources``, which need Stainless' Prism mock server (see ``_NEEDS_PRISM``).
Network: PyPI (through pip) the first time only.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# tests/api_resources of the Stainless SDKs talk to Stainless' Prism mock server of the OpenAPI
# spec (scripts/mock: fetched from npm and the spec's URL); without it each test retries its
# connection with backoff sleeps and fails, in both runs alike. Left out: they need the network.
_NEEDS_PRISM = ("--ignore=tests/api_resources",)
# distribution -> (tests directory inside the unpacked sdist, extra pytest options)
SUITES: dict[str, tuple[str, tuple[str, ...]]] = {
    "openai": ("tests", _NEEDS_PRISM),
    "anthropic": ("tests", _NEEDS_PRISM),
    # the tests live inside the namespace package google.genai: without this option pytest
    # imports them as a top-level "genai" package and the SDK they exercise is another copy
    "google-genai": ("google/genai/tests", ("-o", "consider_namespace_packages=true")),
}
# What the suites import beyond the SDKs (their dev dependency groups, minus type checkers,
# linters and stubs). Each is installed on its own: one the index lacks costs only its tests.
TEST_DEPS = (
    "pytest", "pytest-asyncio", "pytest-xdist", "respx", "dirty-equals", "time-machine",
    "inline-snapshot", "hypothesis", "rich", "opentelemetry-sdk", "http-snapshot[httpx]", "trio",
    "Pillow", "nest_asyncio", "pytest-mock", "aiohttp", "packaging", "importlib-metadata",
    "griffe", "pandas", "numpy", "mcp", "google-auth", "tenacity",
    # the extras their tests exercise: realtime (websockets < 16: newer ones deprecate what
    # it uses, an error under the suite's filterwarnings = error) and bedrock (both SDKs)
    "websockets>=13,<16", "botocore", "boto3",
)

SITECUSTOMIZE = '''\
# written by benchmarks/sdk_suites.py: tokenspy on for the whole process, before pytest starts
import os

if os.environ.get("TOKENSPY_SUITE_DIR"):
    import tokenspy

    tokenspy.init(persist=True, persist_dir=os.environ["TOKENSPY_SUITE_DIR"])
'''


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, text=True, **kw)  # type: ignore[call-overload,no-any-return]


def fetch(dist: str, version: str, cache: Path) -> Path:
    """The unpacked sdist of ``dist==version`` (downloaded once)."""
    norm = dist.replace("-", "_")
    src = cache / "src" / f"{norm}-{version}"
    if src.is_dir():
        return src
    dl = cache / "dl"
    dl.mkdir(parents=True, exist_ok=True)
    archive = next(dl.glob(f"{norm}-{version}.tar.gz"), None)
    if archive is None:
        # --no-binary for this one only: its build dependencies may come as wheels
        run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", dist,
             f"{dist}=={version}", "-d", str(dl)], check=True)
        archive = next(dl.glob(f"{norm}-{version}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(cache / "src", filter="data")
    return src


def venv(cache: Path, sources: dict[str, Path]) -> Path:
    """The suites' interpreter: a venv with tokenspy, the SDKs from ``sources``, the test deps."""
    env_dir = cache / "venv"
    python = env_dir / "bin" / "python"
    stamp = env_dir / "installed.txt"
    want = "\n".join([str(ROOT), *map(str, sources.values()), *TEST_DEPS])
    if stamp.exists() and stamp.read_text() == want:
        return python
    run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    run([*pip, "-e", str(ROOT), *(f"-e{p}" for p in sources.values()), "httpx2"], check=True)
    for dep in TEST_DEPS:  # one by one: a missing one must not stop the others
        if run([*pip, dep]).returncode:
            print(f"  (could not install {dep}: its tests will fail or skip in both runs)")
    stamp.write_text(want)
    return python


def outcomes(junit: Path) -> dict[str, str]:
    """test id -> passed/failed/error/skipped, from a junit XML report."""
    result: dict[str, str] = {}
    if not junit.exists():
        return result
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = {"failure": "failed"}.get(child.tag, child.tag)
                if kind == "error" and result.get(test_id) == "passed":
                    kind = "error(teardown)"
        result[test_id] = kind
    return result


def run_suite(python: Path, src: Path, dist: str, mode: str, jobs: int, out: Path) -> dict[str, str]:
    tests, extra = SUITES[dist]
    junit = out / f"{dist}-{mode}.xml"
    junit.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKENSPY", "PYTEST"))}
    cmd = [str(python), "-m", "pytest", tests, *extra, "-p", "no:cacheprovider", "-q", "--tb=line",
           "-n", str(jobs), f"--junitxml={junit}", "-o", "addopts="]
    # the suites' own addopts, minus -n/--durations (set here) so that both runs are alike
    addopts = _addopts(src)
    cmd += addopts
    if mode == "plain":
        cmd += ["-p", "no:tokenspy"]
    else:
        data = out / f"{dist}-data"
        data.mkdir(parents=True, exist_ok=True)
        (data / "usage.db").unlink(missing_ok=True)
        site = out / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        env["TOKENSPY_SUITE_DIR"] = str(data)
        cmd += [f"--tokenspy={data / 'usage.db'}"]
    proc = run(cmd, cwd=src, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    (out / f"{dist}-{mode}.log").write_text(proc.stdout)
    tail = proc.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(f"  {mode}: exit {proc.returncode}: {tail[0]}")
    return outcomes(junit)


def _addopts(src: Path) -> list[str]:
    import shlex

    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    opts = tomllib.loads((src / "pyproject.toml").read_text()).get("tool", {}).get("pytest", {})
    raw = shlex.split(opts.get("ini_options", {}).get("addopts", ""))
    keep: list[str] = []
    skip_next = False
    for arg in raw:
        if skip_next:
            skip_next = False
        elif arg in ("-n", "--dist"):
            skip_next = True
        elif not arg.startswith(("--durations", "--tb")):
            keep.append(arg)
    return keep


def counts(result: dict[str, str]) -> str:
    by: dict[str, int] = {}
    for kind in result.values():
        by[kind] = by.get(kind, 0) + 1
    return f"{len(result)} run: " + ", ".join(f"{n} {k}" for k, n in sorted(by.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sdks", nargs="*", help=f"some of {', '.join(SUITES)} (default: all)")
    ap.add_argument("--cache", type=Path, default=ROOT / ".sdk-suites")
    ap.add_argument("-n", "--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    unknown = set(args.sdks) - set(SUITES)
    if unknown:
        ap.error(f"unknown SDK(s): {', '.join(sorted(unknown))}")
    cache: Path = args.cache.resolve()
    versions = {d: importlib.metadata.version(d) for d in SUITES}
    sources = {d: fetch(d, v, cache) for d, v in versions.items()}
    python = venv(cache, sources)
    out = cache / "runs"
    out.mkdir(parents=True, exist_ok=True)
    differing = 0
    report = []
    for dist in args.sdks or SUITES:
        print(f"== {dist} {versions[dist]}", flush=True)
        plain = run_suite(python, sources[dist], dist, "plain", args.jobs, out)
        spied = run_suite(python, sources[dist], dist, "tokenspy", args.jobs, out)
        diffs = sorted(t for t in plain.keys() | spied.keys() if plain.get(t) != spied.get(t))
        differing += len(diffs)
        report.append(f"{dist} {versions[dist]}\n  plain:    {counts(plain)}\n  tokenspy: {counts(spied)}\n"
                      f"  differences: {len(diffs)}")
        report += [f"    {t}: {plain.get(t, 'absent')} -> {spied.get(t, 'absent')}" for t in diffs]
    print("\n".join(report))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
