// Public-key wrapping of the repository data key, so that a host holding only
// a public key (or X.509 certificate) can write backups it cannot read.
// Objects are always encrypted with a symmetric EncryptionKey (the "data
// key"); WrapDataKey seals that key to an RSA public key with RSA-OAEP
// (SHA-256, MGF1-SHA-256, label "smartbackup data key") and UnwrapDataKey
// opens it with the private key. The wrapped form is one ASCII line, safe to
// store in the repository and in JSON (format: doc/repository-object-format.md,
// "Wrapped data key"). Private keys are read without prompting: a
// passphrase-protected PEM is refused with a clear message.
// Thread-safety: stateless functions, safe from any thread.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "repo/object_codec.h"

namespace sb {

// Seals data_key to the RSA public key (>= 2048 bits) in the PEM file, which
// may hold a "PUBLIC KEY" or a "CERTIFICATE". Randomised: two calls give
// different strings. Errors: kInvalidArgument naming the file.
Result<std::string> WrapDataKey(const EncryptionKey& data_key, const std::string& public_key_pem_path);

// Opens a WrapDataKey result with the matching RSA private key (PEM, PKCS#8
// or traditional, unencrypted). The wrong private key gives
// kPermissionDenied; a damaged wrapped key gives kCorruption.
Result<EncryptionKey> UnwrapDataKey(std::string_view wrapped, const std::string& private_key_pem_path);

// Non-secret fingerprint of the public key in a PEM file (public key,
// certificate, or private key): hex of SHA-256(DER SubjectPublicKeyInfo)[:8].
// Recorded in the wrapped form so a wrong private key is named as such.
Result<std::string> PublicKeyFingerprint(const std::string& pem_path);

}  // namespace sb
