#!/bin/sh
# The appliance's first boot (youke-firstboot.service): `youke setup` with the flags in the EFI
# partition's youke-setup.conf (one line, e.g. `--role school --parent city.example:4433 --token
# YK1…`; values without spaces), or asked on the console (tty1); then the node starts, and its
# status is written to the console once it is ready.
set -eu
conf=/boot/efi/youke-setup.conf
as_youke() { runuser -u youke -- env YOUKE_DATA=/var/lib/youke LANG=C.UTF-8 "$@"; }
if [ -s "$conf" ]; then
  # shellcheck disable=SC2046
  as_youke youke setup $(cat "$conf")
else
  echo "youke-firstboot: 优课 Youke 首次设置 / first-boot setup on tty1" >/dev/console
  as_youke youke setup </dev/tty1 >/dev/tty1 2>&1
fi
touch /var/lib/youke/.setup-done
systemctl start --no-block youke.service
for _ in $(seq 1 120); do
  if curl -fsS http://127.0.0.1:8080/readyz >/dev/null 2>&1; then break; fi
  sleep 1
done
echo "youke-firstboot: status $(as_youke youke status --json | tr -d '\n')" >/dev/console
