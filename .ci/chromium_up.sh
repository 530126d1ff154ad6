#!/usr/bin/env bash
# Make sure headless Chromium (Debian package `chromium`, /usr/bin/chromium) is present for the
# browser-marked tests. Installs it with apt-get when missing; does nothing when it is there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
/usr/bin/chromium --version
