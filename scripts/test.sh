#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, type-check, lint, then every test file under
# the node test runner (its summary closes the output). A type or lint failure fails the run, but the tests
# still run, so one report shows everything.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh || exit 1
status=0
pnpm -s typecheck || { echo "typecheck failed"; status=1; }
pnpm -s lint || { echo "lint failed"; status=1; }
node scripts/test.mjs "$@" || status=1
exit "$status"
