//! A node's identity: its key pair and certificate, and the TLS configurations of its links.
//!
//! In this first version certificates are self-signed and *pinned*: TLS proves that the peer
//! holds the key of the certificate it shows, and the link layer compares the certificate's
//! fingerprint with the one remembered for that peer (trust on first use). The federation PKI
//! chained to a province root replaces this later.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// BLAKE3 fingerprint of a certificate's DER bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(cert_der: &[u8]) -> Self {
        Fingerprint(*blake3::hash(cert_der).as_bytes())
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Fingerprint(out))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("cannot generate the node certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("QUIC does not accept this TLS configuration: {0}")]
    Quic(String),
}

/// A node's certificate and private key (both DER).
#[derive(Clone)]
pub struct NodeIdentity {
    pub cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

const CERT_FILE: &str = "node.crt.der";
const KEY_FILE: &str = "node.key.der";

impl NodeIdentity {
    /// Makes a new self-signed identity whose certificate names the node id.
    pub fn generate(node_id: &str) -> Result<Self, IdentityError> {
        let ck = rcgen::generate_simple_self_signed(vec!["youke-node".to_string(), format!("{node_id}.youke")])?;
        Ok(NodeIdentity { cert_der: ck.cert.der().to_vec(), key_der: ck.signing_key.serialize_der() })
    }

    /// Loads the identity kept in `dir`, or generates and saves one (key file mode 0600).
    pub fn load_or_create(dir: &Path, node_id: &str) -> Result<Self, IdentityError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        if cert_path.is_file() && key_path.is_file() {
            let cert_der = fs::read(&cert_path).map_err(|source| IdentityError::Io { action: "read", path: cert_path, source })?;
            let key_der = fs::read(&key_path).map_err(|source| IdentityError::Io { action: "read", path: key_path, source })?;
            return Ok(NodeIdentity { cert_der, key_der });
        }
        let id = Self::generate(node_id)?;
        write_private(&key_path, &id.key_der)?;
        write_private(&cert_path, &id.cert_der)?;
        Ok(id)
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.cert_der)
    }

    fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.cert_der.clone())]
    }

    /// The key of QUIC stateless resets, derived from the node's private key so that it stays
    /// the same across restarts: after a crash, the restarted node can tell its peers at once
    /// that their old connection is gone, instead of leaving them to wait for the idle timeout.
    pub fn stateless_reset_key(&self) -> ring::hmac::Key {
        let secret = blake3::derive_key("youke 2026-11 QUIC stateless reset key", &self.key_der);
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// TLS for the parent side of links: a client certificate is required; which one is
    /// acceptable is decided by the link layer from its fingerprint.
    pub fn quic_server_config(&self, alpn: &[u8]) -> Result<quinn::crypto::rustls::QuicServerConfig, IdentityError> {
        let provider = provider();
        let verifier = Arc::new(PinnedPeer { algs: provider.signature_verification_algorithms });
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain(), self.key())?;
        tls.alpn_protocols = vec![alpn.to_vec()];
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| IdentityError::Quic(e.to_string()))
    }

    /// TLS for the child side of links, presenting this node's certificate.
    pub fn quic_client_config(&self, alpn: &[u8]) -> Result<quinn::crypto::rustls::QuicClientConfig, IdentityError> {
        let provider = provider();
        let verifier = Arc::new(PinnedPeer { algs: provider.signature_verification_algorithms });
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.cert_chain(), self.key())?;
        tls.alpn_protocols = vec![alpn.to_vec()];
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| IdentityError::Quic(e.to_string()))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    use std::io::Write;
    let io_err = |action| move |source| IdentityError::Io { action, path: path.to_path_buf(), source };
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io_err("create"))?;
    f.write_all(bytes).map_err(io_err("write"))?;
    f.sync_all().map_err(io_err("fsync"))?;
    fs::rename(&tmp, path).map_err(io_err("rename"))?;
    Ok(())
}

/// Accepts any well-formed certificate whose key signs the handshake; the fingerprint is then
/// checked against the pin by the link layer, which knows who the peer claims to be.
struct PinnedPeer {
    algs: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for PinnedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinnedPeer")
    }
}

impl ServerCertVerifier for PinnedPeer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.algs)
    }
    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ClientCertVerifier for PinnedPeer {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(&self, _e: &CertificateDer<'_>, _i: &[CertificateDer<'_>], _now: UnixTime) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.algs)
    }
    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_persists_with_private_key_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = NodeIdentity::load_or_create(dir.path(), "n1").expect("create");
        let b = NodeIdentity::load_or_create(dir.path(), "n1").expect("load");
        assert_eq!(a.fingerprint(), b.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE)).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(a.quic_server_config(b"youke/1").is_ok());
        assert!(a.quic_client_config(b"youke/1").is_ok());
    }
}
