# shellcheck shell=bash
# Trust material for the issue 13 scenarios, made on the host at image-build time with
# openssl (the guest has none): a self-signed RSA signer (the stock Debian kernel does not
# trust it — only its build key), detached PKCS#7 signatures (`openssl cms -sign -noattr`,
# the certificate embedded, as veritysetup and systemd make them) over the lower-case hex
# root hashes of the tarfs512 and verity4k images, each checked with `openssl cms -verify`.
# Prints params.sh lines: TRUST_SIGNER_PEM (base64 of the certificate's PEM), SIG_512,
# SIG_4K (base64 of the DER signatures).

# build_trust_material DIR ROOT_512 ROOT_4K
build_trust_material() {
  local d=$1/trust r512=$2 r4k=$3
  need_cmds openssl
  rm -rf "$d"
  mkdir -p "$d"
  openssl req -x509 -nodes -newkey rsa:2048 -sha256 -days 30 -subj /CN=kata-volume-vmtest-signer \
    -addext keyUsage=critical,digitalSignature -addext extendedKeyUsage=codeSigning \
    -keyout "$d/signer.key" -out "$d/signer.crt" 2>/dev/null || die "openssl could not make the test signer"
  echo "TRUST_SIGNER_PEM=$(base64 -w0 "$d/signer.crt")"
  echo "SIG_512=$(trust_sign "$d" "$r512" 512)"
  echo "SIG_4K=$(trust_sign "$d" "$r4k" 4k)"
}

# trust_sign DIR ROOT NAME: base64 of a detached signature over ROOT (no newline), verified
trust_sign() {
  local d=$1 root=$2 name=$3
  printf '%s' "$root" >"$d/$name.roothash"
  openssl cms -sign -binary -noattr -in "$d/$name.roothash" -signer "$d/signer.crt" \
    -inkey "$d/signer.key" -outform DER -out "$d/$name.p7s" || die "openssl cms -sign failed for $name"
  openssl cms -verify -binary -inform DER -in "$d/$name.p7s" -content "$d/$name.roothash" \
    -CAfile "$d/signer.crt" -purpose any -out /dev/null 2>/dev/null ||
    die "openssl cms -verify refused the $name signature it just made"
  base64 -w0 "$d/$name.p7s"
}
