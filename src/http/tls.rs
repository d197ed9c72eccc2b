//! HTTPS for the bridge's own server (the login page must not travel in clear text), with
//! optional client-certificate authentication, on rustls with the ring provider.

use std::sync::Arc;

use rustls::{
    crypto::ring,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig,
};

use crate::{config::HttpTls, tls::load_ca_file};

/// Why the server's TLS settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the combination.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// Builds the server configuration from the PEM files.
pub fn server_config(tls: &HttpTls) -> Result<ServerConfig, ServerTlsError> {
    let file_err = |path: &std::path::Path, reason: String| ServerTlsError::File {
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| file_err(&tls.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&tls.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err(&tls.cert, "contains no PEM certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| file_err(&tls.key, format!("no usable PEM private key ({e})")))?;
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerTlsError::Rustls(e.to_string()))?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in load_ca_file(ca).map_err(|e| file_err(ca, e.to_string()))? {
                roots.add(cert).map_err(|e| file_err(ca, e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ServerTlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| ServerTlsError::Rustls(e.to_string()))
}
