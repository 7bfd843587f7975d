#!/usr/bin/env bash
# The prepared device check (issue #10): see scripts/device_check.py --help.
#   scripts/device_check.sh --out device_check_out            # on the GPU machine, <= 8 minutes
#   scripts/device_check.sh --dry-run --out /tmp/device_check  # on a CPU: the machinery, < 2 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
exec uv run --frozen python scripts/device_check.py "$@"
