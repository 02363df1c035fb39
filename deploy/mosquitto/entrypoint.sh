#!/bin/sh
# Broker start-up in the compose stack: build the password file and install the TLS
# files with the ownership mosquitto wants, then run mosquitto (which drops to its user).
#   /mosquitto/config/greengauge/   this folder (acl, mosquitto.conf, optional passwd)
#   /greengauge/pki/                ca.pem, broker.pem, broker.key
set -eu
conf=/mosquitto/config/greengauge
umask 077

passwd=/mosquitto/data/passwd
: > "$passwd.new"
if [ -f "$conf/passwd" ]; then
    cat "$conf/passwd" >> "$passwd.new"   # gateways' hashed passwords (add-agent.sh)
fi
add_user() {  # add_user USER PASSWORD: hashed into the file; the empty password skips
    [ -z "$2" ] || mosquitto_passwd -b "$passwd.new" "$1" "$2"
}
add_user collector "${MQTT_COLLECTOR_PASSWORD:?MQTT_COLLECTOR_PASSWORD is not set (deploy/.env)}"
add_user mes "${MQTT_MES_PASSWORD:-}"
add_user demo-plant.gw-demo "${MQTT_DEMO_AGENT_PASSWORD:-}"
unset MQTT_COLLECTOR_PASSWORD MQTT_MES_PASSWORD MQTT_DEMO_AGENT_PASSWORD
mv "$passwd.new" "$passwd"

mkdir -p /mosquitto/certs
for file in ca.pem broker.pem broker.key; do
    if [ ! -f "/greengauge/pki/$file" ]; then
        echo "entrypoint: /greengauge/pki/$file is missing: run deploy/pki/make-test-pki.sh" \
            "deploy/pki/out, or set PKI_DIR to a folder with your CA and broker certificate" >&2
        exit 1
    fi
    cp "/greengauge/pki/$file" /mosquitto/certs/
done
chown -R mosquitto:mosquitto /mosquitto/certs /mosquitto/data
exec /usr/sbin/mosquitto -c "$conf/mosquitto.conf"
