//! X.509 v1 client certificates, which Kafka's broker accepts and webpki does not.
//!
//! `openssl x509 -req` without an extensions file, the step Kafka's own SSL guide uses to
//! sign client certificates with a team's CA, makes version 1 certificates. The JDK's
//! PKIX validation takes them; webpki (under rustls) takes only version 3. So a client
//! certificate is verified by webpki when it is v3, and otherwise as the JDK does for a
//! certificate a trusted CA signed directly:
//!
//! - it parses, its version is 1 or 2, and it is within its validity period;
//! - its issuer is the subject of a CA certificate in the truststore, and that CA's key
//!   verifies its signature (through the crypto provider's algorithms: RSA PKCS#1 and
//!   PSS with SHA-256 and up, ECDSA P-256/P-384, Ed25519; SHA-1 is refused as webpki
//!   refuses it).
//!
//! A v1 certificate carries no extensions, so there are no key-usage, name or path
//! constraints to check; one signed by an intermediate CA is refused (its chain would
//! need the general path building webpki does). The handshake signature of such a
//! client is checked against the certificate's public key as for any other client.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls13_signature_with_raw_key, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, PeerMisbehaved,
    SignatureScheme,
};
use x509_parser::der_parser::asn1_rs::{Any, Tag};
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};
use x509_parser::time::ASN1Time;

/// A truststore CA as a v1 certificate's issuer: its subject (DER) and public key.
#[derive(Debug)]
struct Issuer {
    subject: Vec<u8>,
    spki: Vec<u8>,
}

/// webpki for v3 client certificates, this module's checks for v1 and v2 ones.
#[derive(Debug)]
pub struct ClientVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    issuers: Vec<Issuer>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    /// Wraps `webpki`, built from the CA certificates `cas` (the truststore's).
    pub fn new(
        webpki: Arc<dyn ClientCertVerifier>,
        cas: &[CertificateDer<'_>],
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        let issuers = cas
            .iter()
            .filter_map(|der| {
                let (_, ca) = X509Certificate::from_der(der).ok()?;
                Some(Issuer {
                    subject: ca.subject().as_raw().to_vec(),
                    spki: ca.public_key().raw.to_vec(),
                })
            })
            .collect();
        ClientVerifier {
            webpki,
            issuers,
            algorithms,
        }
    }

    /// The public key (SPKI DER) of `der` if it is a v1/v2 certificate, else `None`.
    fn legacy_key(der: &[u8]) -> Option<Vec<u8>> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        (cert.version() != X509Version::V3).then(|| cert.public_key().raw.to_vec())
    }

    fn verify_legacy(&self, der: &[u8], now: UnixTime) -> Result<(), Error> {
        let bad = |e: CertificateError| Error::InvalidCertificate(e);
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|_| bad(CertificateError::BadEncoding))?;
        let now = i64::try_from(now.as_secs())
            .ok()
            .and_then(|s| ASN1Time::from_timestamp(s).ok())
            .ok_or_else(|| bad(CertificateError::BadEncoding))?;
        if now < cert.validity().not_before {
            return Err(bad(CertificateError::NotValidYet));
        }
        if now > cert.validity().not_after {
            return Err(bad(CertificateError::Expired));
        }
        let items = sequence(der).ok_or_else(|| bad(CertificateError::BadEncoding))?;
        let [(tbs, _), (_, signature_alg), (_, signature)] = items.as_slice() else {
            return Err(bad(CertificateError::BadEncoding));
        };
        // A BIT STRING's first content byte counts unused bits: 0 for a signature.
        let signature = match signature.split_first() {
            Some((0, bits)) => bits,
            _ => return Err(bad(CertificateError::BadEncoding)),
        };
        let issuer = cert.issuer().as_raw();
        let mut candidates = self
            .issuers
            .iter()
            .filter(|i| i.subject == issuer)
            .peekable();
        if candidates.peek().is_none() {
            return Err(bad(CertificateError::UnknownIssuer));
        }
        for ca in candidates {
            let Some((key_alg, key)) = public_key(&ca.spki) else {
                continue;
            };
            let verified = self.algorithms.all.iter().any(|alg| {
                alg.signature_alg_id().as_ref() == *signature_alg
                    && alg.public_key_alg_id().as_ref() == key_alg
                    && alg.verify_signature(key, tbs, signature).is_ok()
            });
            if verified {
                return Ok(());
            }
        }
        Err(bad(CertificateError::BadSignature))
    }
}

/// The items of the DER SEQUENCE `der`: each one's whole encoding and its contents.
fn sequence(der: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let (_, outer) = Any::from_der(der).ok()?;
    if outer.tag() != Tag::Sequence {
        return None;
    }
    let mut rest = outer.data;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let (next, item) = Any::from_der(rest).ok()?;
        items.push((&rest[..rest.len() - next.len()], item.data));
        rest = next;
    }
    Some(items)
}

/// A SubjectPublicKeyInfo's algorithm (the AlgorithmIdentifier's contents) and key bits.
fn public_key(spki: &[u8]) -> Option<(&[u8], &[u8])> {
    let items = sequence(spki)?;
    let [(_, algorithm), (_, bits)] = items.as_slice() else {
        return None;
    };
    match bits.split_first() {
        Some((0, key)) => Some((algorithm, key)),
        _ => None,
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if Self::legacy_key(end_entity).is_none() {
            return self
                .webpki
                .verify_client_cert(end_entity, intermediates, now);
        }
        self.verify_legacy(end_entity, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let Some(spki) = Self::legacy_key(cert) else {
            return self.webpki.verify_tls12_signature(message, cert, dss);
        };
        let (key_alg, key) =
            public_key(&spki).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let candidates = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        let verified = candidates.iter().any(|alg| {
            alg.public_key_alg_id().as_ref() == key_alg
                && alg.verify_signature(key, message, dss.signature()).is_ok()
        });
        if verified {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::BadSignature))
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match Self::legacy_key(cert) {
            None => self.webpki.verify_tls13_signature(message, cert, dss),
            Some(spki) => verify_tls13_signature_with_raw_key(
                message,
                &SubjectPublicKeyInfoDer::from(spki.as_slice()),
                dss,
                &self.algorithms,
            ),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls::pki_types::pem::PemObject;
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;

    use super::*;

    fn cert(name: &str) -> CertificateDer<'static> {
        let path = format!("{}/src/tls/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        CertificateDer::from_pem_file(&path).unwrap()
    }

    #[allow(deprecated)] // ring, as the listeners use it (see `suites::Offer::provider`)
    fn verifier(ca: &str) -> ClientVerifier {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ca = cert(ca);
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
        ClientVerifier::new(webpki, &[ca], provider.signature_verification_algorithms)
    }

    fn verify(v: &ClientVerifier, client: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
        v.verify_client_cert(client, &[], now).map(|_| ())
    }

    #[test]
    fn v1_certificates_signed_by_a_trusted_ca_are_accepted_until_they_expire() {
        let now = UnixTime::now();
        let later =
            UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs() + 200 * 365 * 86_400));
        let early = UnixTime::since_unix_epoch(Duration::from_secs(86_400));
        for (ca, client) in [
            ("legacy-ca.pem", "legacy-v1-client.pem"),
            ("legacy-rsa-ca.pem", "legacy-v1-rsa-client.pem"),
        ] {
            let v = verifier(ca);
            let client = cert(client);
            assert!(ClientVerifier::legacy_key(&client).is_some());
            assert_eq!(verify(&v, &client, now), Ok(()), "{ca}");
            assert_eq!(
                verify(&v, &client, later),
                Err(Error::InvalidCertificate(CertificateError::Expired))
            );
            assert_eq!(
                verify(&v, &client, early),
                Err(Error::InvalidCertificate(CertificateError::NotValidYet))
            );
        }
    }

    #[test]
    fn v1_certificates_of_other_cas_forged_or_damaged_are_refused() {
        let v = verifier("legacy-ca.pem");
        let now = UnixTime::now();
        // Another CA's certificate.
        assert_eq!(
            verify(&v, &cert("legacy-v1-rsa-client.pem"), now),
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        );
        // The trusted CA's name, another key's signature.
        assert_eq!(
            verify(&v, &cert("legacy-v1-forged.pem"), now),
            Err(Error::InvalidCertificate(CertificateError::BadSignature))
        );
        // A flipped bit anywhere: a bad signature or no certificate at all.
        let good = cert("legacy-v1-client.pem").to_vec();
        for i in (0..good.len()).step_by(7) {
            let mut damaged = good.clone();
            damaged[i] ^= 0x10;
            let damaged = CertificateDer::from(damaged);
            assert!(verify(&v, &damaged, now).is_err(), "byte {i}");
        }
        // A v3 certificate still goes through webpki (which checks its chain).
        let v3 = cert("tricky-subject.pem");
        assert!(ClientVerifier::legacy_key(&v3).is_none());
        assert!(verify(&v, &v3, now).is_err());
    }

    #[test]
    fn der_sequences_are_split_strictly() {
        assert_eq!(
            sequence(&[0x30, 0x03, 0x02, 0x01, 0x05]),
            Some(vec![(&[2u8, 1, 5][..], &[5u8][..])])
        );
        assert_eq!(sequence(&[0x30, 0x03, 0x02, 0x01]), None);
        assert_eq!(sequence(&[0x02, 0x01, 0x05]), None);
        assert_eq!(public_key(&[0x30, 0x02, 0x30, 0x00]), None);
    }
}
