//! TLS for collectors (`tls://`) and for `listen --tls`, with rustls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

crate::settings::section! {
    /// TLS settings of a `tls://` collector (`[output.tls]`; the flags apply to every
    /// collector).
    pub struct TlsClient {
        /// PEM file of the CA(s) that signed the collector's certificate; none: the system's.
        #[flag("tls-ca", value_name = "FILE")]
        pub ca_file: Option<PathBuf> = None,
        /// The name to verify the collector's certificate against and send as SNI; none:
        /// the URL's host.
        #[flag("tls-server-name")]
        pub server_name: Option<String> = None,
        /// Client certificate chain (PEM), when the collector asks for one.
        #[flag("tls-cert", value_name = "FILE", requires = "tls-key")]
        pub cert_file: Option<PathBuf> = None,
        /// The client certificate's private key (PEM).
        #[flag("tls-key", value_name = "FILE", requires = "tls-cert")]
        pub key_file: Option<PathBuf> = None,
        /// Accept any collector certificate. INSECURE: for tests and self-signed lab
        /// collectors only.
        #[flag("tls-insecure-skip-verify", action = clap::ArgAction::SetTrue)]
        pub insecure_skip_verify: bool = false,
    }
}

/// The TLS flags of a command without a configuration file (`replay --to`): the
/// settings of `[output.tls]`, from their flags and environment variables only.
#[derive(Debug, Clone, Default)]
pub struct TlsClientArgs(pub TlsClient);

impl TlsClientArgs {
    /// The settings.
    pub fn settings(&self) -> TlsClient {
        self.0.clone()
    }
}

impl clap::FromArgMatches for TlsClientArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut t = TlsClient::default();
        crate::settings::Section::apply(&mut t, m);
        Ok(TlsClientArgs(t))
    }
    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        crate::settings::Section::apply(&mut self.0, m);
        Ok(())
    }
}

impl clap::Args for TlsClientArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let cmd = crate::settings::args_of::<TlsClient>(cmd, "output.tls.");
        // No file here: the flags are the command's own.
        let table = crate::settings::heading("output.tls.");
        cmd.mut_args(|a| match a.get_help_heading() {
            Some(h) if Some(h) == table.as_deref() => a.help_heading(None::<&'static str>),
            _ => a,
        })
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// A TLS setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// A server name that is not a DNS name or an IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::File {
        path: path.into(),
        message,
    };
    let v: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if v.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    Ok(v)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        path: path.into(),
        message: e.to_string(),
    })
}

/// Accepts every certificate: `insecure_skip_verify`.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls client configuration of a collector, and the name to verify and send.
pub fn client(
    t: &TlsClient,
    host: &str,
) -> Result<(Arc<ClientConfig>, ServerName<'static>), TlsError> {
    let p = provider();
    let builder =
        ClientConfig::builder_with_provider(p.clone()).with_safe_default_protocol_versions()?;
    let builder = if t.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(p)))
    } else {
        let mut roots = RootCertStore::empty();
        match &t.ca_file {
            Some(f) => {
                for c in certs(f)? {
                    roots.add(c)?;
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let cfg = match (&t.cert_file, &t.key_file) {
        (Some(c), Some(k)) => builder.with_client_auth_cert(certs(c)?, key(k)?)?,
        _ => builder.with_no_client_auth(),
    };
    let name = t.server_name.clone().unwrap_or_else(|| {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    });
    let sn = ServerName::try_from(name.clone()).map_err(|_| TlsError::ServerName(name))?;
    Ok((Arc::new(cfg), sn))
}

/// The rustls server configuration of `listen --tls`; with `client_ca`, client
/// certificates signed by it are required.
pub fn server(
    cert: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c)?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))?;
            builder.with_client_cert_verifier(v)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(
        builder.with_single_cert(certs(cert)?, key(key_file)?)?,
    ))
}
