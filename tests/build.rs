//! Builds the plugins the tests load (the bundled ones and the hostile test plugin) as real
//! WebAssembly components, so `cargo test` alone exercises real wasm built from source.
//!
//! It adds the `wasm32-wasip2` rustup target when missing (the toolchain does not install
//! targets by itself here), then runs a nested `cargo build` into `target/wasm` (a separate
//! target directory, so it never waits on the outer build's lock). The directory holding the
//! `.wasm` files reaches the tests as `KITH_TEST_PLUGINS`.

use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PLUGINS: &[&str] = &["kith-plugin-lead-scoring", "kith-test-hostile"];

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf();
    for dir in ["plugins", "sdk", "wit", "tests/plugins"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    ensure_target();

    let target_dir = root.join("target").join("wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for p in PLUGINS {
        cmd.args(["-p", p]);
    }
    // Flags meant for the outer (native) build must not leak into the wasm build; plugins
    // need no debug info.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        // Nor may clippy's wrapper when the outer command is `cargo clippy`.
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "false");
    let status = cmd.status().expect("run cargo to build the test plugins");
    assert!(
        status.success(),
        "building the plugins for {TARGET} failed (see the output above)"
    );

    let out = target_dir.join(TARGET).join("release");
    println!("cargo:rustc-env=KITH_TEST_PLUGINS={}", out.display());
}

fn ensure_target() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        })
        .unwrap_or(false);
    if installed {
        return;
    }
    println!("cargo:warning=adding the {TARGET} rustup target to build the test plugins");
    let ok = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "could not add the {TARGET} target; run `rustup target add {TARGET}` and retry"
    );
}
