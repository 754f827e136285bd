// Byte encodings shared by every layer: Base64 (RFC 4648, standard alphabet)
// and lower-case hex. One implementation each, so the Azure signer, the
// wrapped data keys and the repository key file decode alike.
// Pure functions, thread-safe. Decoding errors never quote the input (it may
// be a secret).
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace sb {

std::string Base64Encode(std::string_view bytes);

enum class Base64Padding {
  kOptional,  // "Zm8" and "Zm8=" both decode (Azure keys are sometimes pasted without it)
  kRequired,  // the length must be a multiple of 4, padded with '='
};
// Refuses characters outside the alphabet, data after padding, more than two
// '=' and impossible lengths with kInvalidArgument.
Result<std::string> Base64Decode(std::string_view text, Base64Padding padding = Base64Padding::kOptional);

std::string HexEncode(std::string_view bytes);
// Accepts either case; odd length or a non-hex digit: kInvalidArgument.
Result<std::string> HexDecode(std::string_view hex);

}  // namespace sb
