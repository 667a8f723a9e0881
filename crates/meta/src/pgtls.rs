//! TLS to PostgreSQL with rustls: the connection URL's TLS settings, the
//! root certificates, and the adapter tokio-postgres needs.
//!
//! Silt always verifies the server: its certificate must chain to a trusted
//! root and name the host in the URL. Roots are the system's, or the PEM file
//! named by `sslrootcert` (an RDS CA bundle, a private CA). `sslmode` keeps
//! its libpq meaning for whether TLS is used — `disable` never, `prefer` (the
//! default) when the server offers it, `require` always — and `verify-ca` /
//! `verify-full` mean `require` (verification is not optional here).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, InvalidDnsNameError, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::{MetaError, Result};

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Roots {
    /// The operating system's store.
    System,
    /// CA certificates in a PEM file.
    File(PathBuf),
}

/// Splits the TLS settings tokio-postgres does not parse off a PostgreSQL
/// URL: returns the URL it accepts and the roots to trust.
pub(crate) fn split_url(url: &str) -> Result<(String, Roots)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), Roots::System));
    };
    let mut roots = Roots::System;
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match (key.as_ref(), value.as_ref()) {
            ("sslrootcert", "system") => roots = Roots::System,
            ("sslrootcert", "") => {
                return Err(MetaError::Invalid("PostgreSQL URL: sslrootcert is empty".into()));
            }
            ("sslrootcert", path) => roots = Roots::File(PathBuf::from(path)),
            ("sslmode", "verify-ca" | "verify-full") => {
                kept.append_pair("sslmode", "require");
            }
            _ => {
                kept.append_pair(&key, &value);
            }
        }
    }
    let kept = kept.finish();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{kept}")
    };
    Ok((url, roots))
}

/// The connector for every pooled connection.
pub(crate) fn connector(roots: &Roots) -> Result<MakeRustlsConnect> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "cannot read part of the system's CA certificates");
            }
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    "no system CA certificates found: TLS to PostgreSQL will fail unless the URL names sslrootcert=<PEM file>"
                );
            }
        }
        Roots::File(path) => {
            let certs = read_pem(path)?;
            let (added, ignored) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(MetaError::Invalid(format!(
                    "sslrootcert={}: no usable CA certificate ({ignored} unparsable)",
                    path.display()
                )));
            }
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MetaError::Invalid(format!("TLS configuration: {e}")))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(MakeRustlsConnect {
        config: Arc::new(config),
    })
}

fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let invalid = |e: &dyn std::fmt::Display| MetaError::Invalid(format!("sslrootcert={}: {e}", path.display()));
    CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(&e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid(&e))
}

/// tokio-postgres' TLS factory over rustls: one verified handshake per connection.
#[derive(Clone)]
pub(crate) struct MakeRustlsConnect {
    config: Arc<ClientConfig>,
}

impl<S> MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> std::result::Result<RustlsConnect, InvalidDnsNameError> {
        Ok(RustlsConnect {
            config: self.config.clone(),
            server: ServerName::try_from(domain)?.to_owned(),
        })
    }
}

/// One connection's handshake.
pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    server: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = TlsConnector::from(self.config);
        Box::pin(async move { connector.connect(self.server, stream).await.map(RustlsStream) })
    }
}

/// A TLS stream to the server. SCRAM channel binding is not offered
/// (`ChannelBinding::none`), so authentication is SCRAM-SHA-256 without `-PLUS`.
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silt_settings_are_split_off_and_the_rest_is_kept() {
        let (url, roots) =
            split_url("postgres://u@h:5432/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x")
                .expect("valid");
        assert_eq!(url, "postgres://u@h:5432/db?sslmode=require&application_name=x");
        assert_eq!(roots, Roots::File(PathBuf::from("/etc/ca.pem")));

        let (url, roots) = split_url("postgres://u@h/db?sslrootcert=system").expect("valid");
        assert_eq!(url, "postgres://u@h/db");
        assert_eq!(roots, Roots::System);

        let (url, roots) = split_url("postgres://u@h/db").expect("valid");
        assert_eq!((url.as_str(), roots), ("postgres://u@h/db", Roots::System));

        assert!(matches!(
            split_url("postgres://u@h/db?sslrootcert="),
            Err(MetaError::Invalid(_))
        ));
    }

    #[test]
    fn a_root_file_without_certificates_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("silt-pgtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let e = connector(&Roots::File(path.clone())).err().expect("must fail");
        assert!(
            matches!(&e, MetaError::Invalid(m) if m.contains("sslrootcert") && m.contains("empty.pem")),
            "{e}"
        );
        let missing = connector(&Roots::File(dir.join("missing.pem")))
            .err()
            .expect("must fail");
        assert!(
            matches!(&missing, MetaError::Invalid(m) if m.contains("missing.pem")),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
