#!/usr/bin/env bash
# Installs the deploy tests' npm packages (the exact versions in package-lock.json) into
# tests/deploy/node_modules. Skipped while node_modules matches the lock file, so the release and
# the sanitizer test runs install once. Run by CTest as the setup of the deploy tests.
set -euo pipefail
cd "$(dirname "$0")"
exec 9>"${TMPDIR:-/tmp}/ddsplit-deploy-npm.lock"
flock 9
stamp=node_modules/.ddsplit-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  echo "tests/deploy/node_modules matches package-lock.json"
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
