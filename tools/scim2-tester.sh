#!/usr/bin/env bash
# Runs the third-party SCIM checker scim2-tester (PyPI) against a fresh scimd binary.
# Usage: tools/scim2-tester.sh [path/to/scimd]   (default: target/debug/scimd, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/scimd}
[ -x "$bin" ] || cargo build -p scimd
python3 -c 'import scim2_tester' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check 'scim2-tester==0.5.2' 'scim2-client[httpx2]==0.13.2'

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/out.log" 2>"$dir/err.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
token=$(grep -Eo 'scimd_[a-z0-9]{8}_[A-Za-z0-9]{40}' "$dir/out.log" | head -n1)
if [ -z "$token" ]; then
  echo "scim2-tester: could not read the SCIM token from scimd's output" >&2
  cat "$dir/out.log" "$dir/err.log" >&2
  exit 1
fi
python3 tools/scim2_tester_run.py "http://127.0.0.1:$port/scim/v2" "$token"
