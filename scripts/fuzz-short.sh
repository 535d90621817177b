#!/usr/bin/env bash
# Runs every Go fuzz target of the module briefly (FUZZTIME each, default
# 10s): enough in CI to catch regressions against the seed corpus and a
# little new ground. Longer runs: FUZZTIME=10m scripts/fuzz-short.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
status=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  grep -lq '^func Fuzz' "$dir"/*_test.go 2>/dev/null || continue
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    echo "fuzz: $pkg $target ($fuzztime)"
    if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/fuzz-$$.log 2>&1; then
      cat /tmp/fuzz-$$.log
      status=1
    fi
  done
done
rm -f /tmp/fuzz-$$.log
exit $status
