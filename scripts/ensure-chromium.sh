#!/usr/bin/env bash
# Make Debian's Chromium available for the browser tests. Never fails the build: when Chromium cannot
# be installed, the browser tests skip with the reason printed here and by pytest.
if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/tmp/medspa-chromium.log 2>&1 \
    || echo "could not install chromium (see /tmp/medspa-chromium.log): browser tests will be skipped"
else
  echo "no /usr/bin/chromium and no root apt-get: browser tests will be skipped"
fi
exit 0
