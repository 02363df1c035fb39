#!/bin/sh
# Broker start-up in the compose stack: build the password file and install the TLS
# files with the ownership mosquitto wants, then run mosquitto (which drops to its user).
#   /mosquitto/config/greengauge/   this folder (acl, mosquitto.conf), committed
#   /greengauge/users/              add-agent.sh's passwd and agents.acl (deploy/data/
#                                   mosquitto/), generated, never committed
#   /greengauge/pki/                ca.pem, broker.pem, broker.key
set -eu
conf=/mosquitto/config/greengauge
users=/greengauge/users
umask 077
# (compose runs it through deploy/refuse-placeholders.sh: no `change-me` password)

# Two password files, one per listener (mosquitto.conf): gateways and the MES on 8883,
# the collector alone on 8884, so no gateway password opens the collector's listener.
passwd=/mosquitto/data/passwd
collector=/mosquitto/data/passwd-collector
: > "$passwd.new"
: > "$collector.new"
if [ -f "$users/passwd" ]; then
    cat "$users/passwd" >> "$passwd.new"   # gateways' hashed passwords (add-agent.sh)
fi
add_user() {  # add_user FILE USER PASSWORD: hashed into FILE; the empty password skips
    [ -z "$3" ] || mosquitto_passwd -b "$1" "$2" "$3"
}
add_user "$collector.new" collector \
    "${MQTT_COLLECTOR_PASSWORD:?MQTT_COLLECTOR_PASSWORD is not set (deploy/.env)}"
add_user "$passwd.new" mes "${MQTT_MES_PASSWORD:-}"
add_user "$passwd.new" demo-plant/gw-demo "${MQTT_DEMO_AGENT_PASSWORD:-}"
unset MQTT_COLLECTOR_PASSWORD MQTT_MES_PASSWORD MQTT_DEMO_AGENT_PASSWORD
mv "$passwd.new" "$passwd"
mv "$collector.new" "$collector"

# The ACL: the committed rules, then the gateways' blocks (add-agent.sh).
acl=/mosquitto/data/acl
cat "$conf/acl" > "$acl.new"
if [ -f "$users/agents.acl" ]; then
    cat "$users/agents.acl" >> "$acl.new"
fi
mv "$acl.new" "$acl"

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
