#!/usr/bin/env bash
# Make sure this machine can run linux/arm64 programs (under qemu), which a
# multi-platform build needs for the arm64 image's RUN steps and the arm64
# Debian base's second stage. Machines without systemd do not mount
# binfmt_misc: mount it and register Debian's qemu-aarch64. Idempotent.
set -eu

binfmt=/proc/sys/fs/binfmt_misc
entry=$binfmt/qemu-aarch64

die() { printf 'ensure-emulation: %s\n' "$*" >&2; exit 1; }

[ "$(uname -m)" = aarch64 ] && { echo "ensure-emulation: an arm64 machine runs arm64 itself"; exit 0; }
if [ -r "$entry" ] && head -n 1 "$entry" | grep -qx enabled; then
  echo "ensure-emulation: qemu-aarch64 is registered in binfmt_misc"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "qemu-aarch64 is not registered in $binfmt and we are not root: run this script as root"
command -v update-binfmts >/dev/null || die "update-binfmts is missing: apt-get install binfmt-support qemu-user-static"
[ -e /usr/share/binfmts/qemu-aarch64 ] || die "Debian's qemu-aarch64 entry is missing: apt-get install qemu-user-static"
if [ ! -e "$binfmt/register" ]; then
  mount -t binfmt_misc binfmt_misc "$binfmt" || die "cannot mount binfmt_misc at $binfmt (a container without the privilege to?)"
fi
update-binfmts --enable qemu-aarch64 || die "update-binfmts could not enable qemu-aarch64"
head -n 1 "$entry" | grep -qx enabled || die "qemu-aarch64 is still not enabled in $binfmt"
echo "ensure-emulation: qemu-aarch64 registered in binfmt_misc"
