# Sourced by the report series (serving_reports.sh, after_export.sh): from the checkout's root, no analytics, and
# `step`, which runs one report and keeps going when it fails or its verdicts are not all met; `finish` says which.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[1]}")/.."
export BENTOML_DO_NOT_TRACK=true
PY=${PY:-.venv/bin/python}
failed=()
step() { echo "== $(date -u +%H:%M:%S) $*"; "$@" || failed+=("$*"); }
finish() { [ ${#failed[@]} -eq 0 ] || { printf 'failed or verdicts not met (see the reports): %s\n' "${failed[@]}"; exit 1; }; }
