#!/bin/sh
# Push an image only when leakscan passes: scan-then-push.sh IMAGE [leakscan options, e.g. --secret ...]
# Findings (exit 1) and incomplete scans (exit 3) both stop the push.
set -eu
image=$1
shift
if ! leakscan "$image" --fail-on high "$@"; then
  echo "scan-then-push: leakscan did not pass; not pushing $image" >&2
  exit 1
fi
${DOCKER:-docker} push "$image"
