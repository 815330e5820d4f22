//! Hostile peers over real QUIC sockets on 127.0.0.1: garbage in a hello or a request,
//! oversized frames and out-of-limit messages disconnect the peer and are logged, and the
//! parent keeps serving everyone else; a host cannot hold more than a bounded number of
//! unfinished handshakes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use youke_federation::protocol::{self, DocUpdate, Message};
use youke_federation::{NodeIdentity, Tier};

fn client(identity: &NodeIdentity) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(identity.quic_client_config(protocol::ALPN).unwrap()));
    config.transport_config(youke_federation::transport::transport());
    endpoint.set_default_client_config(config);
    endpoint
}

async fn connect(endpoint: &quinn::Endpoint, parent: SocketAddr) -> quinn::Connection {
    endpoint.connect(parent, "youke-node").unwrap().await.expect("TLS handshake")
}

/// Says hello as school `id` and reads the welcome.
async fn linked(endpoint: &quinn::Endpoint, parent: SocketAddr, id: &str) -> quinn::Connection {
    let conn = connect(endpoint, parent).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&protocol::encode(&Message::Hello(info(Tier::School, id))).unwrap()).await.unwrap();
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix).await.unwrap();
    let mut body = vec![0u8; protocol::frame_len(prefix).unwrap()];
    recv.read_exact(&mut body).await.unwrap();
    assert!(matches!(protocol::decode_body(&body).unwrap(), Message::Welcome(_)));
    conn
}

async fn send_raw(conn: &quinn::Connection, bytes: &[u8]) {
    if let Ok((mut send, _recv)) = conn.open_bi().await {
        let _ = send.write_all(bytes).await;
        let _ = send.finish();
        // Keep the stream open until the parent reacts.
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
    }
}

async fn closed_within(conn: &quinn::Connection, secs: u64) -> String {
    tokio::time::timeout(Duration::from_secs(secs), conn.closed()).await.expect("the parent closes the link").to_string()
}

fn noise(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32).map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_disconnects_the_peer_and_the_parent_keeps_serving() {
    logs();
    let parent = start_parent(Tier::City);
    let endpoint = client(&NodeIdentity::generate("hostile").unwrap());

    // Noise instead of a hello: its "length" is far over the limit before authentication.
    let conn = connect(&endpoint, parent.addr).await;
    send_raw(&conn, &noise(2000, 1)).await;
    closed_within(&conn, 10).await;

    // A hello whose frame claims 1 MiB: over the 64 KiB allowed before a hello.
    let conn = connect(&endpoint, parent.addr).await;
    let mut big = (1u32 << 20).to_be_bytes().to_vec();
    big.extend(noise(1000, 2));
    send_raw(&conn, &big).await;
    closed_within(&conn, 10).await;

    // After a good hello: a frame of the right length whose body is noise.
    let conn = linked(&endpoint, parent.addr, "school-noise").await;
    let body = noise(500, 3);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(&body);
    send_raw(&conn, &frame).await;
    let why = closed_within(&conn, 10).await;
    assert!(why.contains("protocol violation") || why.contains("4"), "{why}");

    // A well-formed message out of limits: 3 anti-entropy digests instead of 256.
    let conn = linked(&endpoint, parent.addr, "school-limits").await;
    send_raw(&conn, &protocol::encode(&Message::Reconcile { digests: vec![[0; 32]; 3] }).unwrap()).await;
    closed_within(&conn, 10).await;
    logged_eventually("the limit violation in the log", &["child sent garbage", "school-limits", "digests instead of"]).await;

    // A frame longer than any message.
    let conn = linked(&endpoint, parent.addr, "school-huge").await;
    send_raw(&conn, &u32::MAX.to_be_bytes()).await;
    closed_within(&conn, 10).await;
    logged_eventually("the oversized frame in the log", &["child sent garbage", "school-huge", "more than the limit"]).await;
    logged_eventually("the garbage hello in the log", &["peer sent garbage", "more than the limit of 65536"]).await;
    assert!(parent.store.with(|s| s.applied.is_empty() && s.received.is_empty()), "nothing a hostile peer sent was stored");

    // The parent still serves an honest child.
    let store = Arc::new(Mem::default());
    store.with(|s| {
        s.outgoing = vec![DocUpdate { id: "d1".into(), kind: "lesson".into(), seq: 1, version: String::new(), full: true, bytes: vec![1; 10] }];
    });
    let honest = start_child(parent.addr, info(Tier::School, "school-ok"), &NodeIdentity::generate("ok").unwrap(), store);
    eventually("the honest child's document", || parent.store.with(|s| s.applied.len() == 1)).await;
    honest.cancel.cancel();
    parent.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_cannot_hold_more_than_sixteen_unfinished_handshakes() {
    logs();
    let parent = start_parent(Tier::City);
    let endpoint = client(&NodeIdentity::generate("flood").unwrap());
    // Sixteen connections that never say hello.
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(connect(&endpoint, parent.addr).await);
    }
    let refused = endpoint.connect(parent.addr, "youke-node").unwrap().await;
    assert!(refused.is_err(), "the seventeenth handshake from one address is refused");
    logged_eventually("the refusal in the log", &["too many unfinished handshakes"]).await;
    // Children that completed their hello do not count: once the held ones go, others link.
    for c in held.drain(..) {
        c.close(0u32.into(), b"bye");
    }
    let mut ok = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(2), endpoint.connect(parent.addr, "youke-node").unwrap()).await {
            ok = Some(c);
            break;
        }
    }
    let conn = ok.expect("accepted again once the held handshakes ended");
    let _linked = linked(&endpoint, parent.addr, "school-after").await;
    conn.close(0u32.into(), b"bye");
    parent.cancel.cancel();
}
