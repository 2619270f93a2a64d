#!/usr/bin/env bash
# tokenspy GitHub Action: run the Python entry and map its verdict to the step's exit code.
#
# action.yml passes the inputs as TOKENSPY_* environment variables; everything of substance
# (settings, baseline, diff, comment) is in src/tokenspy/ci/action.py. This script never prints
# the inputs: one of them is the token.
#
# Exit codes: 0 verdict pass, 1 verdict fail (fail-on-regression), 2 usage error (reported by
# Python as one ::error:: line), 3 the Python entry stopped without a verdict.
set -euo pipefail

python="${TOKENSPY_PYTHON:-}"
if [[ -z "$python" ]]; then
  python="$(command -v python3 || command -v python || true)"
fi
if [[ -z "$python" ]]; then
  echo "::error title=tokenspy::no Python interpreter found (set the python-version input)"
  exit 3
fi

verdict_file="$(mktemp "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/tokenspy-verdict.XXXXXX")"
trap 'rm -f "$verdict_file"' EXIT

rc=0
TOKENSPY_VERDICT_FILE="$verdict_file" "$python" -m tokenspy.ci.action || rc=$?
verdict="$(tr -d '[:space:]' < "$verdict_file")"

if [[ "$rc" -eq 2 ]]; then
  exit 2
fi
case "$verdict" in
  pass) exit 0 ;;
  fail) exit 1 ;;
esac
echo "::error title=tokenspy::the action stopped without a verdict (exit code $rc); see the log above"
exit 3
