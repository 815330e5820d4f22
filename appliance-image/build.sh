#!/usr/bin/env bash
# Builds the Youke appliance: a bootable Debian 12 disk image (UEFI, systemd-boot) with the
# youke package installed and a first-boot setup.
#
#   appliance-image/build.sh YOUKE.deb OUT.qcow2
#
# No loop devices or mounts: the root file system is made from a debootstrapped directory with
# `mkfs.ext4 -d`, the EFI system partition with mtools, and both are written into a GPT disk.
# Run as root (debootstrap, chroot). `make image-test` builds it and boots it in qemu.
#
# First boot (youke-firstboot.service): `youke setup` with the flags in the ESP's
# youke-setup.conf when there is one (for unattended installs: `--role school --parent
# city.example:4433 --token YK1…`), otherwise `youke setup` asks on the console (tty1); then
# the node starts. The ESP is the FAT partition any computer can write before first boot.
set -euo pipefail
deb=$(realpath "$1"); out=$2
here=$(cd "$(dirname "$0")" && pwd)
mirror=${YOUKE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
root_mib=${YOUKE_IMAGE_ROOT_MIB:-2048}
esp_mib=200
work=$(mktemp -d /tmp/youke-image.XXXXXX)
root="$work/root"
cleanup() { umount "$root/proc" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
step() { echo "== $(date +%T) $*"; }
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

step "debootstrap bookworm with a kernel, systemd and systemd-boot"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,udev,dbus,linux-image-amd64,initramfs-tools,systemd-boot-efi,iproute2,curl,ca-certificates,kmod,login,passwd \
  bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log"; exit 1; }
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"

step "install $(basename "$deb")"
cp "$deb" "$root/tmp/youke.deb"
in_root apt-get update -qq
in_root apt-get install -y -qq --no-install-recommends /tmp/youke.deb >"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log"; exit 1; }
rm -f "$root/tmp/youke.deb" "$root/usr/sbin/policy-rc.d"
in_root apt-get clean

step "configure: fstab, network (DHCP), console, first boot"
echo youke >"$root/etc/hostname"
cat >"$root/etc/fstab" <<'EOF'
LABEL=youke-root  /          ext4  errors=remount-ro  0 1
LABEL=YOUKE-ESP   /boot/efi  vfat  umask=0077,nofail  0 2
EOF
mkdir -p "$root/boot/efi"
cat >"$root/etc/systemd/network/80-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
install -m 0755 "$here/firstboot.sh" "$root/usr/lib/youke/firstboot.sh" 2>/dev/null || { mkdir -p "$root/usr/lib/youke"; install -m 0755 "$here/firstboot.sh" "$root/usr/lib/youke/firstboot.sh"; }
install -m 0644 "$here/youke-firstboot.service" "$root/etc/systemd/system/youke-firstboot.service"
in_root systemctl enable systemd-networkd.service youke-firstboot.service youke.service serial-getty@ttyS0.service >/dev/null 2>&1
# No password login: the admin works through the portal, or sets one with the console's
# first login prompt disabled until then.
in_root passwd -l root >/dev/null

step "file systems"
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)
esp="$work/esp.img"; rootfs="$work/root.img"
mkfs.vfat -C -n YOUKE-ESP "$esp" $((esp_mib * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$esp" "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$kernel" ::/vmlinuz
mcopy -i "$esp" "$initrd" ::/initrd.img
printf 'default youke.conf\ntimeout 0\n' >"$work/loader.conf"
printf 'title Youke\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=LABEL=youke-root rw console=tty1 console=ttyS0,115200 quiet\n' >"$work/youke.conf"
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/youke.conf" ::/loader/entries/youke.conf
if [ -n "${YOUKE_SETUP_ARGS:-}" ]; then
  printf '%s\n' "$YOUKE_SETUP_ARGS" >"$work/youke-setup.conf"
  mcopy -i "$esp" "$work/youke-setup.conf" ::/youke-setup.conf
fi
umount "$root/proc"
mkfs.ext4 -q -L youke-root -d "$root" "$rootfs" "${root_mib}M"

step "disk"
disk="$work/disk.raw"
total_mib=$((1 + esp_mib + root_mib + 1))
truncate -s "${total_mib}M" "$disk"
sfdisk -q "$disk" <<EOF
label: gpt
start=1MiB, size=${esp_mib}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
start=$((1 + esp_mib))MiB, size=${root_mib}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root
EOF
dd if="$esp" of="$disk" bs=1M seek=1 conv=notrunc status=none
dd if="$rootfs" of="$disk" bs=1M seek=$((1 + esp_mib)) conv=notrunc status=none
qemu-img convert -c -O qcow2 "$disk" "$out"
step "image $out: $(du -h "$out" | cut -f1) (qcow2, compressed), $(qemu-img info --output=json "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"] >> 20)') MiB disk"
