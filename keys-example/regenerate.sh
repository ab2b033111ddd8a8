#!/usr/bin/env bash
# Regenerates the example signing material in this directory with `bonded keygen`.
# THESE KEYS ARE PUBLIC EXAMPLES: their private keys are in a public repository, so anyone
# can sign with them. Never put this root in a production trust store.
set -euo pipefail
cd "$(dirname "$0")"
bonded=${BONDED:-"cargo run --quiet --release --"}
rm -f ./*.key ./*.pem
rm -rf truststore
org="C=US, ST=WA, O=Example Org"
$bonded keygen root         --subject "$org, CN=Example Root CA"  --out root     --days 3650
$bonded keygen intermediate --subject "$org, CN=Example Build CA" --out build-ca --issuer root     --days 1825
$bonded keygen signer       --subject "$org, CN=alice"            --out alice    --issuer build-ca --days 730
$bonded keygen signer       --subject "$org, CN=bob"              --out bob      --issuer build-ca --days 730
mkdir -p truststore/x509/ca/example
cp root.pem truststore/x509/ca/example/root.pem
