#include "storage/azure/azure_storage.h"

#include <fmt/core.h>
#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "common/encoding.h"
#include "common/logging.h"
#include "common/text.h"
#include "common/uuid.h"
#include "storage/azure/azure_auth.h"
#include "storage/http/http_client.h"

namespace sb {
namespace {

using azure::HeaderList;

Result<http::Endpoint> ParseAzureEndpoint(std::string_view endpoint) {
  return http::ParseEndpoint(endpoint, "azure", "https://ACCOUNT.blob.core.windows.net");
}

constexpr const char* kDevAccount = "devstoreaccount1";
// The fixed, publicly documented key of the Azure storage emulator.
constexpr const char* kDevKey =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
constexpr const char* kCredentialHint =
    "hint: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or "
    "AZURE_STORAGE_SAS_TOKEN";
constexpr uint64_t kMaxBlocks = 50000;
constexpr uint64_t kMaxBlockSize = 4000ull << 20;
constexpr uint64_t kMaxSinglePut = 5000ull << 20;

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    // RAND_bytes only fails when the system has no entropy source at all.
    std::random_device rd;
    for (auto& c : out) c = static_cast<char>(rd());
  }
  return out;
}

// A lease id that depends only on (holder, key).
std::string HolderLeaseId(std::string_view holder_id, std::string_view key) {
  return NameUuid("smartbackup-lease\n" + std::string(holder_id) + "\n" + std::string(key));
}

// Header values we send must be printable ASCII without edge whitespace, or
// the signature canonicalization and the server disagree.
std::string SanitizeHeaderValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : '_');
  }
  return Trim(out);
}

// ---- minimal XML reading for List Blobs responses -------------------------

std::string XmlUnescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out.push_back(s[i]);
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    uint32_t cp = 0;
    bool is_cp = false;
    if (ent == "amp") {
      out.push_back('&');
    } else if (ent == "lt") {
      out.push_back('<');
    } else if (ent == "gt") {
      out.push_back('>');
    } else if (ent == "quot") {
      out.push_back('"');
    } else if (ent == "apos") {
      out.push_back('\'');
    } else if (ent.size() > 1 && ent[0] == '#') {
      std::string num(ent.substr(1));
      char* end = nullptr;
      unsigned long v = (num[0] == 'x' || num[0] == 'X') ? std::strtoul(num.c_str() + 1, &end, 16)
                                                         : std::strtoul(num.c_str(), &end, 10);
      if (end == nullptr || *end != '\0' || v > 0x10ffff) {
        out.push_back(s[i]);
        continue;
      }
      cp = static_cast<uint32_t>(v);
      is_cp = true;
    } else {
      out.push_back(s[i]);
      continue;
    }
    if (is_cp) {  // UTF-8 encode
      if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
      } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
      } else {
        out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
      }
    }
    i = semi;
  }
  return out;
}

struct XmlElement {
  std::string_view attrs;
  std::string_view content;  // raw, still escaped
};

// Finds the next <tag …>…</tag> (or <tag/>) at or after *pos and moves *pos
// past it. Names are escaped in the document, so a plain scan cannot be
// fooled by a blob called "<Blob>".
bool NextElement(std::string_view xml, std::string_view tag, size_t* pos, XmlElement* out) {
  std::string open = "<" + std::string(tag);
  size_t at = *pos;
  while (true) {
    at = xml.find(open, at);
    if (at == std::string_view::npos) return false;
    size_t after = at + open.size();
    if (after < xml.size() && (xml[after] == '>' || xml[after] == '/' || std::isspace(static_cast<unsigned char>(xml[after])))) {
      break;
    }
    at = after;
  }
  size_t gt = xml.find('>', at);
  if (gt == std::string_view::npos) return false;
  size_t attr_begin = at + open.size();
  if (xml[gt - 1] == '/') {
    out->attrs = xml.substr(attr_begin, gt - 1 - attr_begin);
    out->content = {};
    *pos = gt + 1;
    return true;
  }
  out->attrs = xml.substr(attr_begin, gt - attr_begin);
  std::string close = "</" + std::string(tag) + ">";
  size_t end = xml.find(close, gt + 1);
  if (end == std::string_view::npos) return false;
  out->content = xml.substr(gt + 1, end - gt - 1);
  *pos = end + close.size();
  return true;
}

std::string ChildText(std::string_view xml, std::string_view tag) {
  size_t pos = 0;
  XmlElement e;
  if (!NextElement(xml, tag, &pos, &e)) return "";
  return XmlUnescape(e.content);
}

// ---- requests ----------------------------------------------------------------

struct AzureRequest {
  std::string op{};   // "put", "get", … for messages
  std::string key{};  // the storage key concerned, empty for container operations
  std::string method{};
  std::string path{};  // encoded, below the endpoint: "/container" or "/container/blob"
  HeaderList query{};  // decoded
  HeaderList headers{};
  std::string_view body{};
};

using http::Response;

// Azure's error code: the x-ms-error-code header, else <Code> in the body.
std::string ErrorCode(const Response& resp) {
  std::string code = resp.Header("x-ms-error-code");
  if (code.empty()) code = ChildText(resp.body, "Code");
  return SanitizeHeaderValue(code);
}

// Shared by the storage and its leases, so a lease outlives the storage.
class AzureClient {
 public:
  AzureClient(AzureStorageOptions options, http::Endpoint endpoint, std::string key)
      : options_(std::move(options)),
        key_(std::move(key)),
        http_(std::move(endpoint), HttpOptions(options_)) {
    std::string sas = options_.sas_token;
    if (!sas.empty() && sas[0] == '?') sas.erase(0, 1);
    sas_ = sas;
    describe_ = "azure://" + options_.container + (options_.prefix.empty() ? "" : "/" + options_.prefix);
  }
  AzureClient(const AzureClient&) = delete;
  AzureClient& operator=(const AzureClient&) = delete;

  const AzureStorageOptions& options() const { return options_; }
  const std::string& describe() const { return describe_; }

  std::string BlobName(std::string_view key) const {
    return options_.prefix.empty() ? std::string(key) : options_.prefix + "/" + std::string(key);
  }
  std::string BlobPath(std::string_view key) const {
    return "/" + options_.container + "/" + azure::UrlEncode(BlobName(key), true);
  }
  std::string ContainerPath() const { return "/" + options_.container; }

  // Sends the request through the HTTP client (which retries transport
  // failures and 408/429/5xx). Returns the last response or transport error.
  Result<Response> Execute(const AzureRequest& req) {
    return http_.Execute([&] { return Sign(req); }, fmt::format("azure {} {}", req.op, What(req)));
  }

  // Execute, creating the container and trying once more when it is missing.
  Result<Response> ExecuteCreatingContainer(const AzureRequest& req) {
    ASSIGN_OR_RETURN(Response resp, Execute(req));
    if (resp.status != 404 || ErrorCode(resp) != "ContainerNotFound") return resp;
    RETURN_IF_ERROR(CreateContainer());
    return Execute(req);
  }

  Status CreateContainer() {
    AzureRequest req{.op = "create container", .method = "PUT", .path = ContainerPath(),
                    .query = {{"restype", "container"}}};
    ASSIGN_OR_RETURN(Response resp, Execute(req));
    if (resp.status == 201 || (resp.status == 409 && ErrorCode(resp) == "ContainerAlreadyExists")) {
      if (resp.status == 201) log::Info("created azure container \"{}\"", options_.container);
      return Status::Ok();
    }
    return Translate(req, resp);
  }

  std::string What(const AzureRequest& req) const {
    return req.key.empty() ? describe_ : fmt::format("\"{}\" in {}", req.key, describe_);
  }

  // The one place Azure answers become Status codes (the HTTP client decides
  // which statuses are retryable or credential failures).
  Status Translate(const AzureRequest& req, const Response& resp) const {
    std::string code = ErrorCode(resp);
    std::string detail = code.empty() ? fmt::format("HTTP {}", resp.status) : fmt::format("HTTP {} {}", resp.status, code);
    long s = resp.status;
    const http::StatusClass kind = http::ClassifyHttpStatus(s);
    if (kind == http::StatusClass::kCredentials) {
      return Status::PermissionDenied(
          fmt::format("azure rejected the credentials for {} {} ({}); hint: check AZURE_STORAGE_KEY / SAS token "
                      "(and its permissions and expiry)",
                      req.op, What(req), detail));
    }
    if (s == 404) {
      if (code == "ContainerNotFound") {
        return Status::NotFound(fmt::format("azure container \"{}\" not found ({} {})", options_.container, req.op,
                                            What(req)));
      }
      if (req.key.empty()) return Status::NotFound(fmt::format("{} {}: not found ({})", req.op, describe_, detail));
      return Status::NotFound(fmt::format("object \"{}\" not found in {}", req.key, describe_));
    }
    if (s == 409 || s == 412) {
      if (code.rfind("Lease", 0) == 0) {
        return Status::FailedPrecondition(
            fmt::format("azure {} {} refused: the object is leased ({})", req.op, What(req), detail));
      }
      if (code == "ContainerBeingDeleted") {
        return Status::Unavailable(fmt::format("azure {} {}: container is being deleted ({})", req.op, What(req), detail));
      }
      return Status::AlreadyExists(fmt::format("object \"{}\" already exists in {}", req.key, describe_));
    }
    if (kind == http::StatusClass::kRetryable) {
      return Status::Unavailable(fmt::format("azure is unavailable for {} {} ({})", req.op, What(req), detail));
    }
    if (s == 400 || s == 413 || s == 416) {
      return Status::InvalidArgument(fmt::format("azure refused {} {} ({})", req.op, What(req), detail));
    }
    return Status::IoError(fmt::format("azure {} {} failed ({})", req.op, What(req), detail));
  }

 private:
  static http::ClientOptions HttpOptions(const AzureStorageOptions& o) {
    http::ClientOptions h;
    h.max_retries = o.max_retries;
    h.clock = o.clock;
    h.service = "azure";
    h.max_idle_connections = static_cast<size_t>(o.parallelism) + 4;
    return h;
  }

  // The HTTP request for one attempt: the date and the SharedKey signature
  // are made afresh each time.
  http::Request Sign(const AzureRequest& req) const {
    std::string query;
    for (const auto& [name, value] : req.query) {
      query += (query.empty() ? "" : "&") + azure::UrlEncode(name, false) + "=" + azure::UrlEncode(value, false);
    }
    if (key_.empty() && !sas_.empty()) query += (query.empty() ? "" : "&") + sas_;
    const http::Endpoint& ep = http_.endpoint();
    http::Request out{.method = req.method,
                      .url = ep.base + ep.path + req.path + (query.empty() ? "" : "?" + query),
                      .headers = req.headers,
                      .body = req.body};
    out.headers.emplace_back("x-ms-version", azure::kApiVersion);
    out.headers.emplace_back("x-ms-date", azure::FormatHttpDate(options_.clock->Now()));
    if (req.method == "PUT" && req.body.empty()) out.headers.emplace_back("Content-Length", "0");
    if (!key_.empty()) {
      azure::SignableRequest sr{.method = req.method, .path = ep.path + req.path, .query = req.query,
                                .headers = out.headers, .content_length = req.body.size()};
      out.headers.emplace_back("Authorization", azure::SharedKeyAuthorization(options_.account, key_, sr));
    }
    return out;
  }

  AzureStorageOptions options_;
  std::string key_;  // decoded account key; empty with SAS
  std::string sas_;
  std::string describe_;
  http::HttpClient http_;
};

// ---- leases ------------------------------------------------------------------

class AzureLease final : public Lease {
 public:
  AzureLease(std::shared_ptr<AzureClient> client, std::string key, std::string lease_id)
      : client_(std::move(client)), key_(std::move(key)), lease_id_(std::move(lease_id)) {}
  ~AzureLease() override {
    Status s = Release();
    if (!s.ok()) log::Warn("releasing lease on \"{}\" in {}: {}", key_, client_->describe(), s.message());
  }

  Status Renew() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (released_) return Status::FailedPrecondition(fmt::format("lease on \"{}\" was already released", key_));
    AzureRequest req = LeaseRequest("renew lease", "renew");
    ASSIGN_OR_RETURN(Response resp, client_->Execute(req));
    if (resp.status == 200) return Status::Ok();
    if (resp.status == 404 || resp.status == 409) {
      return Status::FailedPrecondition(fmt::format(
          "lease on \"{}\" in {} was lost (it expired and another agent took it, or the object was deleted)", key_,
          client_->describe()));
    }
    return client_->Translate(req, resp);
  }

  Status Release() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (released_) return Status::Ok();
    AzureRequest req = LeaseRequest("release lease", "release");
    ASSIGN_OR_RETURN(Response resp, client_->Execute(req));
    if (resp.status == 200 || resp.status == 404 || resp.status == 409) {
      // 404/409: the blob is gone or the lease already belongs to someone
      // else; either way we no longer hold it.
      released_ = true;
      return Status::Ok();
    }
    return client_->Translate(req, resp);
  }

 private:
  AzureRequest LeaseRequest(std::string op, std::string action) const {
    return AzureRequest{.op = std::move(op), .key = key_, .method = "PUT", .path = client_->BlobPath(key_),
                       .query = {{"comp", "lease"}},
                       .headers = {{"x-ms-lease-action", std::move(action)}, {"x-ms-lease-id", lease_id_}}};
  }

  std::shared_ptr<AzureClient> client_;
  std::string key_;
  std::string lease_id_;
  std::mutex mu_;
  bool released_ = false;
};

// ---- the driver ----------------------------------------------------------------

class AzureStorage final : public Storage {
 public:
  explicit AzureStorage(std::shared_ptr<AzureClient> client) : client_(std::move(client)) {}

  Status Put(std::string_view key, std::string_view data, const PutOptions& options) override {
    RETURN_IF_ERROR(CheckKey(key));
    if (data.size() > client_->options().single_put_max) return PutBlocks(key, data, options);
    return Write(AzureRequest{.op = "put", .key = std::string(key), .method = "PUT", .path = client_->BlobPath(key),
                              .headers = {{"x-ms-blob-type", "BlockBlob"}}, .body = data},
                 options, /*create_container=*/true);
  }

  Result<std::string> Get(std::string_view key) override {
    RETURN_IF_ERROR(CheckKey(key));
    AzureRequest req{.op = "get", .key = std::string(key), .method = "GET", .path = client_->BlobPath(key)};
    ASSIGN_OR_RETURN(Response resp, client_->Execute(req));
    if (resp.status == 200) return std::move(resp.body);
    return client_->Translate(req, resp);
  }

  Result<std::string> GetRange(std::string_view key, uint64_t offset, uint64_t length) override {
    RETURN_IF_ERROR(CheckKey(key));
    if (length == 0) {
      ASSIGN_OR_RETURN(ObjectInfo info, Stat(key));
      (void)info;
      return std::string();
    }
    std::string range = length > UINT64_MAX - offset ? fmt::format("bytes={}-", offset)
                                                     : fmt::format("bytes={}-{}", offset, offset + length - 1);
    AzureRequest req{.op = "get range", .key = std::string(key), .method = "GET", .path = client_->BlobPath(key),
                    .headers = {{"x-ms-range", range}}};
    ASSIGN_OR_RETURN(Response resp, client_->Execute(req));
    if (resp.status == 206) return std::move(resp.body);
    if (resp.status == 200) {  // the whole object (a server that ignored the range)
      if (offset >= resp.body.size()) return std::string();
      return resp.body.substr(offset, std::min<uint64_t>(length, resp.body.size() - offset));
    }
    // 416: the object exists but the range starts at or past its end.
    if (resp.status == 416) return std::string();
    return client_->Translate(req, resp);
  }

  Result<ObjectInfo> Stat(std::string_view key) override {
    RETURN_IF_ERROR(CheckKey(key));
    AzureRequest req{.op = "stat", .key = std::string(key), .method = "HEAD", .path = client_->BlobPath(key)};
    ASSIGN_OR_RETURN(Response resp, client_->Execute(req));
    if (resp.status != 200) return client_->Translate(req, resp);
    ObjectInfo info;
    info.key = std::string(key);
    info.size = std::strtoull(resp.Header("content-length").c_str(), nullptr, 10);
    if (auto t = azure::ParseHttpDate(resp.Header("last-modified")); t.ok()) {
      info.mtime = *t;
    }
    return info;
  }

  Result<ListPage> List(std::string_view prefix, std::string_view page_token, int max_results) override {
    const std::string& root = client_->options().prefix;
    std::string strip = root.empty() ? "" : root + "/";
    std::string blob_prefix = strip + std::string(prefix);
    if (max_results <= 0) max_results = 1000;
    max_results = std::min(max_results, 5000);
    AzureRequest req{.op = "list", .method = "GET", .path = client_->ContainerPath(),
                    .query = {{"restype", "container"}, {"comp", "list"}}};
    req.query.emplace_back("maxresults", std::to_string(max_results));
    if (!blob_prefix.empty()) req.query.emplace_back("prefix", blob_prefix);
    if (!page_token.empty()) req.query.emplace_back("marker", std::string(page_token));
    ASSIGN_OR_RETURN(Response resp, client_->Execute(req));
    if (resp.status == 404 && ErrorCode(resp) == "ContainerNotFound") return ListPage{};
    if (resp.status != 200) return client_->Translate(req, resp);

    ListPage page;
    std::string_view xml = resp.body;
    size_t pos = 0;
    XmlElement blob;
    while (NextElement(xml, "Blob", &pos, &blob)) {
      size_t p = 0;
      XmlElement name_el;
      if (!NextElement(blob.content, "Name", &p, &name_el)) {
        return Status::IoError(fmt::format("azure list {}: malformed response (blob without a name)",
                                           client_->describe()));
      }
      std::string name = XmlUnescape(name_el.content);
      if (name_el.attrs.find("Encoded=\"true\"") != std::string_view::npos) name = azure::UrlDecode(name);
      if (!StartsWith(name, strip)) continue;
      ObjectInfo info;
      info.key = name.substr(strip.size());
      info.size = std::strtoull(ChildText(blob.content, "Content-Length").c_str(), nullptr, 10);
      if (auto t = azure::ParseHttpDate(ChildText(blob.content, "Last-Modified")); t.ok()) {
        info.mtime = *t;
      }
      page.objects.push_back(std::move(info));
    }
    page.next_token = ChildText(xml, "NextMarker");
    return page;
  }

  Status Delete(std::string_view key) override {
    RETURN_IF_ERROR(CheckKey(key));
    AzureRequest req{.op = "delete", .key = std::string(key), .method = "DELETE", .path = client_->BlobPath(key)};
    ASSIGN_OR_RETURN(Response resp, client_->Execute(req));
    if (resp.status == 202 || resp.status == 200 || resp.status == 404) return Status::Ok();
    return client_->Translate(req, resp);
  }

  Result<std::unique_ptr<Lease>> AcquireLease(std::string_view key, const LeaseOptions& options) override {
    RETURN_IF_ERROR(CheckKey(key));
    int64_t seconds = std::clamp<int64_t>(options.ttl.count(), 15, 60);
    // A stable holder proposes the same lease id each time, so after a crash
    // it re-acquires its own lease at once (Azure accepts Acquire with the
    // active lease's id); anyone else still gets LeaseAlreadyPresent.
    std::string lease_id = options.holder_id.empty() ? RandomUuid() : HolderLeaseId(options.holder_id, key);
    AzureRequest req{.op = "acquire lease", .key = std::string(key), .method = "PUT", .path = client_->BlobPath(key),
                    .query = {{"comp", "lease"}},
                    .headers = {{"x-ms-lease-action", "acquire"},
                                {"x-ms-lease-duration", std::to_string(seconds)},
                                {"x-ms-proposed-lease-id", lease_id}}};
    ASSIGN_OR_RETURN(Response resp, client_->Execute(req));
    if (resp.status == 404) {
      // Leases need a blob: create an empty one unless someone else just did.
      AzureRequest create{.op = "create lease object", .key = std::string(key), .method = "PUT",
                         .path = client_->BlobPath(key),
                         .headers = {{"x-ms-blob-type", "BlockBlob"}, {"If-None-Match", "*"}}};
      ASSIGN_OR_RETURN(Response created, client_->ExecuteCreatingContainer(create));
      if (created.status != 201 && created.status != 409 && created.status != 412) {
        return client_->Translate(create, created);
      }
      ASSIGN_OR_RETURN(resp, client_->Execute(req));
    }
    if (resp.status == 409 && ErrorCode(resp) == "LeaseAlreadyPresent") return HeldBy(key);
    if (resp.status != 201 && resp.status != 200) return client_->Translate(req, resp);

    std::string owner = SanitizeHeaderValue(options.owner);
    if (!owner.empty()) {
      AzureRequest meta{.op = "record lease owner", .key = std::string(key), .method = "PUT",
                       .path = client_->BlobPath(key), .query = {{"comp", "metadata"}},
                       .headers = {{"x-ms-meta-owner", owner}, {"x-ms-lease-id", lease_id}}};
      auto r = client_->Execute(meta);
      if (!r.ok() || r->status != 200) {
        log::Warn("could not record the owner of the lease on \"{}\" in {}", key, client_->describe());
      }
    }
    return std::unique_ptr<Lease>(new AzureLease(client_, std::string(key), lease_id));
  }

  std::string Describe() const override { return client_->describe(); }

 private:
  static Status CheckKey(std::string_view key) {
    if (key.empty()) return Status::InvalidArgument("empty storage key");
    if (key.front() == '/') return Status::InvalidArgument(fmt::format("storage key \"{}\" starts with '/'", key));
    return Status::Ok();
  }

  Status HeldBy(std::string_view key) {
    std::string owner;
    AzureRequest head{.op = "stat", .key = std::string(key), .method = "HEAD", .path = client_->BlobPath(key)};
    if (auto r = client_->Execute(head); r.ok() && r->status == 200) owner = r->Header("x-ms-meta-owner");
    if (owner.empty()) return Status::AlreadyExists(fmt::format("lease on \"{}\" is held by another agent", key));
    return Status::AlreadyExists(fmt::format("lease on \"{}\" is held by another agent (\"{}\")", key, owner));
  }

  Status PutBlocks(std::string_view key, std::string_view data, const PutOptions& options) {
    const AzureStorageOptions& o = client_->options();
    uint64_t block = std::clamp<uint64_t>(o.block_size, 1, kMaxBlockSize);
    if ((data.size() + block - 1) / block > kMaxBlocks) block = (data.size() + kMaxBlocks - 1) / kMaxBlocks;
    const uint64_t count = (data.size() + block - 1) / block;

    if (options.if_absent) {  // fail before uploading gigabytes; the commit re-checks
      auto st = Stat(key);
      if (st.ok()) return Status::AlreadyExists(fmt::format("object \"{}\" already exists in {}", key, Describe()));
      if (!st.status().IsNotFound()) return st.status();
    }

    // Every id has the same length (Azure requires it per blob); the random
    // part keeps concurrent uploads of the same key from mixing blocks.
    const std::string nonce = HexEncode(RandomBytes(8));
    auto block_id = [&](uint64_t i) { return Base64Encode(fmt::format("sb-{}-{:06}", nonce, i)); };

    std::atomic<uint64_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mu;
    Status first_error;
    auto worker = [&] {
      while (!failed.load()) {
        uint64_t i = next.fetch_add(1);
        if (i >= count) return;
        AzureRequest req{.op = "put block", .key = std::string(key), .method = "PUT", .path = client_->BlobPath(key),
                        .query = {{"comp", "block"}, {"blockid", block_id(i)}},
                        .body = data.substr(i * block, block)};
        auto resp = client_->ExecuteCreatingContainer(req);
        Status s = !resp.ok() ? resp.status() : resp->status == 201 ? Status::Ok() : client_->Translate(req, *resp);
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first_error.ok()) first_error = s;
          failed = true;
        }
      }
    };
    int threads = static_cast<int>(std::min<uint64_t>(std::max(o.parallelism, 1), count));
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    RETURN_IF_ERROR(first_error);

    std::string xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
    for (uint64_t i = 0; i < count; ++i) xml += "<Latest>" + block_id(i) + "</Latest>";
    xml += "</BlockList>";
    // The blocks created the container if it was missing.
    return Write(AzureRequest{.op = "put", .key = std::string(key), .method = "PUT", .path = client_->BlobPath(key),
                              .query = {{"comp", "blocklist"}}, .body = xml},
                 options, /*create_container=*/false);
  }

  // Sends a request that makes the whole object (Put Blob, Put Block List).
  Status Write(AzureRequest req, const PutOptions& options, bool create_container) {
    if (options.if_absent) req.headers.emplace_back("If-None-Match", "*");
    ASSIGN_OR_RETURN(Response resp, create_container ? client_->ExecuteCreatingContainer(req) : client_->Execute(req));
    if (resp.status == 201 || resp.status == 200) return Status::Ok();
    return client_->Translate(req, resp);
  }

  std::shared_ptr<AzureClient> client_;
};

// "https://ACCOUNT.blob.core.windows.net" → ACCOUNT; Azurite's
// "http://host:port/ACCOUNT" → ACCOUNT.
std::string AccountFromEndpoint(const std::string& endpoint) {
  auto ep = ParseAzureEndpoint(endpoint);
  if (!ep.ok()) return "";
  if (ep->path.size() > 1) {
    std::string first = ep->path.substr(1);
    return first.substr(0, first.find('/'));
  }
  std::string host = ep->base.substr(ep->base.find("://") + 3);
  size_t dot = host.find('.');
  if (dot == std::string::npos) return "";
  return host.substr(0, dot);
}

std::string StripSlashes(std::string s) {
  while (!s.empty() && s.front() == '/') s.erase(0, 1);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

std::string GetEnv(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

}  // namespace

Status CheckAzureContainerName(std::string_view name) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(fmt::format(
        "invalid Azure container name \"{}\": {}; hint: use 3-63 lowercase letters, digits and single hyphens, e.g. "
        "azure://backups/prod",
        name, why));
  };
  if (name.size() < 3 || name.size() > 63) return bad("it must be 3 to 63 characters long");
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return bad("only lowercase letters, digits and hyphens are allowed");
    }
  }
  if (name.front() == '-' || name.back() == '-') return bad("it must start and end with a letter or digit");
  if (name.find("--") != std::string_view::npos) return bad("hyphens must not follow each other");
  return Status::Ok();
}

Result<std::unique_ptr<Storage>> OpenAzureStorage(const AzureStorageOptions& input) {
  AzureStorageOptions o = input;
  o.prefix = StripSlashes(o.prefix);
  RETURN_IF_ERROR(CheckAzureContainerName(o.container));
  ASSIGN_OR_RETURN(http::Endpoint ep, ParseAzureEndpoint(o.endpoint));
  if (o.shared_key_base64.empty() && o.sas_token.empty()) {
    return Status::InvalidArgument(fmt::format("no azure credentials for {}; {}", "azure://" + o.container,
                                               kCredentialHint));
  }
  std::string key;
  if (!o.shared_key_base64.empty()) {
    auto decoded = Base64Decode(Trim(o.shared_key_base64));
    if (!decoded.ok() || decoded->empty()) {
      return Status::InvalidArgument("the azure account key is not valid base64; hint: check AZURE_STORAGE_KEY");
    }
    key = std::move(decoded).value();
    if (o.account.empty()) o.account = AccountFromEndpoint(o.endpoint);
    if (o.account.empty()) {
      return Status::InvalidArgument("azure shared key auth needs the account name; hint: set AZURE_STORAGE_ACCOUNT");
    }
  }
  if (o.clock == nullptr) o.clock = Clock::Real();
  if (o.block_size == 0) o.block_size = 8ull << 20;
  o.single_put_max = std::min(o.single_put_max, kMaxSinglePut);
  o.parallelism = std::clamp(o.parallelism, 1, 64);
  o.max_retries = std::max(o.max_retries, 0);
  auto client = std::make_shared<AzureClient>(std::move(o), std::move(ep), std::move(key));
  return std::unique_ptr<Storage>(new AzureStorage(std::move(client)));
}

Result<AzureStorageOptions> AzureOptionsFromConnectionString(std::string_view connection_string,
                                                            const std::string& container, const std::string& prefix) {
  std::map<std::string, std::string> fields;  // lowercase names
  size_t part_no = 0;
  size_t start = 0;
  while (start <= connection_string.size()) {
    size_t end = connection_string.find(';', start);
    if (end == std::string_view::npos) end = connection_string.size();
    std::string part = Trim(connection_string.substr(start, end - start));
    start = end + 1;
    ++part_no;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    if (eq == std::string::npos || eq == 0) {
      // Never quote the part: it may be a secret.
      return Status::InvalidArgument(fmt::format(
          "malformed azure connection string: part {} is not Name=Value; hint: check AZURE_STORAGE_CONNECTION_STRING",
          part_no));
    }
    fields[Lower(Trim(part.substr(0, eq)))] = Trim(part.substr(eq + 1));
  }
  auto field = [&](const char* name) {
    auto it = fields.find(name);
    return it == fields.end() ? std::string() : it->second;
  };

  AzureStorageOptions o;
  o.container = container;
  o.prefix = prefix;
  if (Lower(field("usedevelopmentstorage")) == "true") {
    o.account = kDevAccount;
    o.shared_key_base64 = kDevKey;
    o.endpoint = std::string("http://127.0.0.1:10000/") + kDevAccount;
    if (!field("blobendpoint").empty()) o.endpoint = field("blobendpoint");
    return o;
  }
  o.account = field("accountname");
  o.shared_key_base64 = field("accountkey");
  o.sas_token = field("sharedaccesssignature");
  o.endpoint = field("blobendpoint");
  if (o.endpoint.empty()) {
    if (o.account.empty()) {
      return Status::InvalidArgument(
          "azure connection string has neither BlobEndpoint nor AccountName; hint: check "
          "AZURE_STORAGE_CONNECTION_STRING");
    }
    std::string protocol = Lower(field("defaultendpointsprotocol"));
    if (protocol.empty()) protocol = "https";
    if (protocol != "http" && protocol != "https") {
      return Status::InvalidArgument(
          fmt::format("azure connection string has DefaultEndpointsProtocol=\"{}\"; hint: use https", protocol));
    }
    std::string suffix = field("endpointsuffix");
    if (suffix.empty()) suffix = "core.windows.net";
    o.endpoint = protocol + "://" + o.account + ".blob." + suffix;
  }
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  if (o.account.empty()) o.account = AccountFromEndpoint(o.endpoint);
  if (o.shared_key_base64.empty() && o.sas_token.empty()) {
    return Status::InvalidArgument(
        "azure connection string has neither AccountKey nor SharedAccessSignature; hint: check "
        "AZURE_STORAGE_CONNECTION_STRING");
  }
  return o;
}

Result<AzureStorageOptions> AzureOptionsFromEnvironment(const std::string& container, const std::string& prefix) {
  AzureStorageOptions o;
  std::string cs = GetEnv("AZURE_STORAGE_CONNECTION_STRING");
  if (!Trim(cs).empty()) {
    ASSIGN_OR_RETURN(o, AzureOptionsFromConnectionString(cs, container, prefix));
  } else {
    o.container = container;
    o.prefix = prefix;
    o.account = Trim(GetEnv("AZURE_STORAGE_ACCOUNT"));
    o.shared_key_base64 = Trim(GetEnv("AZURE_STORAGE_KEY"));
    o.sas_token = Trim(GetEnv("AZURE_STORAGE_SAS_TOKEN"));
    if (o.account.empty() && o.shared_key_base64.empty() && o.sas_token.empty()) {
      return Status::InvalidArgument(fmt::format("azure credentials are not set; {}", kCredentialHint));
    }
    if (o.shared_key_base64.empty() && o.sas_token.empty()) {
      return Status::InvalidArgument(
          "AZURE_STORAGE_ACCOUNT is set but neither AZURE_STORAGE_KEY nor AZURE_STORAGE_SAS_TOKEN is; hint: set one "
          "of them");
    }
    if (o.account.empty() && GetEnv("AZURE_STORAGE_BLOB_ENDPOINT").empty()) {
      return Status::InvalidArgument("AZURE_STORAGE_ACCOUNT is not set; hint: set it to the storage account name");
    }
    if (!o.account.empty()) o.endpoint = "https://" + o.account + ".blob.core.windows.net";
  }
  std::string endpoint = Trim(GetEnv("AZURE_STORAGE_BLOB_ENDPOINT"));
  if (!endpoint.empty()) {
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    o.endpoint = endpoint;
    if (o.account.empty()) o.account = AccountFromEndpoint(o.endpoint);
  }
  return o;
}

}  // namespace sb
