#!/usr/bin/env bash
# Installs what the sandbox tests need on a clean Debian machine: a Docker engine (docker.io; the tests
# start their own dockerd on a private socket and stop it by PID), libseccomp for pyseccomp, and
# util-linux (unshare/mount). Idempotent and non-interactive; does nothing for packages already there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || need+=(libseccomp2)

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-sandbox: need root to install ${need[*]}; the sandbox tests that need them will skip" >&2
    exit 0
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# the Debian package may start its own engine through systemd; the tests do not need or use it
echo "setup-sandbox: dockerd $(dockerd --version 2>/dev/null | cut -d' ' -f3 | tr -d ,) / $(ldconfig -p | grep -m1 -o 'libseccomp\.so\.2')"
