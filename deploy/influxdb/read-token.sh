#!/bin/sh
# A read-only InfluxDB token for Grafana: compose's one-shot `influxdb-read-token` service
# (influxdb image, its `influx` CLI) runs this once InfluxDB is healthy, then Grafana
# starts and its data source reads the token from TOKEN_FILE ($__file{} in
# deploy/grafana/provisioning/datasources/influxdb.yaml). The operator token
# (INFLUX_TOKEN, the collector's) never reaches Grafana.
#
#   INFLUX_HOST, INFLUX_ORG, INFLUX_TOKEN   the server, org and operator token
#   INFLUX_BUCKET                           the bucket Grafana may read, nothing else
#   TOKEN_FILE                              where the read token goes (a volume)
#   TOKEN_OWNER                             its owner's uid (the grafana image's: 472)
#
# Kept across restarts: when TOKEN_FILE holds a token InfluxDB still knows, nothing is
# done; otherwise a new authorization "greengauge grafana read BUCKET" is made. To
# rotate: delete it in InfluxDB (influx auth delete) and restart the stack.
set -eu
: "${INFLUX_HOST:?}" "${INFLUX_ORG:?}" "${INFLUX_TOKEN:?}" "${INFLUX_BUCKET:?}"
: "${TOKEN_FILE:?}" "${TOKEN_OWNER:?}"
export INFLUX_HOST INFLUX_ORG INFLUX_TOKEN

if [ -s "$TOKEN_FILE" ] &&
    INFLUX_TOKEN=$(cat "$TOKEN_FILE") influx bucket list --name "$INFLUX_BUCKET" \
        > /dev/null 2>&1; then
    echo "read-token: $TOKEN_FILE is valid, kept"
    exit 0
fi

bucket_id=$(influx bucket list --name "$INFLUX_BUCKET" --hide-headers | awk 'NR == 1 {print $1}')
if [ -z "$bucket_id" ]; then
    echo "read-token: no bucket '$INFLUX_BUCKET' in org '$INFLUX_ORG'" >&2
    exit 1
fi
token=$(influx auth create --read-bucket "$bucket_id" \
    --description "greengauge grafana read $INFLUX_BUCKET" --json |
    sed -n 's/^[[:space:]]*"token":[[:space:]]*"\([^"]*\)".*/\1/p')
if [ -z "$token" ]; then
    echo "read-token: influx auth create gave no token" >&2
    exit 1
fi
umask 077
printf '%s' "$token" > "$TOKEN_FILE.new"
chown "$TOKEN_OWNER" "$TOKEN_FILE.new"
chmod 0400 "$TOKEN_FILE.new"
mv "$TOKEN_FILE.new" "$TOKEN_FILE"
echo "read-token: made a read-only token for bucket $INFLUX_BUCKET in $TOKEN_FILE"
