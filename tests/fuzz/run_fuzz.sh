#!/usr/bin/env bash
# Runs one libFuzzer target: first every input of the seed corpus (the
# regression cases), then fuzzing for MURI_FUZZ_SECONDS (default 30).
# New inputs go to the work folder, never into the source tree; a crash is
# written there as crash-<sha1> and fails the test, with the command that
# reproduces it.
#   run_fuzz.sh TARGET SEED_CORPUS WORK_DIR
set -uo pipefail
exe=$1 seeds=$2 work=$3
secs=${MURI_FUZZ_SECONDS:-30}
mkdir -p "$work/corpus" "$work/artifacts" "$seeds"
"$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" "$seeds" 2>"$work/log"
rc=$?
tail -n 12 "$work/log"
if [ $rc -ne 0 ]; then
  echo "fuzz target $(basename "$exe") failed (exit $rc); its log is $work/log"
  for a in "$work"/artifacts/*; do
    [ -e "$a" ] || continue
    echo "reproduce: $exe $a   (then copy it into $seeds/ as a regression case)"
  done
fi
exit $rc
