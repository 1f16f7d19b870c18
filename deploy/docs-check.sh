#!/usr/bin/env bash
# `just docs-check`: opens the gateway's Swagger UI (/docs) in headless Chromium (Debian's
# `chromium`, installed by deploy/bootstrap.sh), as a browser with no internet would, and checks
# that the page rendered every operation of the gateway's /openapi.json and no load error; then
# takes a screenshot and checks it shows a rendered page (not a blank one).
#   deploy/docs-check.sh [gateway url, default http://127.0.0.1:8000] [screenshot path]
# Run against `just dev`, and by the system tests against a test system.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

url="${1:-http://127.0.0.1:${GATEWAY_PORT:-8000}}"
shot="${2:-.local/docs-check/docs.png}"
say() { echo "docs-check: $*" >&2; }
browser="$(command -v chromium || command -v chromium-browser || true)"
[[ -n "$browser" ]] || { say "chromium is not installed: run deploy/bootstrap.sh"; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
curl -sf "$url/openapi.json" -o "$work/openapi.json" || { say "no document at $url/openapi.json: is the gateway running?"; exit 2; }
mkdir -p "$(dirname "$shot")"
# A profile of its own, so a running browser or an earlier run is never reused; the virtual time
# budget lets Swagger UI fetch the document and render before the DOM is read.
chrome=("$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run
  --user-data-dir="$work/profile" --virtual-time-budget=15000 --hide-scrollbars)
timeout 120 "${chrome[@]}" --dump-dom "$url/docs/" >"$work/dom.html" 2>"$work/chromium.log" ||
  { cat "$work/chromium.log" >&2; say "chromium failed to open $url/docs/"; exit 1; }
timeout 120 "${chrome[@]}" --window-size=1280,2200 --screenshot="$work/docs.png" "$url/docs/" >/dev/null 2>>"$work/chromium.log" ||
  { cat "$work/chromium.log" >&2; say "chromium failed to take a screenshot"; exit 1; }
cp "$work/docs.png" "$shot"

python3 - "$work/openapi.json" "$work/dom.html" "$shot" <<'PY'
import json, re, struct, sys, zlib

document, dom, shot = json.load(open(sys.argv[1])), open(sys.argv[2]).read(), sys.argv[3]
problems = []
if "Failed to load API definition" in dom or 'class="errors-wrapper"' in dom:
    problems.append("Swagger UI shows an error instead of the API")
shown = set(re.findall(r'id="operations-([^"]+)"', dom))
operations = [(method, path, op) for path, item in document["paths"].items() for method, op in item.items()]
for method, path, op in operations:
    if f"{op['tags'][0]}-{op['operationId']}" not in shown:
        problems.append(f"{method.upper()} {path} ({op['operationId']}) is not on the page")

# The screenshot: a PNG of the window's size with enough distinct colours to be a rendered page.
png = open(shot, "rb").read()
if png[:8] != b"\x89PNG\r\n\x1a\n":
    problems.append(f"{shot} is not a PNG")
else:
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    chunks, at = [], 8
    while at < len(png):
        length, kind = struct.unpack(">I4s", png[at:at + 8])
        if kind == b"IDAT":
            chunks.append(png[at + 8:at + 8 + length])
        at += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None:
        problems.append(f"unexpected PNG format (depth {depth}, colour type {colour})")
    else:
        stride = width * channels + 1
        # Filtered scanlines: the filter byte aside, sample the raw bytes of every 8th row.
        colours = {raw[row * stride + 1 + x * channels: row * stride + 1 + (x + 1) * channels]
                   for row in range(0, height, 8) for x in range(0, width, 4)}
        if (width, height) != (1280, 2200) or len(colours) < 50:
            problems.append(f"the screenshot looks blank ({width}x{height}, {len(colours)} distinct samples)")
if problems:
    print("\n".join(f"docs-check: {p}" for p in problems), file=sys.stderr)
    sys.exit(1)
print(f"docs-check: /docs shows all {len(operations)} operations; screenshot {shot}")
PY
