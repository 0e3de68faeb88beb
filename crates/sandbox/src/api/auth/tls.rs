//! HTTPS: a CA made when the sandbox starts and a serving certificate it signs for
//! `localhost`, `127.0.0.1`, `::1` and the listen address. Both live as long as the
//! sandbox: a restart (connections dropped, data kept) serves the same certificate.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// How long the certificates are valid, from a day before they are made (clock skew).
const VALIDITY_DAYS: i64 = 365;

/// The CA and the server's TLS set-up.
pub struct Tls {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// A fresh CA and a serving certificate for loopback and `listen`.
    pub fn generate(listen: IpAddr, now: jiff::Timestamp) -> Result<Tls, String> {
        fn err(what: &'static str) -> impl Fn(rcgen::Error) -> String {
            move |e| format!("{what}: {e}")
        }
        // From a day before `now` (clock skew) to VALIDITY_DAYS after it.
        let (y, m, d) = date(now, -1)?;
        let not_before = rcgen::date_time_ymd(y, m, d);
        let (y, m, d) = date(now, VALIDITY_DAYS)?;
        let not_after = rcgen::date_time_ymd(y, m, d);

        let ca_key = KeyPair::generate().map_err(err("generating the CA key"))?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, "podwarden-sandbox-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca.not_before = not_before;
        ca.not_after = not_after;
        let ca_cert = ca
            .self_signed(&ca_key)
            .map_err(err("signing the CA certificate"))?;
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().map_err(err("generating the serving key"))?;
        let mut serving = CertificateParams::new(vec!["localhost".to_string()])
            .map_err(err("the serving certificate's names"))?;
        let mut ips = vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ];
        if !listen.is_unspecified() && !ips.contains(&listen) {
            ips.push(listen);
        }
        serving
            .subject_alt_names
            .extend(ips.into_iter().map(SanType::IpAddress));
        serving
            .distinguished_name
            .push(DnType::CommonName, "podwarden-sandbox");
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        serving.use_authority_key_identifier_extension = true;
        serving.not_before = not_before;
        serving.not_after = not_after;
        let serving_cert = serving
            .signed_by(&key, &issuer)
            .map_err(err("signing the serving certificate"))?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_no_client_auth()
            .with_single_cert(
                vec![serving_cert.der().clone(), ca_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(|e| format!("the serving certificate: {e}"))?;
        // What a real API server offers: kubectl speaks HTTP/2, kube-rs HTTP/1.1.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The CA certificate, DER (a `kube::Config` root certificate).
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The CA certificate, PEM (a kubeconfig's `certificate-authority-data`, decoded).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

/// The UTC date `days` after `now`, as rcgen takes it.
fn date(now: jiff::Timestamp, days: i64) -> Result<(i32, u8, u8), String> {
    let bad = |e: &dyn std::fmt::Display| format!("certificate validity: {e}");
    let date = now
        .checked_add(jiff::SignedDuration::from_hours(24 * days))
        .map_err(|e| bad(&e))?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let month = u8::try_from(date.month()).map_err(|e| bad(&e))?;
    let day = u8::try_from(date.day()).map_err(|e| bad(&e))?;
    Ok((i32::from(date.year()), month, day))
}
