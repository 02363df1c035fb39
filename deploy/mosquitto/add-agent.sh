#!/bin/sh
# Give one gateway's agent its broker credentials:
#
#   deploy/mosquitto/add-agent.sh SITE AGENT            # generates a password, prints it once
#   deploy/mosquitto/add-agent.sh SITE AGENT < file     # reads the password from stdin
#
# The user is SITE/AGENT ('/' is in no id, so no two gateways share a user); its ACL
# block lets it publish only under greengauge/v1/SITE/AGENT/. Writes (in $MOSQUITTO_DIR,
# default deploy/data/mosquitto, created mode 0700; never committed: .gitignore):
#   passwd       hashed passwords (mosquitto_passwd)
#   agents.acl   the block, appended unless the user already has one; the broker reads
#                it after the committed deploy/mosquitto/acl
# Then restart the broker (compose: `docker compose restart mosquitto`), and put the
# password in the gateway's /etc/greengauge/agent.env as MQTT_PASSWORD.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 SITE AGENT  (password on stdin, or generated)" >&2
    exit 2
fi
site=$1
agent=$2
for id in "$site" "$agent"; do
    case $id in
        *:*)
            # mosquitto's password file is USER:HASH, so ':' cannot be in a user name.
            echo "$0: '$id': ':' cannot be in a broker user name; use letters, digits," \
                "'_', '.' or '-' only" >&2
            exit 2
            ;;
        "" | *[!A-Za-z0-9_.-]*)
            echo "$0: '$id': use letters, digits, '_', '.' or '-' only" >&2
            exit 2
            ;;
    esac
done
dir=${MOSQUITTO_DIR:-$(dirname "$0")/../data/mosquitto}
user="$site/$agent"
passwd_tool=$(command -v mosquitto_passwd || true)
if [ -z "$passwd_tool" ]; then
    echo "$0: mosquitto_passwd not found (apt-get install mosquitto)" >&2
    exit 1
fi

generated=false
if [ -t 0 ]; then
    password=$(openssl rand -base64 24 | tr -d '/+=\n')
    generated=true
else
    IFS= read -r password || true
fi
if [ -z "$password" ]; then
    echo "$0: empty password" >&2
    exit 2
fi

umask 077
mkdir -p "$dir"
touch "$dir/passwd" "$dir/agents.acl"
"$passwd_tool" -b "$dir/passwd" "$user" "$password"

if ! grep -qxF "user $user" "$dir/agents.acl"; then
    printf '\nuser %s\ntopic write greengauge/v1/%s/%s/#\n' "$user" "$site" "$agent" \
        >> "$dir/agents.acl"
fi

echo "broker user $user: may publish under greengauge/v1/$site/$agent/" >&2
if $generated; then
    echo "password (shown once, put it in the gateway's MQTT_PASSWORD): $password"
fi
