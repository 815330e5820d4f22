//! A node's identity: its key pair and certificate, and the TLS configurations of its links.
//!
//! Two trust modes ([`Trust`]):
//! - **Federation** (the default): the node's certificate was issued at enrollment and chains
//!   to the province's root (see [`crate::pki`]). TLS verifies every peer up to that root in
//!   both directions; the link layer then checks that the certificate names the peer's place.
//! - **Development, pinned** (an explicit switch, for tests and trials): certificates are
//!   self-signed; TLS proves only that the peer holds the key of the certificate it shows, and
//!   the link layer compares its fingerprint with the one remembered for that peer (trust on
//!   first use).

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
use crate::pki::{Enrollment, Place};

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
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
}

/// How a node decides whom to trust.
#[derive(Clone)]
pub enum Trust {
    /// Self-signed certificates pinned on first use: development only.
    DevPinned,
    /// Certificates chained to the federation's root, naming each node's place.
    Federation(Arc<Enrollment>),
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trust::DevPinned => f.write_str("DevPinned"),
            Trust::Federation(e) => write!(f, "Federation({})", e.place),
        }
    }
}

impl Trust {
    /// This node's place in the federation, when it is enrolled.
    pub fn place(&self) -> Option<&Place> {
        match self {
            Trust::DevPinned => None,
            Trust::Federation(e) => Some(&e.place),
        }
    }
}

/// A node's certificate and private key (both DER), and how it trusts others.
#[derive(Clone)]
pub struct NodeIdentity {
    pub cert_der: Vec<u8>,
    key_der: Vec<u8>,
    /// What the node presents in TLS: its certificate, then its issuers.
    chain: Vec<CertificateDer<'static>>,
    pub trust: Trust,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

const CERT_FILE: &str = "node.crt.der";
const KEY_FILE: &str = "node.key.der";

impl NodeIdentity {
    /// Makes a new self-signed identity whose certificate names the node id (development,
    /// pinned trust).
    pub fn generate(node_id: &str) -> Result<Self, IdentityError> {
        let ck = rcgen::generate_simple_self_signed(vec!["youke-node".to_string(), format!("{node_id}.youke")])?;
        Ok(Self::pinned(ck.cert.der().to_vec(), ck.signing_key.serialize_der()))
    }

    fn pinned(cert_der: Vec<u8>, key_der: Vec<u8>) -> Self {
        let chain = vec![CertificateDer::from(cert_der.clone())];
        NodeIdentity { cert_der, key_der, chain, trust: Trust::DevPinned }
    }

    /// The identity of an enrolled node.
    pub fn from_enrollment(e: Enrollment) -> Self {
        NodeIdentity {
            cert_der: e.node_cert_der.clone(),
            key_der: e.node_key_der().to_vec(),
            chain: e.tls_chain(),
            trust: Trust::Federation(Arc::new(e)),
        }
    }

    /// An identity from raw parts: a certificate, its key (PKCS#8), the certificates presented
    /// after it, and a trust mode. For tests that play tampered or foreign nodes.
    #[doc(hidden)]
    pub fn from_parts(cert_der: Vec<u8>, key_der: Vec<u8>, rest_of_chain: Vec<Vec<u8>>, trust: Trust) -> Self {
        let mut chain = vec![CertificateDer::from(cert_der.clone())];
        chain.extend(rest_of_chain.into_iter().map(CertificateDer::from));
        NodeIdentity { cert_der, key_der, chain, trust }
    }

    /// The certificates presented after the node's own (issuers, root).
    pub fn rest_of_chain(&self) -> Vec<Vec<u8>> {
        self.chain.iter().skip(1).map(|c| c.to_vec()).collect()
    }

    pub fn key_der(&self) -> &[u8] {
        &self.key_der
    }

    /// Loads the self-signed identity kept in `dir`, or generates and saves one (key file mode
    /// 0600). Development mode only.
    pub fn load_or_create(dir: &Path, node_id: &str) -> Result<Self, IdentityError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        if cert_path.is_file() && key_path.is_file() {
            let cert_der = fs::read(&cert_path).map_err(|source| IdentityError::Io { action: "read", path: cert_path, source })?;
            let key_der = fs::read(&key_path).map_err(|source| IdentityError::Io { action: "read", path: key_path, source })?;
            return Ok(Self::pinned(cert_der, key_der));
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
        self.chain.clone()
    }

    /// The key of QUIC stateless resets, derived from the node's private key so that it stays
    /// the same across restarts: after a crash, the restarted node can tell its peers at once
    /// that their old connection is gone, instead of leaving them to wait for the idle timeout.
    pub fn stateless_reset_key(&self) -> ring::hmac::Key {
        let secret = blake3::derive_key("youke 2026-11 QUIC stateless reset key", &self.key_der);
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)
    }

    /// The key that signs this node's QUIC connection ids (see [`crate::datagrams`]), derived
    /// from its private key so that ids of its previous life are still recognized.
    pub fn cid_key(&self) -> crate::datagrams::CidKey {
        crate::datagrams::CidKey::new(blake3::derive_key("youke 2026-12 QUIC connection id key", &self.key_der))
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// TLS for the parent side of links. Federation: client certificates are verified up to
    /// the root (one is optional in TLS so that enrolling nodes get through on `enroll_alpn`;
    /// the link layer refuses a link without one). Pinned: any certificate is accepted by TLS
    /// and the link layer decides from its fingerprint.
    pub fn quic_server_config(&self, alpn: &[u8], enroll_alpn: &[u8]) -> Result<quinn::crypto::rustls::QuicServerConfig, IdentityError> {
        let provider = provider();
        let (verifier, alpns): (Arc<dyn ClientCertVerifier>, _) = match &self.trust {
            Trust::DevPinned => (Arc::new(PinnedPeer { algs: provider.signature_verification_algorithms }), vec![alpn.to_vec()]),
            Trust::Federation(e) => (e.client_verifier()?, vec![alpn.to_vec(), enroll_alpn.to_vec()]),
        };
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain(), self.key())?;
        tls.alpn_protocols = alpns;
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| IdentityError::Quic(e.to_string()))
    }

    /// TLS for the child side of links, presenting this node's certificate. Federation: the
    /// parent is verified up to the root and for the name the child dials it by.
    pub fn quic_client_config(&self, alpn: &[u8]) -> Result<quinn::crypto::rustls::QuicClientConfig, IdentityError> {
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = match &self.trust {
            Trust::DevPinned => Arc::new(PinnedPeer { algs: provider.signature_verification_algorithms }),
            Trust::Federation(e) => e.server_verifier()?,
        };
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.cert_chain(), self.key())?;
        tls.alpn_protocols = vec![alpn.to_vec()];
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| IdentityError::Quic(e.to_string()))
    }
}

/// TLS for a node that enrolls: it has no certificate yet, and accepts the parent's chain only
/// if it ends at the root whose hash the join token carries.
pub fn enroll_client_config(root_hash: [u8; 32], alpn: &[u8]) -> Result<quinn::crypto::rustls::QuicClientConfig, IdentityError> {
    let provider = provider();
    let verifier = Arc::new(TokenRoot { root_hash, algs: provider.signature_verification_algorithms });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| IdentityError::Quic(e.to_string()))
}

fn provider() -> Arc<CryptoProvider> {
    crate::pki::provider()
}

/// The handshake-signature checks every verifier here shares: the peer's key must sign the
/// handshake, with the algorithms of the crypto provider (`self.algs`).
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(m, c, d, &self.algs)
        }
        fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(m, c, d, &self.algs)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    };
}

/// Checks the parent's chain against the root named by a join token (by hash): the last
/// certificate it sends must be that root, and the rest must chain to it. Its name is checked
/// after the enrollment answer says which place the parent has.
struct TokenRoot {
    root_hash: [u8; 32],
    algs: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for TokenRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenRoot")
    }
}

impl ServerCertVerifier for TokenRoot {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some((root, mids)) = intermediates.split_last() else {
            return Err(rustls::Error::General("the parent sent no root certificate; is it enrolled in a federation?".into()));
        };
        if blake3::hash(root).as_bytes() != &self.root_hash {
            return Err(rustls::Error::General("the parent belongs to another federation than the join token's".into()));
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root.clone().into_owned())?;
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(&parsed, &roots, mids, now, self.algs.all)?;
        Ok(ServerCertVerified::assertion())
    }
    handshake_signatures!();
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    crate::pki::write_private(path, bytes).map_err(|source| IdentityError::Io { action: "write", path: path.to_path_buf(), source })
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
    handshake_signatures!();
}

impl ClientCertVerifier for PinnedPeer {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(&self, _e: &CertificateDer<'_>, _i: &[CertificateDer<'_>], _now: UnixTime) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    handshake_signatures!();
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
        assert!(a.quic_server_config(b"youke/1", b"e").is_ok());
        assert!(a.quic_client_config(b"youke/1").is_ok());
    }
}
