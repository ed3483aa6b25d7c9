#!/usr/bin/env bash
# Install Debian's headless browser for the report tests (tests/test_report_browser.py): chromium and chromium-driver.
#
#   bash tests/browser/install-chromium.sh      # as root; does nothing when both are installed already
#
# The tests drive this browser through Selenium with the driver's path given explicitly, so nothing is ever
# downloaded at test time (no Selenium Manager, no browser download). One install at a time (flock); apt-get waits
# for another apt/dpkg run to finish instead of failing. The last line printed is `chromium=PATH driver=PATH`.
set -euo pipefail
log() { echo "rb201-chromium: $*" >&2; }
die() { log "error: $*"; exit 1; }

find_bins() {
  browser="$(command -v chromium || command -v chromium-browser || true)"
  driver="$(command -v chromedriver || true)"
  [ -n "$driver" ] || { [ -x /usr/bin/chromedriver ] && driver=/usr/bin/chromedriver; } || true
}

find_bins
if [ -z "$browser" ] || [ -z "$driver" ]; then
  [ "$(id -u)" = 0 ] || die "chromium and chromium-driver are missing and installing them needs root (running as $(id -un))"
  command -v apt-get >/dev/null || die "chromium and chromium-driver are missing and apt-get is not available"
  lockdir="${RB201_BROWSER_DIR:-/tmp/rb201-browser}"
  mkdir -p "$lockdir"
  exec 9>"$lockdir/install.lock"
  flock 9   # several test processes may ask at once
  find_bins
  if [ -z "$browser" ] || [ -z "$driver" ]; then
    log "installing chromium chromium-driver with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >"$lockdir/apt.log" 2>&1 \
      || { tail -20 "$lockdir/apt.log" >&2; die "apt-get update failed"; }
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium chromium-driver \
      >>"$lockdir/apt.log" 2>&1 || { tail -20 "$lockdir/apt.log" >&2; die "apt-get install failed"; }
    find_bins
  fi
fi
[ -n "$browser" ] && [ -n "$driver" ] || die "chromium or chromedriver still missing after the install"
echo "chromium=$browser driver=$driver"
