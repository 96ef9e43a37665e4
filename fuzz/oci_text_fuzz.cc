// fuzz/oci_text_fuzz.cc — the short strings of the OCI side: image
// references, digests, `--platform` values, WWW-Authenticate challenges,
// base64 `auth` values, archive member names.
//
// Properties beyond "no crash": a parsed reference prints (str()) to text
// that parses back to the same reference, and so does its familiar() form;
// a parsed digest prints back to its input; a normalised member name is
// stable and never absolute or `..`.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "oci/auth.h"
#include "oci/digest.h"
#include "oci/internal/docker_archive.h"
#include "oci/platform.h"
#include "oci/reference.h"

using namespace locald;

namespace {

[[noreturn]] void fail(const char* what, const std::string& input, const std::string& detail) {
    fprintf(stderr, "%s\ninput: %s\ndetail: %s\n", what, input.c_str(), detail.c_str());
    abort();
}

void check_reference(const std::string& text) {
    auto ref = oci::Reference::parse(text);
    if (!ref) {
        if (ref.error().message().empty()) {
            fail("reference error without a message", text, "");
        }
        return;
    }
    for (const std::string& printed : {ref->str(), ref->familiar()}) {
        auto again = oci::Reference::parse(printed);
        if (!again) {
            fail("printed reference does not parse", text,
                 printed + ": " + again.error().message());
        }
        if (!(*again == *ref)) {
            fail("printed reference parses to another reference", text,
                 printed + " -> " + again->str());
        }
    }
    (void)ref->api_host();
    (void)ref->credential_key();
    (void)ref->manifest_reference();
    (void)oci::is_loopback_registry(ref->domain());
}

void check_digest(const std::string& text) {
    auto digest = oci::Digest::parse(text);
    if (digest && digest->str() != text) {
        fail("digest does not print back to its input", text, digest->str());
    }
}

void check_member_name(const std::string& text) {
    auto name = oci::internal::normalize_member_name(text, "fuzz.tar");
    if (!name) {
        return;
    }
    if (name->starts_with("/") || *name == ".." || name->starts_with("../") ||
        name->find("/../") != std::string::npos || name->ends_with("/..")) {
        fail("normalised member name escapes", text, *name);
    }
    auto again = oci::internal::normalize_member_name(*name, "fuzz.tar");
    if (!again || *again != *name) {
        fail("normalize_member_name is not idempotent", text, *name);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    check_reference(text);
    check_digest(text);
    check_member_name(text);
    (void)oci::parse_platform(text);
    (void)oci::base64_decode(text);

    // Challenges: one header per line.
    std::vector<std::string> headers;
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) {
            end = text.size();
        }
        headers.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    for (const auto& challenge : oci::parse_challenges(headers)) {
        (void)challenge.param("realm");
        (void)challenge.param("scope");
    }
    (void)oci::scope_key(headers);
    return 0;
}
