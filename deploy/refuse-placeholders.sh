#!/bin/sh
# Start a service only when none of its secrets is still deploy/.env.example's placeholder:
#
#   refuse-placeholders.sh VAR[=SETTING] ... -- COMMAND [ARG ...]
#
# VAR is the container's variable, SETTING the deploy/.env name it comes from (default
# VAR). When one of them is `change-me` (any case, or `changeme`), it exits 1 naming the
# setting, before anything runs; otherwise it runs COMMAND in its place. Compose uses it
# as the entrypoint of the services whose images cannot check (broker, InfluxDB, Grafana).
set -eu
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    var=${1%%=*}
    setting=${1#*=}
    case $var in
        "" | [0-9]* | *[!A-Za-z0-9_]*)
            echo "refuse-placeholders: '$var' is not a variable name" >&2
            exit 2
            ;;
    esac
    eval "value=\${$var:-}"
    case $value in
        [Cc][Hh][Aa][Nn][Gg][Ee]-[Mm][Ee] | [Cc][Hh][Aa][Nn][Gg][Ee][Mm][Ee])
            echo "refusing to start: $setting is still '$value' (deploy/.env): set a real" \
                "secret, e.g. openssl rand -base64 32" >&2
            exit 1
            ;;
    esac
    shift
done
if [ $# -lt 2 ]; then
    echo "usage: $0 VAR[=SETTING] ... -- COMMAND [ARG ...]" >&2
    exit 2
fi
shift
exec "$@"
