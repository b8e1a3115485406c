#!/usr/bin/env bash
# Two builds of `cloverleaf` compared on the multinode order-to-cash run, in adjacent pairs.
#
#   api/tests/multinode/ab.sh PAIRS BINARY_A BINARY_B
#
# BINARY_A and BINARY_B are release binaries of `cloverleaf` (copied aside after each build: the
# first with the change stashed, the second with it). Each pair runs A then B under one release
# test binary (`cargo build --release -p cloverleaf --tests` first), 4,000 orders with at most 800
# open unless CLOVERLEAF_MULTINODE_ORDERS and CLOVERLEAF_MULTINODE_MAX_OPEN say otherwise, and
# prints each run's pace, CPU and transactions an order, then the means. A machine shared with
# others drifts by up to a factor of two within hours: compare within pairs, never across days.
# The binary the build left in target/release is put back at the end (cargo would otherwise take
# the last one copied for its own build). Each run's whole report stays in $AB_LOGS (a new
# temporary directory unless set).
set -euo pipefail

if [ $# -ne 3 ] || [ ! -x "$2" ] || [ ! -x "$3" ]; then
  echo "usage: $0 PAIRS BINARY_A BINARY_B (two executable cloverleaf release binaries)" >&2
  exit 2
fi
pairs=$1
builds=("$2" "$3")
root="$(cd "$(dirname "$0")/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
test_binary=$(ls -t "$target"/release/deps/multinode-* 2>/dev/null | grep -v '\.d$' | head -n1 || true)
if [ -z "$test_binary" ]; then
  echo "no release multinode test binary under $target: run cargo build --release -p cloverleaf --tests" >&2
  exit 2
fi
logs="${AB_LOGS:-$(mktemp -d)}"
mkdir -p "$logs"
kept="$logs/cloverleaf.kept"
cp -p "$target/release/cloverleaf" "$kept"
trap 'cp -p "$kept" "$target/release/cloverleaf"' EXIT

export CLOVERLEAF_MULTINODE_ORDERS="${CLOVERLEAF_MULTINODE_ORDERS:-4000}"
export CLOVERLEAF_MULTINODE_MAX_OPEN="${CLOVERLEAF_MULTINODE_MAX_OPEN:-800}"
echo "test binary $test_binary; reports in $logs"
printf '%-5s %-2s %10s %14s %14s %10s\n' pair ab 'orders/s' 'p10-90 /s' 'CPU ms/order' 'tx/order'
for pair in $(seq 1 "$pairs"); do
  for side in 0 1; do
    name=$([ $side -eq 0 ] && echo A || echo B)
    cp "${builds[$side]}" "$target/release/cloverleaf"
    log="$logs/$pair-$name.log"
    # The test runs from api/, as cargo runs it.
    (cd "$root/api" && "$test_binary" --nocapture) >"$log" 2>&1 || {
      echo "pair $pair, $name: the run failed (see $log)" >&2
      exit 1
    }
    overall=$(grep -oP 'in [\d.]+ s: \K[\d.]+(?= orders/s)' "$log")
    steady=$(grep -oP '^\s+\K[\d.]+(?= orders/s from the 10th)' "$log")
    cpu=$(grep -oP '[\d.]+(?= ms per order)' "$log")
    transactions=$(grep -oP 'reads included\), \K[\d.]+(?= per order)' "$log")
    printf '%-5s %-2s %10s %14s %14s %10s\n' "$pair" "$name" "$overall" "$steady" "$cpu" "$transactions"
    echo "$name $overall $steady $cpu $transactions" >>"$logs/figures"
  done
done
awk '{ n[$1]++; o[$1]+=$2; s[$1]+=$3; c[$1]+=$4; t[$1]+=$5 }
     END { for (k in n) printf "mean  %-2s %10.1f %14.1f %14.1f %10.1f\n", k, o[k]/n[k], s[k]/n[k], c[k]/n[k], t[k]/n[k] }' \
  "$logs/figures" | sort
