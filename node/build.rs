//! Copies the portal's front-end assets from npm (web/node_modules, installed by `make setup`
//! exactly as web/package-lock.json pins them) into the build, so the binary carries them.
// A build script reports failure by panicking: the message is what cargo shows.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// (file in web/node_modules, name in OUT_DIR)
const ASSETS: &[(&str, &str)] = &[("hls.js/dist/hls.min.js", "hls.min.js")];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let modules = manifest.join("../web/node_modules");
    println!("cargo:rerun-if-changed={}", manifest.join("../web/package-lock.json").display());
    for (src, name) in ASSETS {
        let from = modules.join(src);
        println!("cargo:rerun-if-changed={}", from.display());
        copy(&from, &out.join(name));
    }
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!(
            "the portal's front-end package {} is missing ({e}). Run `make setup` (or `npm ci` in web/) first: \
             it installs the npm packages pinned in web/package-lock.json.",
            from.display()
        );
    }
}
