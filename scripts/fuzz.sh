#!/usr/bin/env bash
# Runs each cargo-fuzz target for FUZZ_SECONDS (default 60) from the committed seed corpus
# (fuzz/corpus/<target>); new interesting inputs go to fuzz/corpus-work/<target> (not in git),
# crashes to fuzz/artifacts/<target>. Needs a nightly toolchain if one is installed, otherwise
# uses the stable one with RUSTC_BOOTSTRAP=1 (the sanitizer flags are nightly-only).
#   make fuzz                      every target, 60 s each
#   FUZZ_SECONDS=600 make fuzz     ten minutes each
#   FUZZ_TARGETS=names make fuzz   one target
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"federation_message names config srt ingest http_head fast_path"}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi
for t in $targets; do
    mkdir -p "fuzz/corpus-work/$t" "fuzz/artifacts/$t"
    echo "== fuzzing $t for ${secs}s"
    started=$(date +%s)
    set +e
    cargo "${toolchain[@]}" fuzz run "$t" "fuzz/corpus-work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 > "fuzz/artifacts/$t/last-run.log" 2>&1
    status=$?
    set -e
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|INFO: Seed)|panicked|ERROR' "fuzz/artifacts/$t/last-run.log" || true
    echo "== $t: exit $status after $(( $(date +%s) - started ))s"
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $t failed; see fuzz/artifacts/$t/" >&2
        exit "$status"
    fi
done
