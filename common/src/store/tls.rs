//! TLS to the backends (PostgreSQL and Redis; Kafka's TLS is librdkafka's own, see
//! `events::kafka`): rustls with the ring provider, the system trust store unless the
//! operator names a CA file, and PostgreSQL's `sslmode` with libpq's meaning.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

/// Makes ring the process's rustls provider (idempotent). Both binaries and the tests
/// call it before building a TLS client.
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    install_crypto_provider();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// The trust anchors: the certificates of `ca_file` (PEM) when given, else the system's.
pub fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("{} holds no PEM certificate", path.display()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => {
            // Certificates the platform store holds but webpki cannot parse are skipped,
            // as every rustls client does.
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    Ok(roots)
}

/// How much of the server's certificate is checked: libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgSslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, else plain (libpq's and tokio-postgres's default).
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, and the certificate chains to a trusted CA (any host name).
    VerifyCa,
    /// TLS, the chain is trusted and the certificate names the host connected to.
    VerifyFull,
}

/// The TLS part of a `DATABASE_URL`, taken out of it because tokio-postgres parses only
/// `disable`, `prefer` and `require` and knows nothing of `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    pub mode: PgSslMode,
    pub root_cert: Option<PathBuf>,
}

impl PgTls {
    /// Splits `url` (URL form or `key=value` form) into the URL tokio-postgres gets and
    /// the TLS settings.
    pub fn split(url: &str) -> Result<(String, PgTls), String> {
        let mut tls = PgTls {
            mode: PgSslMode::Prefer,
            root_cert: None,
        };
        let mut take = |key: &str, value: &str| -> Result<bool, String> {
            match key {
                "sslmode" => {
                    tls.mode = match value {
                        "disable" => PgSslMode::Disable,
                        "allow" | "prefer" => PgSslMode::Prefer,
                        "require" => PgSslMode::Require,
                        "verify-ca" => PgSslMode::VerifyCa,
                        "verify-full" => PgSslMode::VerifyFull,
                        _ => return Err(format!("has an unknown sslmode {value:?}")),
                    };
                    Ok(true)
                }
                "sslrootcert" => {
                    let decoded = percent_decode(value);
                    if decoded != "system" {
                        tls.root_cert = Some(PathBuf::from(decoded));
                    }
                    Ok(true)
                }
                _ => Ok(false),
            }
        };
        let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            match url.split_once('?') {
                None => url.to_owned(),
                Some((base, query)) => {
                    let mut kept = Vec::new();
                    for pair in query.split('&').filter(|p| !p.is_empty()) {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        if !take(k, v)? {
                            kept.push(pair);
                        }
                    }
                    if kept.is_empty() {
                        base.to_owned()
                    } else {
                        format!("{base}?{}", kept.join("&"))
                    }
                }
            }
        } else {
            let mut kept = Vec::new();
            for pair in url.split_whitespace() {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if !take(k.trim(), v.trim_matches('\''))? {
                    kept.push(pair);
                }
            }
            kept.join(" ")
        };
        if tls.mode == PgSslMode::Disable && tls.root_cert.is_some() {
            return Err("names an sslrootcert with sslmode=disable".into());
        }
        Ok((rest, tls))
    }

    /// What tokio-postgres is told: whether TLS is tried and whether it is required.
    pub fn driver_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode;
        match self.mode {
            PgSslMode::Disable => SslMode::Disable,
            PgSslMode::Prefer => SslMode::Prefer,
            PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => SslMode::Require,
        }
    }

    /// The rustls client for this mode. As with libpq, `prefer` and `require` encrypt
    /// without checking the certificate unless a root certificate is named (then they
    /// check the chain, like `verify-ca`); `verify-*` use the named file or the system's
    /// trust store.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let verify_chain = |roots: RootCertStore, hostname: bool| {
            let inner =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| e.to_string())?;
            Ok::<Arc<dyn ServerCertVerifier>, String>(if hostname {
                inner
            } else {
                Arc::new(AnyHostName(inner))
            })
        };
        let verifier = match (self.mode, &self.root_cert) {
            (PgSslMode::VerifyFull, root) => verify_chain(root_store(root.as_deref())?, true)?,
            (PgSslMode::VerifyCa, root) => verify_chain(root_store(root.as_deref())?, false)?,
            (_, Some(root)) => verify_chain(root_store(Some(root))?, false)?,
            (_, None) => Arc::new(EncryptOnly(provider.clone())),
        };
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }
}

fn percent_decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned()
}

/// `verify-ca`: the chain must be trusted; the name in the certificate is not compared
/// with the host.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` without a root certificate (libpq's meaning): the session is encrypted and
/// the handshake signed by the key in the presented certificate, but who issued that
/// certificate is not checked. Protects against passive listeners, not an active
/// man in the middle; `verify-full` does.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_form_loses_the_tls_parameters_and_keeps_the_rest() {
        let (rest, tls) = PgTls::split(
            "postgres://u:p@db:5432/app?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db:5432/app?application_name=x");
        assert_eq!(tls.mode, PgSslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn key_value_form_is_understood_too() {
        let (rest, tls) =
            PgTls::split("host=db user=u sslmode=verify-ca sslrootcert=/ca.pem dbname=app")
                .unwrap();
        assert_eq!(rest, "host=db user=u dbname=app");
        assert_eq!(tls.mode, PgSslMode::VerifyCa);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn without_sslmode_tls_is_preferred_like_libpq() {
        let (rest, tls) = PgTls::split("postgres://u@db/app").unwrap();
        assert_eq!(rest, "postgres://u@db/app");
        assert_eq!(tls.mode, PgSslMode::Prefer);
        assert_eq!(tls.driver_mode(), tokio_postgres::config::SslMode::Prefer);
    }

    #[test]
    fn unknown_sslmode_is_refused() {
        assert!(PgTls::split("postgres://u@db/app?sslmode=maybe").is_err());
        assert!(PgTls::split("postgres://u@db/app?sslmode=disable&sslrootcert=/x").is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let path =
            std::env::temp_dir().join(format!("registrar-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        assert!(root_store(Some(&path))
            .unwrap_err()
            .contains("no PEM certificate"));
        std::fs::remove_file(path).ok();
    }
}
