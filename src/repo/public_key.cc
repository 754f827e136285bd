// RSA-OAEP wrapping of the data key. Format and rationale:
// doc/repository-object-format.md ("Wrapped data key").
#include "repo/public_key.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include <fmt/core.h>

#include "common/encoding.h"
#include "common/text.h"

namespace sb {

namespace {

constexpr std::string_view kPrefix = "sbwk1";
constexpr std::string_view kAlgorithm = "rsa-oaep-sha256";
constexpr std::string_view kOaepLabel = "smartbackup data key";
constexpr int kMinRsaBits = 2048;

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;
using Bio = std::unique_ptr<BIO, BioDeleter>;

// The latest OpenSSL error as text, and the thread's error queue emptied so
// it cannot leak into a later, unrelated message.
std::string TakeSslError() {
  unsigned long e = ERR_peek_last_error();
  std::string text = "unknown error";
  if (e != 0) {
    const char* reason = ERR_reason_error_string(e);
    if (reason != nullptr) text = reason;
  }
  ERR_clear_error();
  return text;
}

Result<std::string> ReadPemFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument(fmt::format("cannot read {} file \"{}\": {}", what, path, std::strerror(errno)));
  }
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::InvalidArgument(fmt::format("cannot read {} file \"{}\"", what, path));
  if (data.size() > (1u << 20)) {
    return Status::InvalidArgument(fmt::format("{} file \"{}\" is too large to be a PEM key", what, path));
  }
  return data;
}

Bio MemBio(const std::string& data) { return Bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size()))); }

// Never prompt on a terminal for a passphrase: fail instead.
int NoPassphrase(char*, int, int, void*) { return -1; }

Result<Pkey> LoadPublicKey(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadPemFile(path, "public key"));
  Pkey key;
  {
    Bio bio = MemBio(pem);
    key.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassphrase, nullptr));
  }
  if (!key) {
    ERR_clear_error();
    Bio bio = MemBio(pem);
    std::unique_ptr<X509, X509Deleter> cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
    if (cert) key.reset(X509_get_pubkey(cert.get()));
  }
  if (!key) {
    // A private key file also carries the public half; accept it so a test
    // or a single-host setup can use one file.
    ERR_clear_error();
    Bio bio = MemBio(pem);
    key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  }
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!key) {
    return Status::InvalidArgument(fmt::format(
        "\"{}\" holds no PEM public key or certificate ({}); hint: export one into a new file with: openssl pkey "
        "-in PRIVATE.pem -pubout -out PUBLIC.pem, then pass --public-key PUBLIC.pem",
        path, TakeSslError()));
  }
  return key;
}

Result<Pkey> LoadPrivateKey(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadPemFile(path, "private key"));
  Bio bio = MemBio(pem);
  Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  bool encrypted = pem.find("ENCRYPTED") != std::string::npos;
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!key) {
    std::string err = TakeSslError();
    if (encrypted) {
      return Status::InvalidArgument(fmt::format(
          "private key file \"{}\" is passphrase-protected, which is not supported; hint: store it decrypted with "
          "mode 0600: openssl pkey -in {} -out DECRYPTED.pem",
          path, path));
    }
    return Status::InvalidArgument(fmt::format("\"{}\" holds no PEM private key ({})", path, err));
  }
  return key;
}

Status CheckRsa(const EVP_PKEY* key, const std::string& path) {
  if (EVP_PKEY_is_a(key, "RSA") != 1) {
    return Status::InvalidArgument(fmt::format(
        "key in \"{}\" is not an RSA key; hint: create one with: openssl genpkey -algorithm RSA -pkeyopt "
        "rsa_keygen_bits:3072 -out private.pem",
        path));
  }
  int bits = EVP_PKEY_get_bits(key);
  if (bits < kMinRsaBits) {
    return Status::InvalidArgument(
        fmt::format("RSA key in \"{}\" has {} bits; at least {} are required", path, bits, kMinRsaBits));
  }
  return Status::Ok();
}

Result<std::string> Fingerprint(const EVP_PKEY* key) {
  // i2d_PUBKEY encodes only the public half, also for a private key.
  int len = i2d_PUBKEY(key, nullptr);
  if (len <= 0) return Status::Internal("cannot encode public key: " + TakeSslError());
  std::string der(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PUBKEY(key, &p) != len) return Status::Internal("cannot encode public key: " + TakeSslError());
  return Sha256Hex(der).substr(0, 16);
}

// Sets RSA-OAEP with SHA-256 for both the digest and MGF1, and our label.
bool SetOaep(EVP_PKEY_CTX* ctx) {
  if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0) return false;
  if (EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0) return false;
  if (EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0) return false;
  // set0 takes ownership of an OPENSSL_malloc'd label.
  void* label = OPENSSL_memdup(kOaepLabel.data(), kOaepLabel.size());
  if (label == nullptr) return false;
  if (EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, label, static_cast<int>(kOaepLabel.size())) <= 0) {
    OPENSSL_free(label);
    return false;
  }
  return true;
}

// Wrapped keys are written padded; anything else is not one of ours.
bool Unbase64(std::string_view text, std::string* out) {
  if (text.empty() || text.size() > 8192) return false;
  auto decoded = Base64Decode(text, Base64Padding::kRequired);
  if (!decoded.ok()) return false;
  *out = std::move(decoded).value();
  return true;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

}  // namespace

Result<std::string> PublicKeyFingerprint(const std::string& pem_path) {
  ASSIGN_OR_RETURN(Pkey key, LoadPublicKey(pem_path));
  return Fingerprint(key.get());
}

Result<std::string> WrapDataKey(const EncryptionKey& data_key, const std::string& public_key_pem_path) {
  ASSIGN_OR_RETURN(Pkey key, LoadPublicKey(public_key_pem_path));
  RETURN_IF_ERROR(CheckRsa(key.get(), public_key_pem_path));
  ASSIGN_OR_RETURN(std::string fingerprint, Fingerprint(key.get()));

  PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!ctx || EVP_PKEY_encrypt_init(ctx.get()) <= 0 || !SetOaep(ctx.get())) {
    return Status::Internal(
        fmt::format("cannot set up RSA-OAEP with \"{}\": {}", public_key_pem_path, TakeSslError()));
  }
  const auto& k = data_key.bytes();
  size_t len = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &len, k.data(), k.size()) <= 0) {
    return Status::Internal(fmt::format("RSA-OAEP sizing failed: {}", TakeSslError()));
  }
  std::string sealed(len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(sealed.data()), &len, k.data(), k.size()) <= 0) {
    return Status::Internal(fmt::format("RSA-OAEP encryption failed: {}", TakeSslError()));
  }
  sealed.resize(len);
  return fmt::format("{}:{}:{}:{}:{}", kPrefix, kAlgorithm, data_key.key_id(), fingerprint, Base64Encode(sealed));
}

Result<EncryptionKey> UnwrapDataKey(std::string_view wrapped, const std::string& private_key_pem_path) {
  std::string text = Trim(wrapped);
  auto parts = Split(text, ':');
  auto bad = [](std::string_view why) {
    return Status::Corruption(fmt::format("wrapped data key is corrupt ({})", why));
  };
  if (parts.size() != 5 || parts[0] != kPrefix) return bad("not an sbwk1 record");
  if (parts[1] != kAlgorithm) {
    return Status::Corruption(fmt::format("wrapped data key uses unknown algorithm \"{}\"", parts[1]));
  }
  std::string_view key_id = parts[2];
  std::string_view want_fingerprint = parts[3];
  if (key_id.size() != 16 || want_fingerprint.size() != 16) return bad("bad key id or fingerprint field");
  std::string sealed;
  if (!Unbase64(parts[4], &sealed)) return bad("bad base64");

  ASSIGN_OR_RETURN(Pkey key, LoadPrivateKey(private_key_pem_path));
  RETURN_IF_ERROR(CheckRsa(key.get(), private_key_pem_path));
  ASSIGN_OR_RETURN(std::string fingerprint, Fingerprint(key.get()));
  if (fingerprint != want_fingerprint) {
    return Status::PermissionDenied(fmt::format(
        "wrong private key \"{}\" for data key {} (key fingerprint {}, data key is wrapped for {})",
        private_key_pem_path, key_id, fingerprint, want_fingerprint));
  }

  PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!ctx || EVP_PKEY_decrypt_init(ctx.get()) <= 0 || !SetOaep(ctx.get())) {
    return Status::Internal(
        fmt::format("cannot set up RSA-OAEP with \"{}\": {}", private_key_pem_path, TakeSslError()));
  }
  size_t len = 0;
  if (EVP_PKEY_decrypt(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(sealed.data()),
                       sealed.size()) <= 0) {
    TakeSslError();
    return bad("RSA-OAEP decryption failed");
  }
  std::string opened(len, '\0');
  if (EVP_PKEY_decrypt(ctx.get(), reinterpret_cast<unsigned char*>(opened.data()), &len,
                       reinterpret_cast<const unsigned char*>(sealed.data()), sealed.size()) <= 0) {
    TakeSslError();
    OPENSSL_cleanse(opened.data(), opened.size());
    return bad("RSA-OAEP decryption failed");
  }
  if (len != 32) {
    OPENSSL_cleanse(opened.data(), opened.size());
    return bad("unwrapped key is not 32 bytes");
  }
  std::array<uint8_t, 32> bytes{};
  std::memcpy(bytes.data(), opened.data(), 32);
  OPENSSL_cleanse(opened.data(), opened.size());
  EncryptionKey data_key = EncryptionKey::FromBytes(bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  if (data_key.key_id() != key_id) return bad("unwrapped key does not match its key id");
  return data_key;
}

}  // namespace sb
