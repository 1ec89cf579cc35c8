# Sourced, not run: puts a Node >= 22 first on PATH.
# The machine's Node may be older (Node 20 is past its end of life); then Node 24 LTS
# is installed from the npm registry into .tools/node (once) and used from there.
# Usage: . scripts/node-env.sh
_cairn_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_cairn_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(_cairn_major node)" -lt 22 ]; then
  _cairn_tools="$_cairn_root/.tools/node"
  if [ ! -x "$_cairn_tools/node_modules/node/bin/node" ] || [ "$(_cairn_major "$_cairn_tools/node_modules/node/bin/node")" -lt 22 ]; then
    echo "cairn: Node $(node --version 2>/dev/null || echo none) is older than 22; installing Node 24 LTS into .tools/node" >&2
    mkdir -p "$_cairn_tools"
    npm install --prefix "$_cairn_tools" --no-save --no-package-lock --loglevel=error node@24 >&2
  fi
  export PATH="$_cairn_tools/node_modules/node/bin:$PATH"
fi
unset -f _cairn_major
unset _cairn_root _cairn_tools
