//! Enrollment over the federation port: the parent's side answers one request on a connection
//! that negotiated the enrollment ALPN (checks the join token's proofs, redeems the token,
//! issues the certificates), and the joining node's side ([`enroll`]) makes its keys, checks that
//! the parent belongs to the token's federation and returns what it was issued.

use super::acceptor::ChildAcceptor;
use super::blocking;
use crate::counters::LinkCounters;
use crate::identity::Trust;
use crate::pki::{self, JoinToken, Place};
use crate::protocol::{self, Message};
use crate::tier::Tier;
use crate::transport::{LinkError, MESSAGE_TIMEOUT, connection_error, peer_chain, read_msg_within, request, transport, write_msg};
use quinn::{Connection, Endpoint};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

impl ChildAcceptor {
    /// An enrolling node: one request, one answer, then the connection closes. Every refusal
    /// is logged with its reason and nothing is written.
    pub(super) async fn serve_enrollment(&self, conn: &Connection) -> Result<(), LinkError> {
        let remote = conn.remote_address();
        let (mut send, mut recv) = tokio::time::timeout(MESSAGE_TIMEOUT, conn.accept_bi())
            .await
            .map_err(|_| LinkError::Timeout("the enrollment request"))??;
        let verdict = match read_msg_within(&mut recv, protocol::MAX_UNAUTHENTICATED_MESSAGE).await {
            Ok(Message::Enroll { token, node_id, public_key, proof, ca_public_key, ca_proof }) => {
                self.enroll_child(token, node_id, public_key, proof, ca_public_key, ca_proof).await
            }
            Ok(other) => Err(format!("expected an enrollment request, got {}", protocol::describe(&other))),
            Err(e) => Err(format!("unreadable enrollment request: {e}")),
        };
        let answer = match verdict {
            Ok(m) => m,
            Err(reason) => {
                warn!(%remote, %reason, "refused an enrollment");
                LinkCounters::add(&self.counters.enrollments_refused, 1);
                Message::Refused { reason }
            }
        };
        write_msg(&mut send, &answer).await?;
        send.finish()?;
        let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
        conn.close(0u32.into(), b"enrollment done");
        Ok(())
    }

    async fn enroll_child(
        &self,
        token: Vec<u8>,
        node_id: String,
        public_key: Vec<u8>,
        proof: Vec<u8>,
        ca_public_key: Vec<u8>,
        ca_proof: Vec<u8>,
    ) -> Result<Message, String> {
        let Trust::Federation(e) = &self.trust else {
            return Err("this node runs in development trust mode and does not enroll nodes".into());
        };
        let authority = e.authority().map_err(|e| e.to_string())?.ok_or("this node has no CA to sign certificates with")?;
        pki::check_node_id(&node_id).map_err(|e| e.to_string())?;
        if token.len() != 16 {
            return Err("the join token is malformed".into());
        }
        let transcript = protocol::enroll_transcript(&token, &node_id);
        pki::verify_proof(&public_key, &transcript, &proof).map_err(|e| format!("node key: {e}"))?;
        let place = e.place.child(&node_id).map_err(|e| e.to_string())?;
        let city = place.tier() == Tier::City;
        if city {
            pki::verify_proof(&ca_public_key, &transcript, &ca_proof).map_err(|e| format!("CA key: {e}"))?;
        }
        if self.revocations.contains(&node_id) {
            return Err(format!("node id {node_id} was revoked; a reinstalled node gets a new id"));
        }
        let token_id = pki::secret_id(&token);
        let (id, name) = (node_id.clone(), place.dns_name());
        let name = blocking(&self.store, move |s| s.redeem_token(&token_id, &id, &name))
            .await
            .map_err(|e| format!("the parent could not record the enrollment: {e}"))??;
        let node_cert = authority.issue_node(&place, &name, &public_key).map_err(|e| e.to_string())?;
        let ca_cert = if city { Some(authority.issue_city_ca(&place, &ca_public_key).map_err(|e| e.to_string())?) } else { None };
        // A school's certificate is signed by its city's CA, which the school must present.
        let intermediates = if e.place.tier() == Tier::City { vec![authority.cert_der().to_vec()] } else { vec![] };
        info!(node_id = %node_id, %place, %name, "enrolled a child node");
        LinkCounters::add(&self.counters.enrollments, 1);
        Ok(Message::Enrolled { place: place.dns_name(), name, node_cert, intermediates, ca_cert })
    }
}

/// Enrolls this node under the parent at `parent_addr` with a join token: makes its key pairs,
/// checks that the parent belongs to the token's federation, and returns the certificates it
/// issued, checked up to the root. Nothing is written; the caller saves the enrollment.
pub async fn enroll(parent_addr: &str, token: &JoinToken, node_id: &str) -> Result<pki::Enrollment, LinkError> {
    pki::check_node_id(node_id)?;
    let addr = tokio::net::lookup_host(parent_addr)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| LinkError::Resolve(parent_addr.to_string()))?;
    let bind: SocketAddr = if addr.is_ipv6() { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() } else { (std::net::Ipv4Addr::UNSPECIFIED, 0).into() };
    let mut endpoint = Endpoint::client(bind)?;
    let mut client = quinn::ClientConfig::new(Arc::new(crate::identity::enroll_client_config(token.root_hash, protocol::ENROLL_ALPN)?));
    client.transport_config(transport());
    endpoint.set_default_client_config(client);
    let result = enroll_on(&endpoint, addr, parent_addr, token, node_id).await;
    endpoint.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    result
}

async fn enroll_on(endpoint: &Endpoint, addr: SocketAddr, parent_addr: &str, token: &JoinToken, node_id: &str) -> Result<pki::Enrollment, LinkError> {
    let conn = tokio::time::timeout(MESSAGE_TIMEOUT, endpoint.connect(addr, "youke-enroll")?)
        .await
        .map_err(|_| LinkError::Timeout("the parent to answer"))?
        .map_err(connection_error)?;
    let chain = peer_chain(&conn);
    let (Some(parent_cert), Some(root)) = (chain.first(), chain.last()) else {
        return Err(LinkError::Pin("the parent presented no certificate".into()));
    };
    let node_key = pki::new_key()?;
    let ca_key = pki::new_key()?;
    let transcript = protocol::enroll_transcript(&token.secret, node_id);
    let ask = Message::Enroll {
        token: token.secret.to_vec(),
        node_id: node_id.to_string(),
        public_key: node_key.public_key_raw().to_vec(),
        proof: pki::prove(&node_key, &transcript)?,
        ca_public_key: ca_key.public_key_raw().to_vec(),
        ca_proof: pki::prove(&ca_key, &transcript)?,
    };
    let (_s, _r, answer) = request(&conn, &ask).await?;
    conn.close(0u32.into(), b"enrolled");
    let (place, name, node_cert, intermediates, ca_cert) = match answer {
        Message::Enrolled { place, name, node_cert, intermediates, ca_cert } => (place, name, node_cert, intermediates, ca_cert),
        Message::Refused { reason } => return Err(LinkError::Refused(reason)),
        other => return Err(LinkError::Protocol(format!("expected an enrollment answer, got {}", protocol::describe(&other)))),
    };
    let place = Place::parse(&place)?;
    if place.node_id() != node_id || intermediates.len() > 2 || name.len() > protocol::MAX_TEXT {
        return Err(LinkError::Protocol(format!("the parent issued a certificate for {place} instead of this node ({node_id})")));
    }
    let parent_place = place.parent().ok_or_else(|| LinkError::Protocol("the parent issued a province certificate".into()))?;
    pki::check_peer_place(parent_cert, &parent_place)
        .map_err(|_| LinkError::Pin(format!("the node at {parent_addr} is not {parent_place}, the parent named in the answer")))?;
    let ca = ca_cert.map(|c| (c, &ca_key));
    Ok(pki::accept_enrollment(place, name, root.to_vec(), node_cert, &node_key, intermediates, ca)?)
}
