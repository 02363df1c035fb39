#!/bin/sh
# A throw-away PKI for tests and the compose demo: NOT for production certificates.
#
#   deploy/pki/make-test-pki.sh OUT_DIR [CLIENT_NAME ...]
#
# writes into OUT_DIR (created, mode 0755: the containers must reach the files in it):
#   ca.pem, ca.key                 the test CA (10 years)
#   broker.pem, broker.key         the broker, SAN DNS:localhost, DNS:mosquitto,
#                                  IP:127.0.0.1 (+ $BROKER_SANS, e.g. "DNS:broker.example")
#   NAME.pem, NAME.key             a client certificate per CLIENT_NAME (CN=NAME),
#                                  default: collector agent
#   other-ca.pem, other-ca.key     an unrelated CA, for "wrong CA is refused" tests
# Keys are EC P-256, unencrypted, never world-readable: the CAs' and the broker's 0600
# (mosquitto's compose entrypoint, root, copies the broker's for the mosquitto user),
# the clients' 0640 with group $PKI_GID (default 10001, the greengauge image's group:
# the collector and agent containers read them; set when run as root, else left 0600).
# Certificates are 0644. Running it again replaces everything.
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 OUT_DIR [CLIENT_NAME ...]" >&2
    exit 2
fi
out=$1
shift
[ $# -gt 0 ] || set -- collector agent
days=${DAYS:-3650}

umask 077
mkdir -p "$out"
cd "$out"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() {  # ca NAME CN
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days "$days" -subj "/O=GreenGauge test/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.pem"
}

leaf() {  # leaf NAME CN EXTENDED_KEY_USAGE [SAN]
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/O=GreenGauge test/CN=$2" -out "$1.csr"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$3"
        [ -z "${4:-}" ] || echo "subjectAltName=$4"
    } > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
        -days "$days" -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

ca ca "GreenGauge test CA"
ca other-ca "Some other CA"
leaf broker broker serverAuth "DNS:localhost,DNS:mosquitto,IP:127.0.0.1${BROKER_SANS:+,$BROKER_SANS}"
for name in "$@"; do
    case $name in
        ca | other-ca | broker | *[!A-Za-z0-9_.-]*)
            echo "$0: bad client name '$name'" >&2
            exit 2
            ;;
    esac
    leaf "$name" "$name" clientAuth
done
rm -f ca.srl
# The folder and certificates for everyone (nothing secret); the keys as above.
chmod 755 .
chmod 644 ./*.pem
chmod 600 ./*.key
gid=${PKI_GID:-10001}
for name in "$@"; do
    if chgrp "$gid" "$name.key" 2>/dev/null; then
        chmod 640 "$name.key"
    else
        echo "$0: $name.key stays 0600 (chgrp $gid needs root): a container with another" \
            "uid cannot read it" >&2
    fi
done
echo "test PKI in $(pwd): ca.pem broker.pem $(printf '%s.pem ' "$@")other-ca.pem"
