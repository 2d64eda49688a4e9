#!/usr/bin/env bash
# A drop-in for `docker build` that scans what it built with the build's own --secret flags:
#   docker-build-scan.sh --secret id=npmrc,src=$HOME/.npmrc -t app:1 .
# Extra leakscan options go in LEAKSCAN_ARGS (e.g. LEAKSCAN_ARGS="--fail-on high --format sarif=out.sarif").
set -euo pipefail
secrets=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --secret) secrets+=(--secret "${args[i + 1]}") ;;
    --secret=*) secrets+=(--secret "${args[i]#--secret=}") ;;
  esac
done
iidfile=$(mktemp)
trap 'rm -f "$iidfile"' EXIT
DOCKER_BUILDKIT=1 ${DOCKER:-docker} build --iidfile "$iidfile" "$@"
# shellcheck disable=SC2086 # LEAKSCAN_ARGS is a list of options
leakscan "$(cat "$iidfile")" "${secrets[@]}" ${LEAKSCAN_ARGS:-}
