#!/usr/bin/env bash
# Runs the side-by-side benchmark (benches/compare.rs): every (workload,
# contender) pair R times, each run in its own process under /usr/bin/time,
# then writes BENCHMARKS.md and bench/chart.svg with bench/chart.py.
#
#   bench/run.sh                      # R=5 runs of every pair, full sizes
#   R=3 bench/run.sh                  # fewer runs
#   WORKLOADS="W1 W5" CONTENDERS="wpxt tokio-joinset" bench/run.sh
#   JOBS=1000 R=1 bench/run.sh        # quick try at small sizes (--jobs for every pair)
#   WORKLOADS=W7 bench/run.sh         # one workload: W1..W7 (`compare list` gives the pairs)
#
# W7 (head-of-line latency) counts its trivial jobs with --jobs, 50 a round:
# JOBS=1000 is its full size (20 rounds); its RESULT lines give p50_us, p99_us
# and max_us instead of ns_per_job.
#
# Environment: R (runs per pair, default 5), WORKLOADS, CONTENDERS (space
# separated filters, default all), JOBS (passed as --jobs), RUN_TIMEOUT
# (seconds per run, default 300), RESULTS (raw results file, default
# target/bench/results.txt), NO_CHART=1 to skip writing BENCHMARKS.md.
set -euo pipefail

cd "$(dirname "$0")/.."
R=${R:-5}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
RESULTS=${RESULTS:-target/bench/results.txt}
META=${RESULTS%.txt}.meta

if [ ! -x /usr/bin/time ]; then
    echo "bench/run.sh: /usr/bin/time is missing; peak RSS is measured with it." >&2
    echo "bench/run.sh: install it with: apt-get install -y time   (Debian package 'time')" >&2
    exit 1
fi
command -v python3 >/dev/null || { echo "bench/run.sh: python3 is needed for bench/chart.py" >&2; exit 1; }

# 1. Build once, with the bench profile, and find the executable.
echo "bench/run.sh: cargo bench --bench compare --no-run" >&2
BIN=$(cargo bench --bench compare --no-run --message-format=json |
    python3 -c '
import json, sys
exe = None
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "compare" and m.get("executable"):
        exe = m["executable"]
print(exe or "")
')
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    echo "bench/run.sh: could not find the compare bench executable" >&2
    exit 1
fi

# 2. The pairs, from the binary itself, filtered.
want() { # want LIST ITEM: ITEM is in the space separated LIST (or LIST is empty/all)
    [ -z "$1" ] || [ "$1" = all ] && return 0
    case " $1 " in *" $2 "*) return 0 ;; esac
    return 1
}
mapfile -t PAIRS < <("$BIN" list | while read -r w c; do
    if want "${WORKLOADS:-}" "$w" && want "${CONTENDERS:-}" "$c"; then echo "$w $c"; fi
done)
[ ${#PAIRS[@]} -gt 0 ] || { echo "bench/run.sh: no pair matches WORKLOADS/CONTENDERS" >&2; exit 1; }
EXTRA=()
[ -n "${JOBS:-}" ] && EXTRA=(--jobs "$JOBS")

mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc=$(nproc)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
    echo "mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null || echo unknown)"
    echo "kernel=$(uname -srm)"
    echo "rustc=$(rustc -V)"
    echo "cargo=$(cargo -V)"
    echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "runs=$R"
    echo "jobs_override=${JOBS:-}"
    echo "workloads=${WORKLOADS:-all}"
    echo "contenders=${CONTENDERS:-all}"
} >"$META"

# 3. Run: round-robin over the pairs R times, so noise spreads over all pairs.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
total=$((R * ${#PAIRS[@]}))
k=0
for r in $(seq 1 "$R"); do
    for pair in "${PAIRS[@]}"; do
        read -r w c <<<"$pair"
        k=$((k + 1))
        rc=0
        /usr/bin/time -f 'TIME %e %M' -o "$tmp/time" \
            timeout "$RUN_TIMEOUT" "$BIN" "$w" "$c" "${EXTRA[@]}" >"$tmp/out" 2>"$tmp/err" || rc=$?
        line=$(grep '^RESULT' "$tmp/out" | tail -n 1 || true)
        if [ -z "$line" ]; then
            why=$(tail -n 1 "$tmp/err" | tr -d '"' | cut -c1-120)
            line="RESULT workload=$w contender=$c ok=false error=\"exit $rc: $why\""
        fi
        read -r wall maxrss < <(grep '^TIME' "$tmp/time" | tail -n 1 | cut -d' ' -f2-3) || true
        line="$line run=$r wall_s=${wall:-0} maxrss_kb=${maxrss:-0}"
        echo "$line" >>"$RESULTS"
        printf '[%d/%d] %s\n' "$k" "$total" "$line" >&2
    done
done

echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$META"

# 4. Report.
if [ -z "${NO_CHART:-}" ]; then
    python3 bench/chart.py --results "$RESULTS" --meta "$META" \
        --out BENCHMARKS.md --svg bench/chart.svg --notes bench/notes.md
    echo "bench/run.sh: wrote BENCHMARKS.md and bench/chart.svg (raw results: $RESULTS)" >&2
fi
