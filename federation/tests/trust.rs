//! The federation PKI over real QUIC sockets on 127.0.0.1: enrollment with join tokens builds
//! the tree of certificates, links are mutual TLS verified up to the root with role and place
//! checked on both sides, and every hostile case of the threat model is refused with a logged
//! reason and nothing written: expired, reused, forged and foreign tokens; a school acting as a
//! city; a school joining another city; a city minting certificates for another city's school;
//! revoked nodes; self-signed impostors; certificates of another federation; an older
//! protocol version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use youke_federation::identity::Trust;
use youke_federation::link::enroll;
use youke_federation::transport::LinkError;
use youke_federation::pki::{self, Enrollment, JoinToken};
use youke_federation::protocol::{DocUpdate, NodeInfo};
use youke_federation::{NodeIdentity, Tier};

fn hello(tier: Tier, id: &str) -> NodeInfo {
    info(tier, id)
}

/// A parent node of the federation (province, or an enrolled city).
fn start_enrolled_parent(e: &Enrollment) -> Parent {
    start_parent_as(hello(e.place.tier(), e.place.node_id()), NodeIdentity::from_enrollment(e.clone()))
}

/// A join token the parent made for a child named `name`.
fn token_at(parent: &Parent, root: &Enrollment, name: &str, expired: bool) -> JoinToken {
    let t = JoinToken::generate(root.root_hash());
    parent.store.with(|s| {
        s.tokens.insert(t.id(), Token { name: name.into(), expired, used_by: None });
    });
    t
}

async fn enroll_at(parent: &Parent, token: &JoinToken, node_id: &str) -> Result<Enrollment, LinkError> {
    enroll(&parent.addr.to_string(), token, node_id).await
}

fn nothing_written(parent: &Parent) -> bool {
    parent.store.with(|s| s.pins.is_empty() && s.applied.is_empty() && s.received.is_empty())
}

fn one_doc() -> Vec<DocUpdate> {
    vec![DocUpdate { id: "lesson-1".into(), kind: "lesson".into(), seq: 1, version: String::new(), full: true, bytes: vec![1; 64] }]
}

/// A province, a city enrolled under it (serving), and the province still serving.
async fn tree() -> (Enrollment, Parent, Enrollment, Parent) {
    logs();
    let root = pki::create_federation("p1", "河北省").unwrap();
    let province = start_enrolled_parent(&root);
    let t = token_at(&province, &root, "石家庄市", false);
    let city = enroll_at(&province, &t, "c1").await.expect("the city enrolls");
    let city_parent = start_enrolled_parent(&city);
    (root, province, city, city_parent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_builds_the_tree_and_links_verify_both_ways() {
    let (root, province, city, city_parent) = tree().await;
    assert_eq!(city.place.dns_name(), "city.c1.p1.youke");
    assert_eq!(city.name, "石家庄市");
    assert_eq!(province.store.with(|s| s.enrolled.clone()), vec![("c1".to_string(), "city.c1.p1.youke".to_string())]);
    assert!(city.authority().unwrap().is_some(), "a city gets a CA for its schools");

    let t = token_at(&city_parent, &root, "第一中学", false);
    let school = enroll_at(&city_parent, &t, "s1").await.expect("the school enrolls");
    assert_eq!(school.place.dns_name(), "school.s1.c1.p1.youke");
    assert_eq!(school.intermediates.len(), 1, "a school presents its city's CA");
    assert!(school.authority().unwrap().is_none());

    // The school links to its city, the city to the province; documents flow.
    let s_store = Arc::new(Mem::default());
    s_store.with(|s| s.outgoing = one_doc());
    let s = start_child(city_parent.addr, hello(Tier::School, "s1"), &NodeIdentity::from_enrollment(school), s_store.clone());
    let c_store = Arc::new(Mem::default());
    c_store.with(|s| s.outgoing = one_doc());
    let c = start_child(province.addr, hello(Tier::City, "c1"), &NodeIdentity::from_enrollment(city), c_store.clone());
    eventually("the school's document at the city", || city_parent.store.with(|s| s.applied.len() == 1)).await;
    eventually("the city's document at the province", || province.store.with(|s| s.applied.len() == 1)).await;
    s.cancel.cancel();
    c.cancel.cancel();
    province.cancel.cancel();
    city_parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_reused_forged_and_foreign_tokens_are_refused() {
    let (root, province, _city, city_parent) = tree().await;

    let expired = token_at(&city_parent, &root, "过期学校", true);
    let e = enroll_at(&city_parent, &expired, "s-expired").await.unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    logged_eventually("the expired token's refusal in the log", &["refused an enrollment", "expired"]).await;

    let once = token_at(&city_parent, &root, "一次", false);
    enroll_at(&city_parent, &once, "s-once").await.expect("first use");
    let e = enroll_at(&city_parent, &once, "s-twice").await.unwrap_err();
    assert!(e.to_string().contains("used already"), "{e}");
    logged_eventually("the reused token's refusal in the log", &["refused an enrollment", "used already"]).await;

    // Right federation, but a secret the parent never made.
    let forged = JoinToken::generate(root.root_hash());
    let e = enroll_at(&city_parent, &forged, "s-forged").await.unwrap_err();
    assert!(e.to_string().contains("not one this node made"), "{e}");

    // A token of another federation: the child refuses the parent in TLS, before sending it.
    let other = pki::create_federation("p1", "另一个省").unwrap();
    let foreign = JoinToken { secret: once.secret, root_hash: other.root_hash() };
    let e = enroll_at(&city_parent, &foreign, "s-foreign").await.unwrap_err();
    assert!(e.to_string().contains("another federation"), "{e}");

    // A bad node id is refused before anything is used.
    let fresh = token_at(&city_parent, &root, "新学校", false);
    let e = enroll_at(&city_parent, &fresh, "Bad_Id").await.unwrap_err();
    assert!(e.to_string().contains("not a valid node id"), "{e}");

    // Only the one good enrollment was written; the fresh token is still unused.
    let enrolled = city_parent.store.with(|s| s.enrolled.clone());
    assert_eq!(enrolled, vec![("s-once".to_string(), "school.s-once.c1.p1.youke".to_string())]);
    assert!(city_parent.store.with(|s| s.tokens.get(&fresh.id()).unwrap().used_by.is_none()));
    assert!(city_parent.store.with(|s| s.tokens.get(&expired.id()).unwrap().used_by.is_none()));
    province.cancel.cancel();
    city_parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_school_cannot_act_as_a_city_nor_join_another_city() {
    let (root, province, _c1, c1_parent) = tree().await;
    let t = token_at(&province, &root, "保定市", false);
    let c2 = enroll_at(&province, &t, "c2").await.unwrap();
    let c2_parent = start_enrolled_parent(&c2);
    let t = token_at(&c1_parent, &root, "第一中学", false);
    let school = enroll_at(&c1_parent, &t, "s1").await.unwrap();
    let id = NodeIdentity::from_enrollment(school.clone());
    // A tampered school that skips checking its parent, to reach the parents' own checks.
    let tampered = NodeIdentity::from_parts(id.cert_der.clone(), id.key_der().to_vec(), id.rest_of_chain(), Trust::DevPinned);

    // At the province, claiming to be city "s1".
    let store = Arc::new(Mem::default());
    store.with(|s| s.outgoing = one_doc());
    let as_city = start_child(province.addr, hello(Tier::City, "s1"), &tampered, store.clone());
    eventually("the refusal", || last_error(&store).is_some()).await;
    let e = last_error(&store).unwrap();
    assert!(e.contains("refused") && e.contains("certificate"), "{e}");
    logged_eventually("the province's reason", &["refused a child", "node_id=s1", "certificate"]).await;
    assert!(nothing_written(&province));
    as_city.cancel.cancel();

    // At another city, as its school.
    let store = Arc::new(Mem::default());
    store.with(|s| s.outgoing = one_doc());
    let elsewhere = start_child(c2_parent.addr, hello(Tier::School, "s1"), &tampered, store.clone());
    eventually("the refusal", || last_error(&store).is_some()).await;
    let e = last_error(&store).unwrap();
    assert!(e.contains("refused") && e.contains("belongs elsewhere"), "{e}");
    assert!(nothing_written(&c2_parent));
    elsewhere.cancel.cancel();

    // An honest school pointed at the wrong city refuses that city itself: its certificate
    // does not name this school's parent.
    let store = Arc::new(Mem::default());
    let wrong_parent = start_child(c2_parent.addr, hello(Tier::School, "s1"), &id, store.clone());
    eventually("the school's refusal", || last_error(&store).is_some()).await;
    let e = last_error(&store).unwrap();
    assert!(e.contains("certificate refused") && e.contains("names another node"), "{e}");
    wrong_parent.cancel.cancel();

    // A token of city c1 is worth nothing at city c2.
    let t = token_at(&c1_parent, &root, "第二中学", false);
    let e = enroll_at(&c2_parent, &t, "s2").await.unwrap_err();
    assert!(e.to_string().contains("not one this node made"), "{e}");
    assert!(c2_parent.store.with(|s| s.enrolled.is_empty()));
    for p in [province, c1_parent, c2_parent] {
        p.cancel.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_cannot_mint_certificates_for_another_citys_schools() {
    let (root, province, c1, c1_parent) = tree().await;
    let t = token_at(&province, &root, "保定市", false);
    let c2 = enroll_at(&province, &t, "c2").await.unwrap();
    let c2_parent = start_enrolled_parent(&c2);
    // City c1 signs a certificate naming a school of c2 with its own CA key.
    let c1_ca = c1.authority().unwrap().unwrap();
    let key = pki::new_key().unwrap();
    let forged = c1_ca.sign_unchecked("school.s9.c2.p1.youke", key.public_key_raw()).unwrap();
    let impostor = NodeIdentity::from_parts(forged, key.serialize_der(), vec![c1_ca.cert_der().to_vec(), root.root_der.clone()], Trust::DevPinned);
    let store = Arc::new(Mem::default());
    store.with(|s| s.outgoing = one_doc());
    let child = start_child(c2_parent.addr, hello(Tier::School, "s9"), &impostor, store.clone());
    eventually("the refusal", || last_error(&store).is_some()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(nothing_written(&c2_parent), "the name constraints of c1's CA hold");
    // Nor can c1 mint a city.
    let forged = c1_ca.sign_unchecked("city.c3.p1.youke", key.public_key_raw()).unwrap();
    let impostor = NodeIdentity::from_parts(forged, key.serialize_der(), vec![c1_ca.cert_der().to_vec(), root.root_der.clone()], Trust::DevPinned);
    let store2 = Arc::new(Mem::default());
    let city = start_child(province.addr, hello(Tier::City, "c3"), &impostor, store2.clone());
    eventually("the refusal", || last_error(&store2).is_some()).await;
    assert!(nothing_written(&province));
    for e in [last_error(&store).unwrap(), last_error(&store2).unwrap()] {
        assert!(e.contains("certificate refused") && e.contains("another part of the tree"), "{e}");
    }
    logged_eventually("the parents' reason", &["refused a node", "another part of the tree"]).await;
    child.cancel.cancel();
    city.cancel.cancel();
    let _ = c1_parent;
    province.cancel.cancel();
    c2_parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_nodes_are_disconnected_and_refused() {
    let (root, province, _city, city_parent) = tree().await;
    let t = token_at(&city_parent, &root, "第一中学", false);
    let school = enroll_at(&city_parent, &t, "s1").await.unwrap();
    let store = Arc::new(Mem::default());
    let child = start_child(city_parent.addr, hello(Tier::School, "s1"), &NodeIdentity::from_enrollment(school), store.clone());
    eventually("the link up", || store.with(|s| s.parent.is_some())).await;

    city_parent.revocations.replace(["s1".to_string()]);
    eventually("the revoked school's link to close", || last_error(&store).is_some_and(|e| e.contains("revoked"))).await;
    logged_eventually("the city's reason", &["the child was revoked"]).await;
    // It stays refused when it comes back.
    let before = store.with(|s| s.states.len());
    eventually("a refused reconnection", || {
        store.with(|s| {
            s.states[before..].iter().any(|st| matches!(st, youke_federation::sync::LinkState::Down { error } if error.contains("revoked by its parent")))
        })
    })
    .await;
    // And it cannot enroll again under the same id.
    let t = token_at(&city_parent, &root, "第一中学", false);
    let e = enroll_at(&city_parent, &t, "s1").await.unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");
    child.cancel.cancel();

    // A child drops a parent that becomes revoked.
    let t = token_at(&city_parent, &root, "第二中学", false);
    let s2 = enroll_at(&city_parent, &t, "s2").await.unwrap();
    let store = Arc::new(Mem::default());
    let child = start_child(city_parent.addr, hello(Tier::School, "s2"), &NodeIdentity::from_enrollment(s2), store.clone());
    eventually("the link up", || store.with(|s| s.parent.is_some())).await;
    child.revocations.replace(["c1".to_string()]);
    eventually("the school to drop its revoked city", || last_error(&store).is_some_and(|e| e.contains("revoked"))).await;
    child.cancel.cancel();
    province.cancel.cancel();
    city_parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impostors_and_other_federations_are_refused_in_tls() {
    let (_root, province, _city, city_parent) = tree().await;
    // A self-signed impostor of the walking skeleton's kind.
    let store = Arc::new(Mem::default());
    store.with(|s| s.outgoing = one_doc());
    let impostor = start_child(city_parent.addr, hello(Tier::School, "s1"), &NodeIdentity::generate("s1").unwrap(), store.clone());
    eventually("the refusal", || last_error(&store).is_some()).await;

    // A city of another federation with the very same ids.
    let other = pki::create_federation("p1", "另一个省").unwrap();
    let other_province = start_enrolled_parent(&other);
    let t = token_at(&other_province, &other, "石家庄市", false);
    let foreign_city = enroll_at(&other_province, &t, "c1").await.unwrap();
    let store2 = Arc::new(Mem::default());
    store2.with(|s| s.outgoing = one_doc());
    let foreign = start_child(province.addr, hello(Tier::City, "c1"), &NodeIdentity::from_enrollment(foreign_city.clone()), store2.clone());
    eventually("the refusal", || last_error(&store2).is_some()).await;

    // Our city, pointed at the other federation's province, refuses it.
    let store3 = Arc::new(Mem::default());
    let ours = start_child(other_province.addr, hello(Tier::City, "c1"), &NodeIdentity::from_enrollment(_city.clone()), store3.clone());
    eventually("the refusal", || last_error(&store3).is_some()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(nothing_written(&city_parent) && nothing_written(&province) && nothing_written(&other_province));
    let e = last_error(&store).unwrap();
    assert!(e.contains("certificate refused") && e.contains("not issued in this federation"), "{e}");
    logged_eventually("the city's reason", &["refused a node", "not issued in this federation"]).await;
    for e in [last_error(&store2).unwrap(), last_error(&store3).unwrap()] {
        assert!(e.contains("certificate refused") && e.contains("another federation"), "{e}");
    }
    logged_eventually("the province's reason", &["refused a node", "another federation"]).await;
    for c in [impostor, foreign, ours] {
        c.cancel.cancel();
    }
    for p in [province, city_parent, other_province] {
        p.cancel.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_protocol_version_is_refused() {
    let (_root, province, city, _city_parent) = tree().await;
    let id = NodeIdentity::from_enrollment(city);
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(id.quic_client_config(b"youke/2").unwrap())));
    let conn = endpoint.connect(province.addr, "province.p1.youke").unwrap().await;
    let e = match conn {
        Ok(_) => panic!("an old protocol version was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("120") || e.to_lowercase().contains("application protocol"), "{e}");
    logged_eventually("the province's reason", &["another protocol version"]).await;
    assert!(nothing_written(&province));
    let _ = CancellationToken::new();
    province.cancel.cancel();
}
