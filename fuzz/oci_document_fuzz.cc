// fuzz/oci_document_fuzz.cc — the OCI/Docker JSON documents a registry or an
// archive hands us: manifest, index, image config, token responses.
//
// Every parser runs on every input (the documents share most of their
// shape, so one corpus serves all). Checked: no crash or sanitizer report,
// errors carry a message, a parsed document keeps its exact bytes and their
// digest, and a parsed index's serialisation parses back.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "oci/auth.h"
#include "oci/digest.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/platform.h"

using namespace locald;

namespace {

template <typename T>
void check_error(const base::Result<T>& result, const char* what) {
    if (!result && result.error().message().empty()) {
        fprintf(stderr, "%s: error without a message\n", what);
        abort();
    }
}

template <typename Document>
void check_raw(const Document& document, const std::string& raw, const char* what) {
    if (document.raw != raw || document.digest != oci::Digest::sha256_of(raw)) {
        fprintf(stderr, "%s: raw bytes or digest not kept\n", what);
        abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string raw(reinterpret_cast<const char*>(data), size);

    for (std::string_view hint :
         {std::string_view{}, oci::media_types::kOciManifest, oci::media_types::kOciIndex,
          oci::media_types::kDockerManifest, oci::media_types::kDockerManifestList}) {
        auto document = oci::parse_manifest_document(raw, hint);
        check_error(document, "parse_manifest_document");
        if (document) {
            if (auto* manifest = std::get_if<oci::ImageManifest>(&*document)) {
                check_raw(*manifest, raw, "manifest");
            } else {
                auto& index = std::get<oci::ImageIndex>(*document);
                check_raw(index, raw, "index");
                oci::PlatformMatcher matcher(oci::Platform{"linux", "amd64", "", "", {}});
                auto selected = oci::select_manifest(index, matcher);
                check_error(selected, "select_manifest");
                // Writing the index back must give a document we accept.
                std::string written = oci::serialize_index(index.manifests, index.annotations);
                auto reparsed = oci::parse_image_index(written, oci::media_types::kOciIndex);
                if (!reparsed) {
                    fprintf(stderr, "serialize_index output rejected: %s\n%s\n",
                            reparsed.error().message().c_str(), written.c_str());
                    abort();
                }
                if (reparsed->manifests.size() != index.manifests.size()) {
                    abort();
                }
            }
        }
    }
    check_error(oci::parse_image_manifest(raw), "parse_image_manifest");
    check_error(oci::parse_image_index(raw), "parse_image_index");
    auto config = oci::parse_image_config(raw);
    check_error(config, "parse_image_config");
    if (config) {
        check_raw(*config, raw, "config");
    }
    check_error(oci::detect_manifest_media_type(raw), "detect_manifest_media_type");
    check_error(oci::parse_token_response(raw), "parse_token_response");
    return 0;
}
