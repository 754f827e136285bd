// cpp-httplib as Debian builds it. Debian packages cpp-httplib 0.11 "split":
// httplib.h only declares, the code lives in libcpp-httplib.so, built with
// OpenSSL, zlib and brotli support. Those macros change class layouts, so they
// must be defined exactly as the library was built (pkg-config cpp-httplib
// --cflags) or Client/Server objects would not match the library. Include this
// header, never <httplib.h> directly.
#pragma once

#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_OPENSSL_SUPPORT
#endif
#ifndef CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT
#endif
#ifndef CPPHTTPLIB_BROTLI_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT
#endif

#include <httplib.h>
