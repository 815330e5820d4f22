#!/usr/bin/env bash
# The Debian package installed into a fresh Debian 12 root (debootstrap, no container): the
# youke user, /etc/youke/youke.toml, /var/lib/youke; a node initialized and served there answers
# /readyz and `youke status`; an upgrade keeps its lesson; purge removes data, config and user.
#
#   scripts/deb-test.sh DEB_V1 DEB_V2 RECORDING   (run as root; make test runs it via
#                                                 tests/tests/package.rs)
set -euo pipefail
deb1=$(realpath "$1"); deb2=$(realpath "$2"); recording=$(realpath "$3")
work=$(mktemp -d /tmp/youke-deb-test.XXXXXX)
root="$work/root"
mirror=${YOUKE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
serve_pid=""

cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  umount "$root/proc" 2>/dev/null || true
  if [ -n "${YOUKE_KEEP:-}" ]; then echo "deb-test: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
step() { echo "== $(date +%T) $*"; }
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
as_youke() { chroot --userspec=youke:youke "$root" env -i PATH=/usr/bin:/bin LANG=C.UTF-8 YOUKE_DATA=/var/lib/youke HOME=/var/lib/youke "$@"; }
fail() { echo "deb-test: $*" >&2; exit 1; }

step "debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; fail "debootstrap failed"; }
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The root shares this machine's /proc, where userdel looks for processes of the user it
# removes: system users are made in a uid range no process here runs as.
if ps -eo uid= | awk '$1 >= 900 && $1 < 1000 { found = 1 } END { exit !found }'; then fail "a process here runs with a uid in 900..999"; fi
sed -i -e 's/^#\?FIRST_SYSTEM_UID=.*/FIRST_SYSTEM_UID=900/' -e 's/^#\?FIRST_SYSTEM_GID=.*/FIRST_SYSTEM_GID=900/' "$root/etc/adduser.conf"
# No init system runs in the root: services are not started by package scripts.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"

step "install $(basename "$deb1") with its dependencies"
cp "$deb1" "$root/tmp/youke-1.deb"; cp "$deb2" "$root/tmp/youke-2.deb"
in_root apt-get update -qq
in_root apt-get install -y -qq --no-install-recommends /tmp/youke-1.deb >"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log"; fail "apt-get install failed"; }
grep -q "sudo -u youke youke --data /var/lib/youke enroll" "$work/apt.log" || fail "postinst did not say how to configure the node"

step "what the package put in place"
in_root getent passwd youke >/dev/null || fail "no youke user"
# Owners as the root's own /etc/passwd names them.
[ "$(in_root stat -c '%U %a' /var/lib/youke)" = "youke 750" ] || fail "/var/lib/youke: $(in_root stat -c '%U %a' /var/lib/youke)"
[ "$(in_root stat -c '%U %a' /etc/youke)" = "youke 750" ] || fail "/etc/youke: $(in_root stat -c '%U %a' /etc/youke)"
[ -e "$root/usr/share/youke/youke.toml.example" ] || fail "no example config"
[ "$(readlink "$root/var/lib/youke/youke.toml")" = /etc/youke/youke.toml ] || fail "/var/lib/youke/youke.toml is not a link to /etc/youke/youke.toml"
[ -L "$root/etc/systemd/system/multi-user.target.wants/youke.service" ] || fail "youke.service is not enabled"
unit="$root/usr/lib/systemd/system/youke.service"
grep -q '^Type=notify' "$unit" && grep -q '^WatchdogSec=' "$unit" && grep -q '^Restart=on-failure' "$unit" || fail "the unit is not Type=notify with a watchdog and restart"
# The unit's directives as systemd reads them (its binary path pointed at the root's).
sed "s#/usr/bin/youke#$root/usr/bin/youke#" "$unit" >"$work/youke.service"
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify "$work/youke.service" 2>&1 | grep -v -e 'Failed to load' -e 'network-online' || true)
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
fi

http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
quic=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
step "init, import and serve as the youke user (portal on 127.0.0.1:$http)"
as_youke youke init --role school --name 测试学校 --http "127.0.0.1:$http" --quic "127.0.0.1:$quic" >/dev/null
grep -q '测试学校' "$root/etc/youke/youke.toml" || fail "init did not write /etc/youke/youke.toml through the link"
[ "$(in_root stat -c '%U' /etc/youke/youke.toml)" = youke ] || fail "/etc/youke/youke.toml is not the youke user's"
[ -L "$root/var/lib/youke/youke.toml" ] || fail "init replaced the config link with a file"
sed -i 's/^transcode = true/transcode = false/' "$root/etc/youke/youke.toml"
cp "$recording" "$root/tmp/勾股定理.mp4"
lesson=$(as_youke youke import /tmp/勾股定理.mp4 --title 勾股定理 | tail -1)
serve() {
  # chroot execs env, env execs youke: $! is the node's own pid.
  chroot --userspec=youke:youke "$root" env -i PATH=/usr/bin:/bin LANG=C.UTF-8 YOUKE_DATA=/var/lib/youke HOME=/var/lib/youke youke serve >>"$work/serve.log" 2>&1 &
  serve_pid=$!
  for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:$http/readyz" >"$work/ready.json" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  cat "$work/serve.log"; fail "the node did not become ready"
}
stop() {
  kill -TERM "$serve_pid"
  wait "$serve_pid" || true
  serve_pid=""
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ]; then fail "a process still runs in the root after SIGTERM: $(tr '\0' ' ' <"$p/cmdline")"; fi
  done
}
serve
grep -q '"ready":true' "$work/ready.json" || fail "readyz: $(cat "$work/ready.json")"
# Whole output first: grep -q stopping at its match would close the pipe while youke still writes.
status_json="$(as_youke youke status --json)" || fail "youke status failed"
grep -q '"role": "school"' <<<"$status_json" || fail "youke status does not report the school role: $status_json"
curl -fsS "http://127.0.0.1:$http/api/v1/lessons/$lesson" | grep -q 勾股定理 || fail "the lesson is not served"
stop

step "upgrade to $(basename "$deb2"): data and config kept, the node starts again"
in_root apt-get install -y -qq --no-install-recommends /tmp/youke-2.deb >>"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log"; fail "upgrade failed"; }
[ "$(in_root dpkg-query -W -f='${Version}' youke)" = "$(dpkg-deb -f "$deb2" Version)" ] || fail "not upgraded"
grep -q '测试学校' "$root/etc/youke/youke.toml" || fail "the upgrade replaced the config"
serve
curl -fsS "http://127.0.0.1:$http/api/v1/lessons/$lesson" | grep -q 勾股定理 || fail "the lesson is gone after the upgrade"
stop

step "purge: data, config and user removed"
in_root apt-get purge -y -qq youke >>"$work/apt.log" 2>&1 || fail "purge failed"
[ ! -e "$root/var/lib/youke" ] && [ ! -e "$root/etc/youke" ] || fail "purge left data or config"
! in_root getent passwd youke >/dev/null || fail "purge left the youke user"
step "ok: installed size $(dpkg-deb -f "$deb1" Installed-Size) KiB, package $(stat -c %s "$deb1") bytes"
