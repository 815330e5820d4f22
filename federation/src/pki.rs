//! The federation PKI: a certificate tree that mirrors the tree of nodes.
//!
//! The province holds the federation's root CA. Every node's certificate names its place in
//! the tree as one DNS name, `<tier>.<node id>.<parent id>….youke`:
//!
//! ```text
//! province.P.youke            the province P (certificate signed by the root)
//! city.C.P.youke              city C under P (signed by the root)
//! school.S.C.P.youke          school S under C (signed by C's own CA)
//! ```
//!
//! A city also holds a CA certificate of its own, signed by the root, constrained to issue only
//! names under `C.P.youke` (X.509 name constraints, path length 0): a city cannot mint a
//! certificate for another city's school, nor for a city. TLS (rustls, webpki) checks every
//! chain up to the root; the link layer then checks that the peer's certificate names exactly
//! the place it must have: a parent checks `school.<claimed id>.<own place>`, a child checks
//! `city.<its parent's place>`.
//!
//! Enrollment: a parent admin creates a one-time [`JoinToken`] (a secret and the hash of the
//! root certificate). The child connects with the token, checks that the parent chains to that
//! root, proves that it holds its new keys, and receives its certificates ([`Enrollment`]).

use crate::tier::Tier;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, NameConstraints, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::server::danger::ClientCertVerifier;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The DNS suffix of every name in the federation.
pub const DOMAIN: &str = "youke";
/// File in the data directory holding a node's enrollment (mode 0600: it holds private keys).
pub const ENROLLMENT_FILE: &str = "enrollment.bin";
use crate::protocol::MAX_NODE_ID;

/// Writes a file only this user may read (private keys): temp file with mode 0600, fsync,
/// rename.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

const ROOT_YEARS: i64 = 30;
const CA_YEARS: i64 = 20;
const NODE_YEARS: i64 = 10;
const ENROLL_PROOF_CONTEXT: &[u8] = b"youke enrollment proof v1\0";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{0:?} is not a valid node id: use 1 to 63 lowercase letters, digits and hyphens, not starting or ending with a hyphen")]
    BadNodeId(String),
    #[error("{0:?} is not the name of a place in a youke federation")]
    BadPlace(String),
    #[error("a school has no children")]
    NoChildren,
    #[error("this authority ({authority}) may not issue a certificate for {place}")]
    OutsideAuthority { authority: String, place: String },
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the public key sent is not a P-256 key")]
    BadPublicKey,
    #[error("the proof of key possession does not verify")]
    BadProof,
    #[error("{0:?} is not a youke join token (it starts with YK1 and was printed by `youke token create`)")]
    BadToken(String),
    #[error("certificate check failed: {0}")]
    Verify(String),
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is damaged ({message}); restore it from a backup or enroll this node again")]
    Damaged { path: PathBuf, message: String },
}

/// Checks that a node id can be one DNS label of a certificate name.
pub fn check_node_id(id: &str) -> Result<(), PkiError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_NODE_ID
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if ok { Ok(()) } else { Err(PkiError::BadNodeId(id.chars().take(80).collect())) }
}

/// A node's place in the tree: its id, then its parent's, up to the province's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Place {
    ids: Vec<String>,
}

impl Place {
    pub fn province(id: &str) -> Result<Place, PkiError> {
        check_node_id(id)?;
        Ok(Place { ids: vec![id.to_string()] })
    }

    /// The place of a child `id` under this node.
    pub fn child(&self, id: &str) -> Result<Place, PkiError> {
        check_node_id(id)?;
        if self.tier() == Tier::School {
            return Err(PkiError::NoChildren);
        }
        let mut ids = Vec::with_capacity(self.ids.len() + 1);
        ids.push(id.to_string());
        ids.extend(self.ids.iter().cloned());
        Ok(Place { ids })
    }

    pub fn parent(&self) -> Option<Place> {
        (self.ids.len() > 1).then(|| Place { ids: self.ids[1..].to_vec() })
    }

    pub fn tier(&self) -> Tier {
        match self.ids.len() {
            1 => Tier::Province,
            2 => Tier::City,
            _ => Tier::School,
        }
    }

    pub fn node_id(&self) -> &str {
        self.ids.first().map(String::as_str).unwrap_or_default()
    }

    /// The name in this node's certificate, e.g. `school.S.C.P.youke`.
    pub fn dns_name(&self) -> String {
        format!("{}.{}", self.tier(), self.subtree())
    }

    /// The DNS subtree of this node and everything below it, e.g. `C.P.youke`.
    pub fn subtree(&self) -> String {
        format!("{}.{DOMAIN}", self.ids.join("."))
    }

    /// Whether `other` is this node or below it.
    pub fn contains(&self, other: &Place) -> bool {
        other.ids.len() >= self.ids.len() && other.ids[other.ids.len() - self.ids.len()..] == self.ids[..]
    }

    /// Parses a certificate name made by [`Place::dns_name`].
    pub fn parse(name: &str) -> Result<Place, PkiError> {
        let bad = || PkiError::BadPlace(name.chars().take(300).collect());
        let mut labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 3 || labels.pop() != Some(DOMAIN) {
            return Err(bad());
        }
        let tier: Tier = labels.remove(0).parse().map_err(|_| bad())?;
        for l in &labels {
            check_node_id(l).map_err(|_| bad())?;
        }
        let place = Place { ids: labels.into_iter().map(str::to_string).collect() };
        if place.ids.len() > 3 || place.tier() != tier {
            return Err(bad());
        }
        Ok(place)
    }

    fn server_name(&self) -> Result<ServerName<'static>, PkiError> {
        ServerName::try_from(self.dns_name()).map_err(|_| PkiError::BadPlace(self.dns_name()))
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dns_name())
    }
}

fn now_offset() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn validity(params: &mut CertificateParams, years: i64) {
    let now = now_offset();
    // An hour of slack for nodes whose clocks run a little behind the issuer's.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365 * years);
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b[0] &= 0x7f;
    b[0] |= 0x01;
    SerialNumber::from_slice(&b)
}

/// The parameters that make a CA's subject; rebuilt the same way whenever the CA signs, so
/// issued certificates name their issuer exactly as the CA certificate names itself.
fn ca_params(place: &Place) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Youke federation");
    dn.push(DnType::CommonName, format!("youke CA {}", place.subtree()));
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p
}

/// A raw P-256 public key (SEC1 uncompressed point) sent by an enrolling node.
struct RawP256<'a>(&'a [u8]);

impl PublicKeyData for RawP256<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

fn check_public_key(raw: &[u8]) -> Result<RawP256<'_>, PkiError> {
    if raw.len() != 65 || raw[0] != 0x04 {
        return Err(PkiError::BadPublicKey);
    }
    Ok(RawP256(raw))
}

/// A CA that signs certificates: the province's root, or a city's CA.
pub struct Authority {
    place: Place,
    cert_der: Vec<u8>,
    key: KeyPair,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority").field("place", &self.place.dns_name()).finish_non_exhaustive()
    }
}

impl Authority {
    fn load(place: Place, cert_der: Vec<u8>, key_der: &[u8]) -> Result<Authority, PkiError> {
        Ok(Authority { place, cert_der, key: KeyPair::try_from(key_der)? })
    }

    pub fn place(&self) -> &Place {
        &self.place
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    fn issuer(&self) -> Issuer<'static, &KeyPair> {
        Issuer::new(ca_params(&self.place), &self.key)
    }

    /// Issues the node certificate of `place` (a child of this authority's node, or the
    /// province itself for the root) for a raw P-256 public key.
    pub fn issue_node(&self, place: &Place, name: &str, public_key: &[u8]) -> Result<Vec<u8>, PkiError> {
        let allowed = match self.place.tier() {
            // The root signs the province's own certificate and its cities'.
            Tier::Province => place == &self.place || place.parent().as_ref() == Some(&self.place),
            Tier::City => place.parent().as_ref() == Some(&self.place),
            Tier::School => false,
        };
        if !allowed {
            return Err(PkiError::OutsideAuthority { authority: self.place.dns_name(), place: place.dns_name() });
        }
        let key = check_public_key(public_key)?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Youke federation");
        dn.push(DnType::CommonName, name.chars().take(64).collect::<String>());
        p.distinguished_name = dn;
        p.subject_alt_names = vec![SanType::DnsName(place.dns_name().try_into()?)];
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        p.serial_number = Some(random_serial());
        validity(&mut p, NODE_YEARS);
        Ok(p.signed_by(&key, &self.issuer())?.der().to_vec())
    }

    /// Signs a node certificate for any name, skipping the check that it lies below this
    /// authority: what a tampered binary could do with a stolen CA key. Only for tests showing
    /// that the name constraints of the CA certificate still hold.
    #[doc(hidden)]
    pub fn sign_unchecked(&self, dns_name: &str, public_key: &[u8]) -> Result<Vec<u8>, PkiError> {
        let key = check_public_key(public_key)?;
        let mut p = CertificateParams::default();
        p.subject_alt_names = vec![SanType::DnsName(dns_name.try_into()?)];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        p.serial_number = Some(random_serial());
        validity(&mut p, 1);
        Ok(p.signed_by(&key, &self.issuer())?.der().to_vec())
    }

    /// The root issues a city's CA certificate: it may sign only names under the city.
    pub fn issue_city_ca(&self, city: &Place, public_key: &[u8]) -> Result<Vec<u8>, PkiError> {
        if self.place.tier() != Tier::Province || city.parent().as_ref() != Some(&self.place) {
            return Err(PkiError::OutsideAuthority { authority: self.place.dns_name(), place: city.dns_name() });
        }
        let key = check_public_key(public_key)?;
        let mut p = ca_params(city);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.name_constraints = Some(NameConstraints { permitted_subtrees: vec![GeneralSubtree::DnsName(city.subtree())], excluded_subtrees: vec![] });
        p.serial_number = Some(random_serial());
        validity(&mut p, CA_YEARS);
        Ok(p.signed_by(&key, &self.issuer())?.der().to_vec())
    }
}

/// Creates a federation: the root CA at the province and the province's own node certificate.
pub fn create_federation(province_id: &str, name: &str) -> Result<Enrollment, PkiError> {
    let place = Place::province(province_id)?;
    let root_key = KeyPair::generate()?;
    let mut p = ca_params(&place);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    p.name_constraints = Some(NameConstraints { permitted_subtrees: vec![GeneralSubtree::DnsName(place.subtree())], excluded_subtrees: vec![] });
    p.serial_number = Some(random_serial());
    validity(&mut p, ROOT_YEARS);
    let root_der = p.self_signed(&root_key)?.der().to_vec();
    let root = Authority { place: place.clone(), cert_der: root_der.clone(), key: root_key };
    let node_key = KeyPair::generate()?;
    let node_cert = root.issue_node(&place, name, node_key.public_key_raw())?;
    Ok(Enrollment {
        place,
        name: name.to_string(),
        root_der: root_der.clone(),
        node_cert_der: node_cert,
        node_key_der: node_key.serialize_der(),
        intermediates: vec![],
        ca: Some(CaKeys { cert_der: root_der, key_der: root.key.serialize_der() }),
    })
}

/// Everything a node holds after enrollment: its place, certificates and keys.
#[derive(Clone, Serialize, Deserialize)]
pub struct Enrollment {
    pub place: Place,
    pub name: String,
    /// The federation's root certificate.
    pub root_der: Vec<u8>,
    pub node_cert_der: Vec<u8>,
    node_key_der: Vec<u8>,
    /// Certificates between the node's and the root (a school: its city's CA).
    pub intermediates: Vec<Vec<u8>>,
    /// The CA this node signs its children's certificates with (province: the root; city: its
    /// CA); none for a school.
    ca: Option<CaKeys>,
}

#[derive(Clone, Serialize, Deserialize)]
struct CaKeys {
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrollment").field("place", &self.place.dns_name()).field("name", &self.name).finish_non_exhaustive()
    }
}

impl Enrollment {
    pub fn node_key_der(&self) -> &[u8] {
        &self.node_key_der
    }

    /// BLAKE3 of the root certificate: what join tokens carry.
    pub fn root_hash(&self) -> [u8; 32] {
        *blake3::hash(&self.root_der).as_bytes()
    }

    /// The CA this node signs its children's certificates with.
    pub fn authority(&self) -> Result<Option<Authority>, PkiError> {
        match &self.ca {
            None => Ok(None),
            Some(ca) => Authority::load(self.place.clone(), ca.cert_der.clone(), &ca.key_der).map(Some),
        }
    }

    /// The chain this node presents in TLS: its certificate, the intermediates, the root (so an
    /// enrolling child can match the root against its token).
    pub fn tls_chain(&self) -> Vec<CertificateDer<'static>> {
        let mut chain = vec![CertificateDer::from(self.node_cert_der.clone())];
        chain.extend(self.intermediates.iter().cloned().map(CertificateDer::from));
        chain.push(CertificateDer::from(self.root_der.clone()));
        chain
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, PkiError> {
        roots_of(&self.root_der)
    }

    /// Verifies parents' certificates up to this federation's root.
    pub fn server_verifier(&self) -> Result<Arc<dyn ServerCertVerifier>, PkiError> {
        Ok(WebPkiServerVerifier::builder_with_provider(self.roots()?, provider())
            .build()
            .map_err(|e| PkiError::Verify(e.to_string()))?)
    }

    /// Verifies children's certificates up to this federation's root. A connection without a
    /// certificate is let through TLS only for enrollment; the link layer refuses it otherwise.
    pub fn client_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, PkiError> {
        WebPkiClientVerifier::builder_with_provider(self.roots()?, provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| PkiError::Verify(e.to_string()))
    }

    /// Checks a complete chain received at enrollment: it leads to the root and names `place`.
    pub fn verify_own(&self) -> Result<(), PkiError> {
        let verifier = self.server_verifier()?;
        let end = CertificateDer::from(self.node_cert_der.as_slice());
        let mids: Vec<CertificateDer<'_>> = self.intermediates.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        verifier
            .verify_server_cert(&end, &mids, &self.place.server_name()?, &[], UnixTime::now())
            .map_err(|e| PkiError::Verify(format!("the certificate issued for {} does not check: {e}", self.place)))?;
        // The node's key must match its certificate: sign and verify.
        let key = KeyPair::try_from(self.node_key_der.as_slice())?;
        if !self.node_cert_der.windows(65).any(|w| w == key.public_key_raw()) {
            return Err(PkiError::Verify("the node's key does not belong to its certificate".into()));
        }
        Ok(())
    }

    /// Saves the enrollment (temp file, fsync, rename; mode 0600).
    pub fn save(&self, data_dir: &Path) -> Result<(), PkiError> {
        let bytes = postcard::to_stdvec(self).map_err(|e| PkiError::Damaged { path: data_dir.join(ENROLLMENT_FILE), message: e.to_string() })?;
        write_private(&data_dir.join(ENROLLMENT_FILE), &bytes).map_err(|source| PkiError::Io { action: "write", path: data_dir.join(ENROLLMENT_FILE), source })
    }

    /// Loads the enrollment kept in `data_dir`, if the node is enrolled.
    pub fn load(data_dir: &Path) -> Result<Option<Enrollment>, PkiError> {
        let path = data_dir.join(ENROLLMENT_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(PkiError::Io { action: "read", path, source }),
        };
        let e: Enrollment = postcard::from_bytes(&bytes).map_err(|e| PkiError::Damaged { path: path.clone(), message: e.to_string() })?;
        Ok(Some(e))
    }
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots_of(root_der: &[u8]) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(root_der.to_vec())).map_err(|e| PkiError::Verify(format!("the root certificate is unusable: {e}")))?;
    Ok(Arc::new(roots))
}

/// Checks that a peer's end-entity certificate (already verified up to the root by TLS) names
/// exactly `expected`.
pub fn check_peer_place(end_entity_der: &[u8], expected: &Place) -> Result<(), PkiError> {
    let der = CertificateDer::from(end_entity_der);
    let parsed = ParsedCertificate::try_from(&der).map_err(|e| PkiError::Verify(e.to_string()))?;
    rustls::client::verify_server_name(&parsed, &expected.server_name()?)
        .map_err(|_| PkiError::Verify(format!("the certificate does not name {expected}")))
}

/// Signs `ENROLL_PROOF_CONTEXT || message` with `key`: proves the enrolling node holds it.
pub fn prove(key: &KeyPair, message: &[u8]) -> Result<Vec<u8>, PkiError> {
    use rcgen::SigningKey;
    let mut m = ENROLL_PROOF_CONTEXT.to_vec();
    m.extend_from_slice(message);
    Ok(key.sign(&m)?)
}

/// Verifies a proof made by [`prove`] for a raw P-256 public key.
pub fn verify_proof(public_key: &[u8], message: &[u8], proof: &[u8]) -> Result<(), PkiError> {
    check_public_key(public_key)?;
    let mut m = ENROLL_PROOF_CONTEXT.to_vec();
    m.extend_from_slice(message);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, public_key)
        .verify(&m, proof)
        .map_err(|_| PkiError::BadProof)
}

/// A one-time join token: a secret the parent remembers (as a hash) and the hash of the root
/// certificate, so the joining node can check it talks to the right federation.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub secret: [u8; 16],
    pub root_hash: [u8; 32],
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinToken({})", self.id())
    }
}

const TOKEN_PREFIX: &str = "YK1";
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

impl JoinToken {
    pub fn generate(root_hash: [u8; 32]) -> JoinToken {
        let mut secret = [0u8; 16];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret);
        JoinToken { secret, root_hash }
    }

    /// What the parent stores: the hash of the secret (hex), never the secret itself.
    pub fn id(&self) -> String {
        secret_id(&self.secret)
    }

    pub fn encode(&self) -> String {
        let mut bytes = self.secret.to_vec();
        bytes.extend_from_slice(&self.root_hash);
        format!("{TOKEN_PREFIX}{}", base32_encode(&bytes))
    }

    pub fn parse(text: &str) -> Result<JoinToken, PkiError> {
        let bad = || PkiError::BadToken(text.chars().take(16).collect::<String>() + "…");
        let t: String = text.trim().chars().filter(|c| !matches!(c, '-' | ' ')).collect::<String>().to_ascii_uppercase();
        let body = t.strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
        let bytes = base32_decode(body).ok_or_else(bad)?;
        // 48 bytes are 77 base32 digits, the last carrying 4 bits.
        if body.len() != 77 || bytes.len() != 48 {
            return Err(bad());
        }
        let mut secret = [0u8; 16];
        let mut root_hash = [0u8; 32];
        secret.copy_from_slice(&bytes[..16]);
        root_hash.copy_from_slice(&bytes[16..]);
        Ok(JoinToken { secret, root_hash })
    }
}

/// The stored id of a token secret.
pub fn secret_id(secret: &[u8]) -> String {
    hex::encode(blake3::derive_key("youke join token id 2026-11", secret))
}

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = BASE32.iter().position(|&x| x == c)? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A new key pair for an enrolling node.
pub fn new_key() -> Result<KeyPair, PkiError> {
    Ok(KeyPair::generate()?)
}

/// Builds an enrollment from what the parent answered, and checks it completely.
pub fn accept_enrollment(
    place: Place,
    name: String,
    root_der: Vec<u8>,
    node_cert_der: Vec<u8>,
    node_key: &KeyPair,
    intermediates: Vec<Vec<u8>>,
    ca: Option<(Vec<u8>, &KeyPair)>,
) -> Result<Enrollment, PkiError> {
    let e = Enrollment {
        place,
        name,
        root_der,
        node_cert_der,
        node_key_der: node_key.serialize_der(),
        intermediates,
        ca: ca.map(|(cert_der, key)| CaKeys { cert_der, key_der: key.serialize_der() }),
    };
    e.verify_own()?;
    if let Some(auth) = e.authority()? {
        // A city's CA must chain to the root and be able to sign for its subtree: issue a
        // throwaway school certificate and check it.
        if e.place.tier() == Tier::City {
            let probe = e.place.child("probe")?;
            let k = KeyPair::generate()?;
            let cert = auth.issue_node(&probe, "probe", k.public_key_raw())?;
            let verifier = e.server_verifier()?;
            let ca_cert = CertificateDer::from(auth.cert_der.clone());
            verifier
                .verify_server_cert(&CertificateDer::from(cert), &[ca_cert], &probe.server_name()?, &[], UnixTime::now())
                .map_err(|err| PkiError::Verify(format!("the CA certificate issued for {} does not work: {err}", e.place)))?;
        }
    }
    Ok(e)
}

/// The node ids revoked in the federation, as this node knows them. The node keeps it in step
/// with its revocation documents; links check it at every handshake and close a live link
/// whose peer becomes revoked.
#[derive(Debug)]
pub struct Revocations {
    ids: std::sync::RwLock<std::collections::HashSet<String>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations { ids: Default::default(), changed: tokio::sync::watch::Sender::new(0) }
    }
}

impl Revocations {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn contains(&self, node_id: &str) -> bool {
        self.ids.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(node_id)
    }

    /// Replaces the set; tells the links if it changed.
    pub fn replace(&self, ids: impl IntoIterator<Item = String>) {
        let new: std::collections::HashSet<String> = ids.into_iter().collect();
        let mut cur = self.ids.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *cur != new {
            *cur = new;
            drop(cur);
            self.changed.send_modify(|g| *g += 1);
        }
    }

    /// Fires whenever the set changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Parent side: checks a child's certificate (already verified up to the root by TLS) against
/// what its hello claims. Returns the child's place, or the reason to refuse it.
pub fn check_child(own: &Place, claimed_id: &str, claimed_tier: Tier, cert_der: Option<&[u8]>) -> Result<Place, String> {
    let cert = cert_der.ok_or("it presented no certificate; enroll it with a join token first (`youke enroll`)")?;
    let place = own.child(claimed_id).map_err(|e| e.to_string())?;
    if place.tier() != claimed_tier {
        return Err(format!("it says it is a {claimed_tier}, but a child of this {} is a {}", own.tier(), place.tier()));
    }
    check_peer_place(cert, &place).map_err(|_| {
        format!("its certificate is not the one of {claimed_tier} {claimed_id} under this node ({place}): it belongs elsewhere in the tree or to another role")
    })?;
    Ok(place)
}

/// The fuzz target of the parsers of names and tokens operators and peers hand in: they
/// never panic, and what parses prints back to the same value.
#[doc(hidden)]
#[allow(clippy::expect_used)] // a fuzz target reports a broken property by panicking
pub fn fuzz_names(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = Place::parse(text) {
        assert_eq!(Place::parse(&p.dns_name()).ok().as_ref(), Some(&p));
        let _ = p.child("x");
    }
    if let Ok(t) = JoinToken::parse(text) {
        assert_eq!(JoinToken::parse(&t.encode()).ok().as_ref(), Some(&t));
    }
    let _ = parse_lifetime(text);
    let _ = check_node_id(text);
}

/// How long join tokens live when `--expires` is not given.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Parses a lifetime such as `24h`, `7d`, `30m`.
pub fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().map_err(|_| format!("{text:?} is not a lifetime; write e.g. 30m, 24h or 7d"))?;
    let unit_secs: u64 = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" | "" => 3600,
        "d" => 86400,
        _ => return Err(format!("{text:?} is not a lifetime; write e.g. 30m, 24h or 7d")),
    };
    // Found by the `names` fuzz target: a huge count overflowed the multiplication.
    let secs = n.saturating_mul(unit_secs);
    if secs == 0 || secs > 90 * 86400 {
        return Err(format!("{text:?}: a join token lives between 1 second and 90 days"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn city_enrollment(root: &Enrollment, city_id: &str) -> Enrollment {
        let auth = root.authority().unwrap().unwrap();
        let place = root.place.child(city_id).unwrap();
        let node_key = KeyPair::generate().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let cert = auth.issue_node(&place, "石家庄市", node_key.public_key_raw()).unwrap();
        let ca = auth.issue_city_ca(&place, ca_key.public_key_raw()).unwrap();
        accept_enrollment(place, "石家庄市".into(), root.root_der.clone(), cert, &node_key, vec![], Some((ca, &ca_key))).unwrap()
    }

    fn school_enrollment(city: &Enrollment, id: &str) -> Enrollment {
        let auth = city.authority().unwrap().unwrap();
        let place = city.place.child(id).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = auth.issue_node(&place, "第一中学", key.public_key_raw()).unwrap();
        accept_enrollment(place, "第一中学".into(), city.root_der.clone(), cert, &key, vec![auth.cert_der().to_vec()], None).unwrap()
    }

    fn verify(root: &Enrollment, cert: &[u8], mids: &[Vec<u8>], name: &Place) -> Result<(), String> {
        let v = root.server_verifier().unwrap();
        let mids: Vec<CertificateDer<'_>> = mids.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        v.verify_server_cert(&CertificateDer::from(cert), &mids, &name.server_name().unwrap(), &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn places_round_trip_and_nest() {
        let p = Place::province("p1").unwrap();
        let c = p.child("c1").unwrap();
        let s = c.child("0f8e-aa").unwrap();
        assert_eq!(s.dns_name(), "school.0f8e-aa.c1.p1.youke");
        assert_eq!(Place::parse(&s.dns_name()).unwrap(), s);
        assert_eq!(Place::parse(&c.dns_name()).unwrap().tier(), Tier::City);
        assert!(p.contains(&s) && c.contains(&s) && s.contains(&s) && !s.contains(&c));
        assert!(!c.contains(&p.child("c2").unwrap().child("x").unwrap()));
        assert!(s.child("x").is_err());
        for bad in ["school.c1.p1.youke", "city.x.c1.p1.youke", "school.a.b.c.d.youke", "school.A.c.p.youke", "province.p1.example", "", "school..c.p.youke"] {
            assert!(Place::parse(bad).is_err(), "{bad} parsed");
        }
        assert!(check_node_id(&"a".repeat(64)).is_err());
        assert!(check_node_id("-a").is_err());
        assert!(check_node_id("6c1f2a3e-0d4b-4f4e-9a54-0b7f2d7b9a11").is_ok());
    }

    #[test]
    fn the_tree_of_certificates_checks_and_confines_each_authority() {
        let province = create_federation("p1", "河北省").unwrap();
        province.verify_own().unwrap();
        let city = city_enrollment(&province, "c1");
        let school = school_enrollment(&city, "s1");
        assert_eq!(school.place.dns_name(), "school.s1.c1.p1.youke");
        // Each certificate is valid for its own name only.
        verify(&province, &school.node_cert_der, &school.intermediates, &school.place).unwrap();
        assert!(verify(&province, &school.node_cert_der, &school.intermediates, &city.place).is_err(), "a school acting as a city");
        check_peer_place(&school.node_cert_der, &school.place).unwrap();
        assert!(check_peer_place(&school.node_cert_der, &city.place.child("s2").unwrap()).is_err());
        // A city's CA refuses to sign outside its subtree, and a certificate it is forced to
        // sign there (by a tampered binary) fails the name constraints of its CA certificate.
        let city_auth = city.authority().unwrap().unwrap();
        let other = province.place.child("c2").unwrap().child("s9").unwrap();
        let k = KeyPair::generate().unwrap();
        assert!(matches!(city_auth.issue_node(&other, "x", k.public_key_raw()), Err(PkiError::OutsideAuthority { .. })));
        let mut p = CertificateParams::default();
        p.subject_alt_names = vec![SanType::DnsName(other.dns_name().try_into().unwrap())];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let forged = p.signed_by(&k, &city_auth.issuer()).unwrap().der().to_vec();
        let err = verify(&province, &forged, &[city_auth.cert_der().to_vec()], &other).unwrap_err();
        assert!(err.to_lowercase().contains("name"), "{err}");
        // Another city's place cannot be claimed by a city certificate either.
        let mut p = CertificateParams::default();
        let c2 = province.place.child("c2").unwrap();
        p.subject_alt_names = vec![SanType::DnsName(c2.dns_name().try_into().unwrap())];
        let forged = p.signed_by(&k, &city_auth.issuer()).unwrap().der().to_vec();
        assert!(verify(&province, &forged, &[city_auth.cert_der().to_vec()], &c2).is_err());
        // A school key cannot sign certificates (end entities are not CAs).
        let s_key = KeyPair::try_from(school.node_key_der()).unwrap();
        let s_issuer = Issuer::new(CertificateParams::default(), &s_key);
        let mut p = CertificateParams::default();
        let s2 = city.place.child("s2").unwrap();
        p.subject_alt_names = vec![SanType::DnsName(s2.dns_name().try_into().unwrap())];
        let forged = p.signed_by(&k, &s_issuer).unwrap().der().to_vec();
        assert!(verify(&province, &forged, &[school.node_cert_der.clone(), city_auth.cert_der().to_vec()], &s2).is_err());
        // Another federation's root is not this one's.
        let foreign = create_federation("p1", "另一个省").unwrap();
        let foreign_city = city_enrollment(&foreign, "c1");
        assert!(verify(&province, &foreign_city.node_cert_der, &[], &city.place).is_err());
        // A school cannot be issued by the root directly, nor a city by a city.
        let root_auth = province.authority().unwrap().unwrap();
        assert!(root_auth.issue_node(&school.place, "x", k.public_key_raw()).is_err());
        assert!(city_auth.issue_node(&c2, "x", k.public_key_raw()).is_err());
        assert!(root_auth.issue_node(&c2, "x", &[4u8; 10]).is_err());
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = JoinToken::generate([7u8; 32]);
        let s = t.encode();
        assert!(s.starts_with("YK1"));
        assert_eq!(JoinToken::parse(&s).unwrap(), t);
        assert_eq!(JoinToken::parse(&s.to_lowercase()).unwrap(), t);
        assert!(JoinToken::parse("YK1AAAA").is_err());
        assert!(JoinToken::parse("hello").is_err());
        assert!(JoinToken::parse(&format!("{s}A")).is_err());
        assert_ne!(JoinToken::generate([7u8; 32]).id(), t.id());
        assert_eq!(parse_lifetime("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_lifetime("30m").unwrap(), Duration::from_secs(1800));
        assert!(parse_lifetime("0h").is_err() && parse_lifetime("1y").is_err() && parse_lifetime("999d").is_err());
        assert!(parse_lifetime("99999999999999999h").is_err(), "no overflow");
    }

    #[test]
    fn proofs_bind_the_key() {
        let k = KeyPair::generate().unwrap();
        let proof = prove(&k, b"secret").unwrap();
        verify_proof(k.public_key_raw(), b"secret", &proof).unwrap();
        assert!(verify_proof(k.public_key_raw(), b"other", &proof).is_err());
        let k2 = KeyPair::generate().unwrap();
        assert!(verify_proof(k2.public_key_raw(), b"secret", &proof).is_err());
        assert!(verify_proof(&[0u8; 65], b"secret", &proof).is_err());
    }

    #[test]
    fn enrollment_persists_privately() {
        let dir = tempfile::tempdir().unwrap();
        let e = create_federation("p1", "省").unwrap();
        e.save(dir.path()).unwrap();
        let back = Enrollment::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.place, e.place);
        back.verify_own().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ENROLLMENT_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(ENROLLMENT_FILE), b"garbage").unwrap();
        assert!(matches!(Enrollment::load(dir.path()), Err(PkiError::Damaged { .. })));
    }
}
