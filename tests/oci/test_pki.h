// tests/oci/test_pki.h — a throwaway PKI for TLS fault-injection tests: a
// self-signed CA and one server certificate it signs (SAN 127.0.0.1,
// localhost), generated with OpenSSL at test time so nothing secret or
// expiring is checked in.
#pragma once

#include <string>

namespace locald::oci::testing {

struct TestPki {
    std::string ca_cert_pem;      // trust anchor (goes to certs.d/<host:port>/ca.crt)
    std::string server_cert_pem;  // leaf for 127.0.0.1 and localhost, signed by the CA
    std::string server_key_pem;   // the leaf's private key (PKCS#8 PEM)
};

// A fresh CA and leaf (EC P-256, SHA-256, valid from one hour ago for one
// day). Aborts the test binary on an OpenSSL failure: there is no useful way
// to continue a TLS test without certificates.
TestPki make_test_pki();

}  // namespace locald::oci::testing
