#!/bin/sh
# Installs the Debian packages libcnnviz needs to build and test, if any is
# missing. Non-interactive; uses sudo when not run as root.
#   install-deps.sh            build and test dependencies
#   install-deps.sh --browser  also Chromium, for the report's browser test
set -eu
PKGS="gcc make pkg-config libhdf5-dev libjansson-dev libzip-dev libpng-dev \
libturbojpeg0-dev libjpeg62-turbo-dev libcmocka-dev valgrind"
[ "${1:-}" = "--browser" ] && PKGS="$PKGS chromium"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
