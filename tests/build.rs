//! Builds the plugins the tests load (the bundled ones and the hostile test plugin) as real
//! WebAssembly components, so `cargo test` alone exercises real wasm built from source. The
//! directory holding the `.wasm` files reaches the tests as `KITH_TEST_PLUGINS`.

include!("../host/build/wasm.rs");

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .expect("tests/ sits in the workspace root");
    let out = build_wasm(
        root,
        &[
            "kith-plugin-lead-scoring",
            "kith-plugin-deal-fields",
            "kith-plugin-sla-escalation",
            "kith-plugin-stale-deals",
            "kith-plugin-win-loss",
            "kith-test-hostile",
            "kith-test-workflow",
        ],
    );
    println!("cargo:rustc-env=KITH_TEST_PLUGINS={}", out.display());
}
