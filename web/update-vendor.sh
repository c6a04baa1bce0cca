#!/usr/bin/env bash
# Refreshes web/vendor/ from the npm packages pinned in web/package.json. The files are
# committed so that building mediamesh needs neither node nor the network; run this
# only to move to a new version (after `npm ci` in web/ for the p2p-media-loader part).
#
#   vendor/hls.min.js               hls.js, as its package ships it
#   vendor/p2p-media-loader.min.js  p2p-media-loader-hlsjs + -core as one IIFE script
#                                   (global `p2pml`), bundled by esbuild from
#                                   src/p2pml-entry.js (src/build.mjs, which also adds
#                                   the hooks of our part extension src/parts/, see
#                                   P2P.md); core comes from its own
#                                   pre-bundled dist (condition p2pml:core-as-bundle),
#                                   which already holds bittorrent-tracker & co.
#   vendor/uplot.min.js, .min.css   uPlot (the console's charts), as its package ships
#                                   them (dist/uPlot.iife.min.js: global `uPlot`)
#   vendor/*.LICENSE                the licenses of everything in those files
set -euo pipefail
cd "$(dirname "$0")"
dep() { node -p "require('./package.json').dependencies['$1']"; }
ver=$(dep hls.js)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "hls.js@$ver" >/dev/null && tar xzf hls.js-*.tgz)
cp "$tmp/package/dist/hls.min.js" vendor/hls.min.js
cp "$tmp/package/LICENSE" vendor/hls.js.LICENSE
echo "web/vendor: hls.js $ver"

uver=$(dep uplot)
(cd "$tmp" && npm pack --silent "uplot@$uver" >/dev/null && mkdir uplot && tar xzf uplot-*.tgz -C uplot)
cp "$tmp/uplot/package/dist/uPlot.iife.min.js" vendor/uplot.min.js
cp "$tmp/uplot/package/dist/uPlot.min.css" vendor/uplot.min.css
cp "$tmp/uplot/package/LICENSE" vendor/uplot.LICENSE
echo "web/vendor: uplot $uver"

# p2p-media-loader: both packages must be installed at the pinned version.
core=$(dep p2p-media-loader-core)
hlsjs=$(dep p2p-media-loader-hlsjs)
for p in "p2p-media-loader-core@$core" "p2p-media-loader-hlsjs@$hlsjs"; do
  have=$(node -p "require('./node_modules/${p%@*}/package.json').version" 2>/dev/null || echo none)
  [ "$have" = "${p#*@}" ] || { echo "node_modules has ${p%@*} $have, want ${p#*@}: run npm ci" >&2; exit 1; }
done
node src/build.mjs "$core" "$hlsjs"

# Licenses: p2p-media-loader itself, then every npm package its core bundle holds
# (read from the bundle's source map) as installed next to it.
{
  echo "p2p-media-loader-core $core and p2p-media-loader-hlsjs $hlsjs"
  echo "https://github.com/Novage/p2p-media-loader"
  echo
  cat node_modules/p2p-media-loader-core/LICENSE
  TMP_DIR="$tmp" node -e '
    const fs = require("fs");
    const map = JSON.parse(fs.readFileSync("node_modules/p2p-media-loader-core/dist/p2p-media-loader-core.es.js.map", "utf8"));
    const names = new Set();
    for (const s of map.sources) {
      const i = s.lastIndexOf("node_modules/");
      if (i < 0) continue;
      const parts = s.slice(i + 13).split("/");
      names.add(parts[0].startsWith("@") ? parts[0] + "/" + parts[1] : parts[0]);
    }
    for (const n of [...names].sort()) {
      let dir = ["node_modules/" + n, "node_modules/bittorrent-tracker/node_modules/" + n].find((d) => fs.existsSync(d + "/package.json"));
      if (!dir) {
        // Bundled at build time but not a runtime dependency (node polyfills): fetch its package.
        const t = fs.mkdtempSync(process.env.TMP_DIR + "/lic-");
        require("child_process").execSync(`npm pack --silent ${n} >/dev/null && tar xzf *.tgz`, { cwd: t });
        dir = t + "/package";
      }
      const pkg = JSON.parse(fs.readFileSync(dir + "/package.json", "utf8"));
      const lic = fs.readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f));
      console.log("\n==== " + n + " " + pkg.version + " (" + (pkg.license || "see text") + ")\n");
      console.log(lic ? fs.readFileSync(dir + "/" + lic, "utf8").trim() : "(no license file shipped; package.json says " + pkg.license + ")");
    }
  '
} > vendor/p2p-media-loader.LICENSE
echo "web/vendor: p2p-media-loader-core $core + p2p-media-loader-hlsjs $hlsjs"
