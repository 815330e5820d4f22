//! The federation PKI as operators use it, with real `youke` processes: `init --role province`
//! makes the root (private keys mode 0600), `token create` and `enroll` join nodes, a node that
//! is not enrolled says how to enroll, and `youke revoke` cuts a school off while the
//! revocation document travels down to the rest of the tree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::Duration;

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn operators_get_clear_answers_before_a_node_is_enrolled() {
    let root = tempfile::tempdir().unwrap();
    let (p, c, s) = (root.path().join("p"), root.path().join("c"), root.path().join("s"));
    let out = youke_ok(&p, &["init", "--role", "province", "--name", "河北省", "--http", &addr(free_tcp_port()), "--quic", &addr(free_udp_port())]);
    assert!(out.contains("root CA"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p.join("enrollment.bin")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the root's private key must not be readable by others");
    }
    // A province enrolls cities only; tokens need a name and a sane lifetime.
    let out = youke(&p, &["token", "create", "--role", "school", "--name", "第一中学"]);
    assert!(!out.status.success() && stderr_of(&out).contains("enrolls city nodes only"), "{}", stderr_of(&out));
    let out = youke(&p, &["token", "create", "--role", "city", "--name", "石家庄市", "--expires", "1y"]);
    assert!(!out.status.success() && stderr_of(&out).contains("lifetime"), "{}", stderr_of(&out));
    let made = youke_ok(&p, &["token", "create", "--role", "city", "--name", "石家庄市", "--expires", "2h"]);
    assert!(made.lines().last().unwrap().starts_with("YK1"), "the token is printed last: {made}");
    let listed = youke_ok(&p, &["token", "list"]);
    assert!(listed.contains("石家庄市") && listed.contains("unused"), "{listed}");
    assert!(!listed.contains(made.lines().last().unwrap()), "token list never shows secrets");

    // A city that is not enrolled refuses to start, and says what to do.
    youke_ok(&c, &["init", "--role", "city", "--name", "石家庄市", "--parent", "127.0.0.1:9", "--http", &addr(free_tcp_port()), "--quic", &addr(free_udp_port())]);
    let out = youke(&c, &["serve"]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("youke enroll --parent"), "{}", stderr_of(&out));
    // A mistyped token is refused before anything is sent.
    let out = youke(&s, &["enroll", "--parent", "127.0.0.1:9", "--token", "YK1NOTATOKEN"]);
    assert!(!out.status.success() && stderr_of(&out).contains("not a youke join token"), "{}", stderr_of(&out));
    assert!(!s.join("enrollment.bin").exists());
    // Revoking needs a child enrolled here.
    let out = youke(&p, &["revoke", "nobody"]);
    assert!(!out.status.success() && stderr_of(&out).contains("no child"), "{}", stderr_of(&out));
}

#[test]
fn a_revoked_school_is_cut_off_and_the_revocation_reaches_the_tree_below() {
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = ["p", "c", "s1", "s2"].iter().map(|n| root.path().join(n)).collect();
    let http: Vec<u16> = (0..4).map(|_| free_tcp_port()).collect();
    let quic: Vec<u16> = (0..4).map(|_| free_udp_port()).collect();
    youke_ok(&dirs[0], &["init", "--role", "province", "--name", "河北省", "--http", &addr(http[0]), "--quic", &addr(quic[0])]);
    let _province = Server::start(&dirs[0], http[0]);
    // Enroll creates the node from the token when its data directory is empty.
    let token = youke_ok(&dirs[0], &["token", "create", "--role", "city", "--name", "石家庄市"]).lines().last().unwrap().to_string();
    let out = youke_ok(&dirs[1], &["enroll", "--parent", &addr(quic[0]), "--token", &token, "--http", &addr(http[1]), "--quic", &addr(quic[1])]);
    assert!(out.contains("enrolled city node \"石家庄市\""), "{out}");
    // The same token cannot be used twice.
    let again = youke(&root.path().join("x"), &["enroll", "--parent", &addr(quic[0]), "--token", &token]);
    assert!(!again.status.success() && stderr_of(&again).contains("used already"), "{}", stderr_of(&again));
    let city = Server::start(&dirs[1], http[1]);
    let mut schools = Vec::new();
    for (i, name) in [(2, "第一中学"), (3, "第二中学")] {
        youke_ok(&dirs[i], &["init", "--role", "school", "--name", name, "--http", &addr(http[i]), "--quic", &addr(quic[i])]);
        enroll(&dirs[1], quic[1], &dirs[i], "school", name);
        schools.push(Server::start(&dirs[i], http[i]));
    }
    for s in &schools {
        wait_for("the school's link to its city", Duration::from_secs(20), || {
            let st = s.get_json("/api/v1/status")?;
            (st["parent"]["state"] == "up").then_some(())
        });
    }
    let children = youke_ok(&dirs[1], &["children"]);
    assert!(children.contains("第一中学") && children.contains("第二中学"), "{children}");

    let out = youke_ok(&dirs[1], &["revoke", "第二中学", "--reason", "设备丢失"]);
    assert!(out.contains("revoked"), "{out}");
    // Cut off within a couple of seconds, and refused on every retry.
    wait_for("the revoked school's link to go down", Duration::from_secs(10), || {
        let st = schools[1].get_json("/api/v1/status")?;
        let error = st["parent"]["error"].as_str()?;
        error.contains("revoked").then_some(())
    });
    assert!(city.log_text().contains("the child was revoked") || city.log_text().contains("refused a child"), "{}", city.log_text());
    // Operators see it in the metrics: the revoked node, the refusals, the enrollments.
    wait_for("the refusal in the city's metrics", Duration::from_secs(20), || {
        let text = String::from_utf8(city.get_bytes("/metrics")?).ok()?;
        let value = |name: &str| text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        (value("youke_revoked_nodes")? == 1.0
            && value("youke_peers_refused_total")? >= 1.0
            && value("youke_enrollments_total{result=\"enrolled\"}")? == 2.0)
            .then_some(())
    });
    // The revocation document reached the other school, which now refuses the revoked node too.
    wait_for("the revocation at the sibling school", Duration::from_secs(20), || {
        let out = youke_ok(&dirs[2], &["children", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v["revocations"].as_array()?.iter().any(|r| r["name"] == "第二中学" && r["reason"] == "设备丢失").then_some(())
    });
    let st = schools[0].get_json("/api/v1/status").unwrap();
    assert_eq!(st["parent"]["state"], "up", "the other school keeps its link: {st}");
}
