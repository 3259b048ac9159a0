#!/usr/bin/env bash
# Every benchmark of the README, once, one after another, on the built tree (npm run -s build
# first), each one's output in OUT/<name>.txt and on stdout. The README's figures come from one
# such session on a quiet machine; a bench run beside other work measures that work too.
#   test/bench/all.sh [OUT]        (as root; default OUT=/var/tmp/swarmlite-bench/<UTC time>)
#   BENCH_ONLY="start exec" test/bench/all.sh   runs only the named ones
# The OCI validation (test/bench/oci-validation.sh) counts rather than times and needs a
# runtime-tools tree: it is not run here.
set -u -o pipefail
cd "$(dirname "$0")/../.."
out=${1:-/var/tmp/swarmlite-bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
[ -f dist/test/bench/start.js ] || { echo "bench: build first (npm run -s build)" >&2; exit 2; }

# name, then the command's arguments (node dist/test/bench/<file>.js ARGS)
benches=(
  "cgroups|cgroups"
  "confine|confine"
  "network|network"
  "trust|trust"
  "remove|remove"
  "checkpoint|checkpoint"
  "codec|codec"
  "append|append"
  "audit|audit"
  "placement|placement"
  "exec|exec"
  "images|images"
  "archive|archive 25000"
  "oci-run|oci-run 15"
  "failover|failover 3 both"
  "fleet-loss|fleet-loss 2 both"
  "replay|replay"
  "start|start"
)
failed=0
echo "bench session: $(date -u +%FT%TZ), $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (uncommitted changes)'), node $(node --version), NODE_EXTRA_CA_CERTS $([ -n "${NODE_EXTRA_CA_CERTS:-}" ] && echo set || echo unset)" | tee "$out/session.txt"
for b in "${benches[@]}"; do
  name=${b%%|*}; args=${b#*|}; file=${args%% *}; rest=${args#"$file"}
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $name "* ]]; then continue; fi
  echo "== $name: node dist/test/bench/$file.js$rest ($(date -u +%T))" | tee -a "$out/session.txt"
  # shellcheck disable=SC2086
  if ! node "dist/test/bench/$file.js" $rest 2>&1 | tee "$out/$name.txt"; then
    echo "bench $name failed" | tee -a "$out/session.txt"; failed=$((failed + 1))
  fi
done
echo "bench session ended $(date -u +%FT%TZ): outputs in $out, $failed failed" | tee -a "$out/session.txt"
[ "$failed" = 0 ]
