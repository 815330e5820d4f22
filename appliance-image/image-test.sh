#!/usr/bin/env bash
# `make image-test`: builds the appliance image from the package and boots it in qemu under
# software emulation (no KVM needed). The first boot sets the node up unattended as a province
# (flags in the EFI partition's youke-setup.conf); the test waits for the portal's /readyz
# through qemu's forwarded port and for the first-boot status line on the serial console
# naming the role. Prints the image size and the boot time (docs/OPERATIONS.md records them).
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:-}
need=(qemu-system-x86 qemu-utils ovmf mtools dosfstools fdisk debootstrap)
missing=()
for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "image-test: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ -z "$deb" ]; then
  cargo deb -p youke-node >/dev/null
  deb=$(ls -t target/debian/youke_*.deb | head -1)
fi
work=$(mktemp -d /tmp/youke-image-test.XXXXXX)
qemu_pid=""
cleanup() { if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT
image="$work/youke.qcow2"
t0=$(date +%s)
YOUKE_SETUP_ARGS="--role province --name 测试省优课中心" appliance-image/build.sh "$deb" "$image"
cp "$image" target/youke-appliance.qcow2
size=$(du -h "$image" | cut -f1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
echo "== $(date +%T) boot in qemu (TCG), portal forwarded to 127.0.0.1:$port"
t1=$(date +%s)
qemu-system-x86_64 -machine q35 -accel tcg -m 1536 -smp 2 \
  -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
  -drive if=pflash,format=raw,file="$work/vars.fd" \
  -drive file="$image",if=virtio,format=qcow2 \
  -nic user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:"$port"-:8080 \
  -display none -monitor none -serial file:"$work/serial.log" &
qemu_pid=$!
deadline=$(( $(date +%s) + ${YOUKE_IMAGE_BOOT_SECONDS:-900} ))
ready=""
while [ "$(date +%s)" -lt "$deadline" ]; do
  if ! kill -0 "$qemu_pid" 2>/dev/null; then break; fi
  if [ -z "$ready" ] && curl -fsS "http://127.0.0.1:$port/readyz" >"$work/ready.json" 2>/dev/null; then
    ready=$(( $(date +%s) - t1 ))
    echo "== portal ready after ${ready} s: $(cat "$work/ready.json")"
  fi
  if [ -n "$ready" ] && grep -q 'youke-firstboot: status' "$work/serial.log" 2>/dev/null; then break; fi
  sleep 5
done
cp "$work/serial.log" target/youke-appliance-serial.log 2>/dev/null || true
[ -n "$ready" ] || { tail -40 "$work/serial.log"; echo "image-test: the portal did not answer"; exit 1; }
line=$(grep -a 'youke-firstboot: status' "$work/serial.log" | tail -1)
echo "$line" | grep -q '"role": "province"' || { tail -40 "$work/serial.log"; echo "image-test: youke status did not report the province role"; exit 1; }
curl -fsS "http://127.0.0.1:$port/" | grep -q '测试省优课中心' || { echo "image-test: the portal does not show the node's name"; exit 1; }
echo "image-test: ok. image $size (qcow2), built in $((t1 - t0)) s, portal ready $ready s after power-on (TCG), youke status: role province"
