#!/usr/bin/env bash
# vs-sox.sh — `understudy process` against sox on the same chain and input:
#   sox in.wav out.wav lowpass 1000 0.7071q gain -6
#   understudy process --in in.wav --out out.wav --chain "lowpass f=1000 q=0.7071 | gain db=-6"
# Medians of RUNS wall-clock runs each, alternating the two, on one input
# that sox itself generates (stereo 16-bit pink noise at 48 kHz, SECONDS
# long). Installs sox with apt-get when it is missing (root only).
#
#   bench/vs-sox.sh [SECONDS [RUNS]]     default 300 s, 5 runs
#
# Environment: UNDERSTUDY (default bin/understudy), UNDERSTUDY_WORKER
# (default bin/understudy-worker), WORK (scratch directory, default a new
# one under /tmp, removed at the end), EXTRA (more understudy process flags,
# e.g. "--block 1024").
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
runs=${2:-5}
us=${UNDERSTUDY:-bin/understudy}
worker=${UNDERSTUDY_WORKER:-bin/understudy-worker}
[ -x "$us" ] && [ -x "$worker" ] || { echo "vs-sox: $us or $worker is missing: run make all first" >&2; exit 2; }

if ! command -v sox >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "vs-sox: sox is missing: installing it with apt-get (apt-get install sox)" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sox >/dev/null
  else
    echo "vs-sox: sox is missing: install it (apt-get install sox) and run again" >&2
    exit 2
  fi
fi

own_work=0
if [ -z "${WORK:-}" ]; then WORK=$(mktemp -d); own_work=1; fi
trap '[ $own_work = 1 ] && rm -rf "$WORK"' EXIT
in=$WORK/in-${secs}s.wav
[ -f "$in" ] || sox -n -r 48000 -c 2 -b 16 "$in" synth "$secs" pinknoise vol 0.5

# Wall time of one command, in seconds, from the shell's own clock.
wall() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || { echo "vs-sox: failed: $*" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }

sox_t=() us_t=()
for ((i = 0; i < runs; i++)); do
  sox_t+=("$(wall sox "$in" "$WORK/out-sox.wav" lowpass 1000 0.7071q gain -6)")
  # shellcheck disable=SC2086
  us_t+=("$(wall "$us" process --worker "$worker" --in "$in" --out "$WORK/out-us.wav" \
    --chain "lowpass f=1000 q=0.7071 | gain db=-6" ${EXTRA:-})")
done
ms=$(printf '%s\n' "${sox_t[@]}" | median)
mu=$(printf '%s\n' "${us_t[@]}" | median)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "input: $secs s stereo 16-bit 48 kHz ($(nproc) CPUs, $cpu, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "sox runs (s):        ${sox_t[*]}"
echo "understudy runs (s): ${us_t[*]}"
awk -v s="$ms" -v u="$mu" 'BEGIN { printf "median: sox %.3f s, understudy %.3f s: understudy/sox = %.2f\n", s, u, u / s }'
