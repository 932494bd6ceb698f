#!/usr/bin/env bash
# Checks the alert rules: extracts the PrometheusRule's spec (a plain Prometheus rules file),
# runs `promtool check rules` on it and `promtool test rules` on the unit tests in
# k8s/base/monitoring/tests. Usage: check_rules.sh [REPO_ROOT]. Exit status: non-zero on any
# failure, or when promtool or python3's yaml module is missing.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
rule=$root/k8s/base/monitoring/prometheusrule.yaml
tests=$root/k8s/base/monitoring/tests
command -v promtool >/dev/null || { echo "promtool is not installed (apt-get install prometheus)"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ddsplit-rules.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 - "$rule" "$work/ddsplit-rules.yaml" <<'PY'
import sys, yaml
with open(sys.argv[1]) as f:
    doc = yaml.safe_load(f)
assert doc["kind"] == "PrometheusRule", "not a PrometheusRule"
assert set(doc["spec"]) == {"groups"}, "spec must be a plain rules file (groups only)"
with open(sys.argv[2], "w") as f:
    yaml.safe_dump(doc["spec"], f, sort_keys=False)
PY
promtool check rules "$work/ddsplit-rules.yaml"
shopt -s nullglob
test_files=("$tests"/*.yaml)
((${#test_files[@]})) || { echo "no rule tests under $tests"; exit 1; }
cp "${test_files[@]}" "$work/"
cd "$work"
for t in "${test_files[@]}"; do
  promtool test rules "$(basename "$t")"
done
# Every alert has at least one unit test.
for alert in $(python3 -c "
import yaml,sys
for g in yaml.safe_load(open('ddsplit-rules.yaml'))['groups']:
    for r in g['rules']:
        if 'alert' in r: print(r['alert'])"); do
  grep -q "alertname: $alert\$" "${test_files[@]}" || { echo "alert $alert has no promtool test"; exit 1; }
done
echo "rules ok"
