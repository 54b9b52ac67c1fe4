#!/bin/sh
# api/openapi.yaml under Redocly's recommended rules: no errors allowed (warnings are printed).
# The version is pinned so that CI lints with the rules it was written against; npx fetches it into
# npm's cache (~/.npm) the first time, and needs the npm registry then.
set -eu
cd "$(dirname "$0")/../.."
REDOCLY_VERSION=2.77.0
command -v npx >/dev/null || { echo "lint-api: no npx (Node.js 20.19 or later, with npm)"; exit 1; }
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
exec npx --yes "@redocly/cli@$REDOCLY_VERSION" lint api/openapi.yaml
