#!/usr/bin/env bash
# Set up everything the project needs on a fresh machine, then get out of the way:
# the system packages libzbar0 (pyzbar's backend) and chromium (browser tests), a
# virtualenv in .venv, and the package with its report, review and test extras.
# Idempotent: a second run takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: need Python >= 3.11 as '$PY' (set PYTHON=/path/to/python3.11)" >&2
  exit 3
fi

# system packages, each only when missing: libzbar0 (pyzbar's backend) and Debian's
# chromium (the review station's browser tests drive it through Playwright; never
# 'playwright install', which downloads a browser of its own)
have_zbar() { ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0'; }
missing=()
have_zbar || missing+=(libzbar0)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (system packages)..." >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" = none ] || ! command -v apt-get >/dev/null; then
    echo "error: ${missing[*]} missing and cannot be installed here (need root or sudo, and apt-get)." >&2
    echo "       Install yourself: 'sudo apt-get install ${missing[*]}' (Debian/Ubuntu; on macOS" >&2
    echo "       'brew install zbar' and a Chromium), then run this command again." >&2
    exit 3
  fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv..." >&2
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python dependencies into .venv..." >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[report,review,test]" >&2
  rm -f .venv/.installed-*
  touch "$stamp"
fi
