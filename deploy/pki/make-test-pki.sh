#!/bin/sh
# A throw-away PKI for tests and the compose demo: NOT for production certificates.
#
#   deploy/pki/make-test-pki.sh OUT_DIR [CLIENT_NAME ...]
#
# writes into OUT_DIR (created, mode 0700):
#   ca.pem, ca.key                 the test CA (10 years)
#   broker.pem, broker.key         the broker, SAN DNS:localhost, DNS:mosquitto,
#                                  IP:127.0.0.1 (+ $BROKER_SANS, e.g. "DNS:broker.example")
#   NAME.pem, NAME.key             a client certificate per CLIENT_NAME (CN=NAME),
#                                  default: collector agent
#   other-ca.pem, other-ca.key     an unrelated CA, for "wrong CA is refused" tests
# Keys are EC P-256, unencrypted, mode 0600. Running it again replaces everything.
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
# Readable by the broker and the services that mount them (keys stay 0600 for the owner;
# the compose demo runs as the same uid, or copies them).
chmod 644 ./*.pem
echo "test PKI in $(pwd): ca.pem broker.pem $(printf '%s.pem ' "$@")other-ca.pem"
