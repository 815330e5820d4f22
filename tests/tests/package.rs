//! The Debian package (issue 9): built with cargo-deb from the binary `make test` built, then
//! installed, served, upgraded and purged in a fresh Debian 12 root made with debootstrap
//! (`scripts/deb-test.sh`, which says what it checks).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

fn cargo_deb(workspace: &Path, out: &Path, version: Option<&str>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace).args(["deb", "-p", "youke-node", "--no-build", "--profile", "dev", "--fast", "-o"]).arg(out);
    if let Some(v) = version {
        cmd.args(["--deb-version", v]);
    }
    let o = cmd.output().expect("run cargo deb (make test installs cargo-deb)");
    assert!(o.status.success(), "cargo deb failed: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

#[test]
fn the_package_installs_serves_upgrades_and_purges_in_a_fresh_debian_root() {
    assert!(nix_is_root(), "the package test makes a Debian root with debootstrap and chroot: run make test as root");
    // The binary the package carries is the one the other tests run.
    let _ = common::youke_bin();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
    let dir = tempfile::tempdir().expect("tempdir");
    let (v1, v2) = (dir.path().join("youke_0.1.0-1.deb"), dir.path().join("youke_0.1.0-2.deb"));
    cargo_deb(workspace, &v1, None);
    cargo_deb(workspace, &v2, Some("0.1.0-2"));
    let recording = dir.path().join("勾股定理.mp4");
    common::make_recording(&recording, 2, 300);
    let o = Command::new("bash").arg(workspace.join("scripts/deb-test.sh")).arg(&v1).arg(&v2).arg(&recording).output().expect("run deb-test.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    println!("{text}");
    assert!(o.status.success() && text.contains("ok: installed size"), "{text}");
}

fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
