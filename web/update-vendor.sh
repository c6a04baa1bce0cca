#!/usr/bin/env bash
# Refreshes web/vendor/ from the npm packages pinned in web/package.json. The files are
# committed so that building mediamesh needs neither node nor the network; run this
# only to move to a new version.
set -euo pipefail
cd "$(dirname "$0")"
ver=$(node -p "require('./package.json').dependencies['hls.js']")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "hls.js@$ver" >/dev/null && tar xzf hls.js-*.tgz)
cp "$tmp/package/dist/hls.min.js" vendor/hls.min.js
cp "$tmp/package/LICENSE" vendor/hls.js.LICENSE
echo "web/vendor: hls.js $ver"
