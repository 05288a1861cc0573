#!/usr/bin/env bash
# Builds the browser wallet (web/) into web/dist/: exactly index.html, app.js and app.css, which
# are committed so that the Rust binary can embed them (include_bytes!) without an npm step.
#
#   scripts/web-build.sh           # npm ci, typecheck, tests, build twice: the bytes must match
#   scripts/web-build.sh --check   # also fail if the committed web/dist differs from the build
#   scripts/web-build.sh --no-test # skip the unit tests
set -euo pipefail

cd "$(dirname "$0")/../web"
check=false
tests=true
for arg in "$@"; do
  case "$arg" in
    --check) check=true ;;
    --no-test) tests=false ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

before=""
if $check; then
  before=$(sha256sum dist/index.html dist/app.js dist/app.css 2>/dev/null || true)
fi

npm ci --no-audit --no-fund
npm run typecheck
if $tests; then npm test; fi

npx vite build
first=$(sha256sum dist/index.html dist/app.js dist/app.css)
npx vite build
second=$(sha256sum dist/index.html dist/app.js dist/app.css)
if [ "$first" != "$second" ]; then
  echo "web/dist is not reproducible: two builds differ" >&2
  diff <(echo "$first") <(echo "$second") >&2 || true
  exit 1
fi

extra=$(find dist -type f ! -name index.html ! -name app.js ! -name app.css)
if [ -n "$extra" ]; then
  echo "web/dist holds files the binary does not embed: $extra" >&2
  exit 1
fi

if $check && [ "$before" != "$second" ]; then
  echo "the committed web/dist differs from a fresh build: run scripts/web-build.sh and commit web/dist" >&2
  diff <(echo "$before") <(echo "$second") >&2 || true
  exit 1
fi
echo "$second"
