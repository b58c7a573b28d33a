// Builds workspace plugin crates as WebAssembly components with a nested cargo, shared by
// the build scripts of kith-host (the bundled plugins it embeds) and kith-tests (those plus
// the hostile test plugin), through `include!`.
//
// It adds the `wasm32-wasip2` rustup target when missing (the toolchain does not install
// targets by itself here), then runs `cargo build` into `target/wasm`: a separate target
// directory, so it never waits on the outer build's lock.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The WebAssembly target plugins are built for.
const TARGET: &str = "wasm32-wasip2";

/// Builds `packages` in release mode and returns the directory holding their `.wasm` files.
fn build_wasm(root: &Path, packages: &[&str]) -> PathBuf {
    for dir in ["plugins", "sdk", "wit", "tests/plugins"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    ensure_target();
    let target_dir = root.join("target").join("wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for p in packages {
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
    let status = cmd.status().expect("run cargo to build the plugins");
    assert!(
        status.success(),
        "building the plugins for {TARGET} failed (see the output above)"
    );
    target_dir.join(TARGET).join("release")
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
