#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, type-check, lint, then every test file
# under the node test runner (its summary closes the output).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
pnpm -s typecheck
pnpm -s lint
node scripts/test.mjs "$@"
