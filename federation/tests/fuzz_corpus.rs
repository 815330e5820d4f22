//! The fuzz targets' seed corpus (`fuzz/corpus/`), replayed through the same entry points
//! cargo-fuzz drives (`make fuzz`), so every test run checks the decoder and parsers against
//! it on the stable toolchain. `YOUKE_WRITE_CORPUS=1` rewrites the seeds from the messages
//! below.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use youke_federation::BlobHash;
use youke_federation::pki::{self, JoinToken};
use youke_federation::protocol::{self, DocUpdate, ErrorCode, Message, NodeInfo, PROTOCOL_VERSION, RECONCILE_BUCKETS};
use youke_federation::Tier;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

fn seeds() -> Vec<(&'static str, Message)> {
    let info = NodeInfo { protocol_version: PROTOCOL_VERSION, node_id: "6c1f2a3e-0d4b-4f4e-9a54-0b7f2d7b9a11".into(), name: "石家庄市第一中学".into(), tier: Tier::School };
    let doc = DocUpdate { id: "lesson-1".into(), kind: "lesson".into(), seq: 42, version: "ab,cd".into(), full: false, bytes: vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3] };
    let hash = BlobHash([7; 32]);
    vec![
        ("hello", Message::Hello(info.clone())),
        ("welcome", Message::Welcome(NodeInfo { tier: Tier::City, ..info })),
        ("refused", Message::Refused { reason: "this node was revoked by its parent's admin".into() }),
        ("push-docs", Message::PushDocs { docs: vec![doc.clone(), DocUpdate { full: true, ..doc.clone() }], upto_seq: 42 }),
        ("docs-ack", Message::DocsAck { upto_seq: 42, need_full: vec!["lesson-1".into()] }),
        ("pull-docs", Message::PullDocs { after_seq: 7, forget: vec!["x".into()] }),
        ("docs", Message::Docs { docs: vec![doc.clone()], upto_seq: 43 }),
        ("reconcile", Message::Reconcile { digests: vec![[3; 32]; RECONCILE_BUCKETS] }),
        ("reconcile-buckets", Message::ReconcileBuckets { buckets: vec![0, 17, 255] }),
        ("reconcile-entries", Message::ReconcileEntries { buckets: vec![17], entries: vec![("lesson-1".into(), "ab,cd".into())] }),
        ("reconcile-repair", Message::ReconcileRepair { send_up: vec!["lesson-2".into()], docs: vec![doc] }),
        ("blob-offer", Message::BlobOffer { hash, size: 3 << 20, manifest: vec![[1; 32], [2; 32], [3; 32]] }),
        ("blob-state", Message::BlobState { have: 1 << 20, complete: false }),
        ("blob-stored", Message::BlobStored { hash }),
        ("blob-fetch", Message::BlobFetch { hash, offset: 1 << 20, len: 2 << 20, manifest: true }),
        ("blob-range", Message::BlobRange { size: 3 << 20, manifest: vec![], offset: 0, len: 1 << 20 }),
        ("error", Message::Error { code: ErrorCode::Busy, message: "try later".into() }),
        ("health", Message::Health { nodes: vec![protocol::NodeHealth {
            node_id: "6c1f2a3e-0d4b-4f4e-9a54-0b7f2d7b9a11".into(), name: "石家庄市第一中学".into(), tier: Tier::School, parent_id: "c1".into(),
            connected: true, age_ms: 1200, last_sync_ms_ago: Some(300), pending_docs: 2, pending_uploads: 1, pending_upload_bytes: 1 << 30, lessons: 40,
        }] }),
        ("health-ack", Message::HealthAck),
        ("enroll", Message::Enroll { token: vec![9; 16], node_id: "s1".into(), public_key: vec![4; 65], proof: vec![0x30; 70], ca_public_key: vec![4; 65], ca_proof: vec![0x30; 71] }),
        ("enrolled", Message::Enrolled { place: "school.s1.c1.p1.youke".into(), name: "第一中学".into(), node_cert: vec![0x30; 400], intermediates: vec![vec![0x30; 500]], ca_cert: None }),
    ]
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(corpus(target)).expect("the seed corpus is committed") {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        n += 1;
    }
    n
}

#[test]
fn the_seed_corpus_replays_through_the_fuzz_targets() {
    if std::env::var_os("YOUKE_WRITE_CORPUS").is_some() {
        for (name, msg) in seeds() {
            std::fs::write(corpus("federation_message").join(name), protocol::encode(&msg).unwrap()).unwrap();
        }
        let root = pki::create_federation("p1", "省").unwrap();
        let names = [
            ("place-school", "school.6c1f2a3e-0d4b-4f4e-9a54-0b7f2d7b9a11.c1.p1.youke".to_string()),
            ("place-city", "city.c1.p1.youke".to_string()),
            ("place-province", "province.p1.youke".to_string()),
            ("token", JoinToken::generate(root.root_hash()).encode()),
            ("lifetime", "24h".to_string()),
            ("node-id", "6c1f2a3e-0d4b-4f4e-9a54-0b7f2d7b9a11".to_string()),
        ];
        for (name, text) in names {
            std::fs::write(corpus("names").join(name), text).unwrap();
        }
    }
    // Every message kind is seeded, and each seed decodes.
    for (name, msg) in seeds() {
        let bytes = std::fs::read(corpus("federation_message").join(name)).expect("seed present");
        assert_eq!(protocol::decode(&bytes).unwrap().map(|(m, _)| m), Some(msg), "{name}");
    }
    assert!(replay("federation_message", protocol::fuzz_decode) >= seeds().len());
    assert!(replay("names", pki::fuzz_names) >= 6);
}
