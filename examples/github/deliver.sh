#!/usr/bin/env bash
# Sends a signed GitHub webhook delivery to the receiver of `review-operator dev`, as GitHub would.
# Usage: bash examples/github/deliver.sh [PAYLOAD.json] [EVENT]
# Settings: WEBHOOK_URL (default http://127.0.0.1:8090/github), WEBHOOK_SECRET_FILE (default
# .review-operator/webhook-secret; its first line is the secret).
set -euo pipefail
payload=${1:-"$(dirname "$0")/pull-request-opened.json"}
event=${2:-pull_request}
url=${WEBHOOK_URL:-http://127.0.0.1:8090/github}
secret=$(head -n 1 "${WEBHOOK_SECRET_FILE:-.review-operator/webhook-secret}")
signature=$(openssl dgst -sha256 -hmac "$secret" < "$payload" | sed 's/^.* //')
curl -sS -w '\n%{http_code}\n' -X POST "$url" \
  -H 'Content-Type: application/json' \
  -H "X-GitHub-Event: $event" \
  -H "X-GitHub-Delivery: $(cat /proc/sys/kernel/random/uuid)" \
  -H "X-Hub-Signature-256: sha256=$signature" \
  --data-binary @"$payload"
