// The web chat page, embedded in the binary at build time from web/dist/ (cmake/embed_files.cmake
// writes the table; web/build.sh builds web/dist from web/src with npm packages). GET / serves
// index.html; every other file is served at its path.
#pragma once
#include <cstddef>

namespace qs::serve {

struct WebAsset {
  const char* path;          // "/index.html", "/assets/app.js", ...
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

extern const WebAsset kWebAssets[];
extern const size_t kWebAssetCount;

}  // namespace qs::serve
