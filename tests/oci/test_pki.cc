#include "test_pki.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>

namespace locald::oci::testing {

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "test PKI: %s failed\n", what);
    std::abort();
}

EVP_PKEY* new_key() {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    if (!key) {
        fail("EC key generation");
    }
    return key;
}

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!extension || !X509_add_ext(cert, extension, -1)) {
        fail(value);
    }
    X509_EXTENSION_free(extension);
}

X509* new_cert(EVP_PKEY* key, const char* common_name, long serial) {
    X509* cert = X509_new();
    if (!cert) {
        fail("X509_new");
    }
    X509_set_version(cert, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
    return cert;
}

std::string cert_pem(X509* cert) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_X509(bio, cert)) {
        fail("PEM_write_bio_X509");
    }
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(size));
    BIO_free(bio);
    return out;
}

std::string key_pem(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr)) {
        fail("PEM_write_bio_PrivateKey");
    }
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(size));
    BIO_free(bio);
    return out;
}

}  // namespace

TestPki make_test_pki() {
    static long serial = 1;
    EVP_PKEY* ca_key = new_key();
    X509* ca = new_cert(ca_key, "locald test CA", serial++);
    X509_set_issuer_name(ca, X509_get_subject_name(ca));
    add_extension(ca, ca, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(ca, ca, NID_subject_key_identifier, "hash");
    if (!X509_sign(ca, ca_key, EVP_sha256())) {
        fail("signing the CA");
    }

    EVP_PKEY* leaf_key = new_key();
    X509* leaf = new_cert(leaf_key, "127.0.0.1", serial++);
    X509_set_issuer_name(leaf, X509_get_subject_name(ca));
    add_extension(leaf, ca, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(leaf, ca, NID_key_usage, "critical,digitalSignature");
    add_extension(leaf, ca, NID_ext_key_usage, "serverAuth");
    add_extension(leaf, ca, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    add_extension(leaf, ca, NID_authority_key_identifier, "keyid:always");
    if (!X509_sign(leaf, ca_key, EVP_sha256())) {
        fail("signing the server certificate");
    }

    TestPki pki{cert_pem(ca), cert_pem(leaf), key_pem(leaf_key)};
    X509_free(leaf);
    X509_free(ca);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(ca_key);
    return pki;
}

}  // namespace locald::oci::testing
