#!/bin/sh
# The one-time step before the first `docker compose up`: keep the secret key that signs every
# link paperalerts mails in `.env` beside docker-compose.yml, where compose reads it by itself
# (so `logs`, `ps`, `down` in a new shell need nothing exported, and following the README again
# reuses the key instead of making one that breaks every link already mailed).
#
#   sh scripts/compose-env.sh [DIR]     # DIR: where docker-compose.yml is (default: the repo)
#
# Run it again at any time: a key already in .env is kept. A key already exported in this shell
# (the old way) is the one written, so links mailed with it stay valid. .env is created readable
# by its owner only, and is git- and docker-ignored.
set -eu
dir=${1:-$(dirname "$0")/..}
env_file="$dir/.env"
umask 077
touch "$env_file"
if grep -q '^PAPERALERTS_SECRET_KEY=.' "$env_file"; then
  echo "kept the secret key already in $env_file"
  exit 0
fi
if [ -n "${PAPERALERTS_SECRET_KEY:-}" ]; then
  key=$PAPERALERTS_SECRET_KEY
  how="the key exported in this shell"
else
  # 32 random bytes as 64 hex digits (od and /dev/urandom are on every POSIX system).
  key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  how="a new random key"
fi
# Keep what else the file holds; a line without its newline must not swallow ours.
if [ -s "$env_file" ] && [ "$(tail -c1 "$env_file" | od -An -c | tr -d ' ')" != '\n' ]; then
  echo >> "$env_file"
fi
printf 'PAPERALERTS_SECRET_KEY=%s\n' "$key" >> "$env_file"
echo "wrote $how to $env_file: back it up; changing it invalidates every link sent"
