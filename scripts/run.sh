#!/usr/bin/env bash
# `make run`: local services, a development .env (created once, kept out of git), then
# api and consumer in the foreground. Ctrl-C stops both cleanly (SIGTERM to each).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/services.sh up
cargo build --release --bin api --bin consumer
if [ ! -f .env ]; then
  echo "[run] creating .env with a fresh development key pair (not committed)" >&2
  { echo "# Development settings created by 'make run'. Not committed; delete to regenerate."
    echo "LOG_FORMAT=pretty"
    target/release/api keygen --key-id dev1; } > .env
fi
if grep -qx 'KAFKA_PROPERTIES=enable.idempotence=false' .env; then
  # Written by earlier versions for a local broker that could not take an idempotent
  # producer; Apache Kafka does, and production runs with it.
  echo "[run] removing KAFKA_PROPERTIES=enable.idempotence=false from .env (the idempotent producer is on)" >&2
  sed -i '/^KAFKA_PROPERTIES=enable.idempotence=false$/d' .env
fi
if ! grep -q '^JWT_SIGNING_KEY=' .env; then
  echo "[run] adding a development JWT signing key to .env" >&2
  target/release/api keygen --key-id dev1 | grep '^JWT_SIGNING_KEY=' >> .env
fi
if ! grep -q '^RECORD_SIGNING_KEY=' .env; then
  echo "[run] adding development record-signing keys (sign-ups, imports) to .env" >&2
  target/release/api keygen --key-id dev1 | grep -E '^(RECORD_SIGNING_KEY|IMPORT_SIGNING_KEY|RECORD_VERIFYING_KEYS)=' >> .env
fi
if ! grep -q '^MFA_ENCRYPTION_KEY=' .env; then
  echo "[run] adding a development MFA encryption key to .env" >&2
  target/release/api keygen --key-id dev1 | grep '^MFA_ENCRYPTION_KEY=' >> .env
fi
if ! grep -q '^OIDC_SIGNING_KEY=' .env; then
  echo "[run] adding a development OpenID Connect signing key and issuer to .env" >&2
  target/release/api keygen --key-id dev1 | grep '^OIDC_SIGNING_KEY=' >> .env
  grep -q '^OIDC_ISSUER=' .env || echo "OIDC_ISSUER=http://127.0.0.1:${PORT:-8000}" >> .env
fi
if ! grep -q '^CORS_ORIGINS=' .env; then
  echo "[run] allowing the sign-up page's origin (CORS_ORIGINS) in .env" >&2
  echo "CORS_ORIGINS=http://127.0.0.1:${WEB_PORT:-5173},http://localhost:${WEB_PORT:-5173}" >> .env
fi
# The sign-up page (examples/web) on the TypeScript client, served by a tiny static server.
web=""
if command -v npm >/dev/null; then
  (cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run build >/dev/null)
  mkdir -p examples/web/vendor
  cp clients/typescript/dist/src/index.js examples/web/vendor/registrar-client.js
  # The page's api address is fixed here, at serve time, never taken from its URL.
  echo "export const API = \"http://127.0.0.1:${PORT:-8000}\";" > examples/web/vendor/config.js
  python3 -m http.server "${WEB_PORT:-5173}" --bind 127.0.0.1 --directory examples/web >/dev/null 2>&1 & web=$!
fi
# The operators' console (console/, on the same client), served by the api at /console.
if command -v npm >/dev/null; then
  (cd console && npm ci --no-audit --no-fund --loglevel=error && npm run build >/dev/null)
fi
export MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=1048576
target/release/api migrate
# A first admin to sign in to the console with, offered once (the password is asked
# for, never taken from an argument). Skipped when not interactive.
if [ -t 0 ] && [ ! -f .local/console-admin ]; then
  mkdir -p .local
  read -r -p "[run] Create an admin for the console? Their email (Enter to skip): " admin_email || admin_email=""
  if [ -n "$admin_email" ]; then
    target/release/api create-admin --email "$admin_email" && echo "$admin_email" > .local/console-admin
  else
    echo "skipped" > .local/console-admin
    echo "[run] later: target/release/api create-admin --email you@example.com" >&2
  fi
fi
target/release/api serve & api=$!
target/release/consumer & consumer=$!
stop() {
  kill -TERM "$api" "$consumer" $web 2>/dev/null || true
  wait "$api" "$consumer" 2>/dev/null || true
}
trap stop INT TERM
echo "[run] api on http://127.0.0.1:${PORT:-8000}, consumer probes on http://127.0.0.1:${CONSUMER_PORT:-8001} (Ctrl-C stops both)" >&2
echo "[run] the operators' console: http://127.0.0.1:${PORT:-8000}/console/ (sign in as an admin)" >&2
echo "[run] mails (verification, password reset) arrive in MailDev: http://127.0.0.1:${MAILDEV_WEB_PORT:-1080}" >&2
if [ -n "$web" ]; then
  echo "[run] the sign-up page: http://localhost:${WEB_PORT:-5173}/ (passkeys need the name localhost)" >&2
fi
# Whichever exits first, stop the other too.
wait -n "$api" "$consumer" || true
stop
