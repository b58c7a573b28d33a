//! Builds the bundled plugins (`plugins/*`) to WebAssembly so the `kith` binary can embed
//! them: `kith serve --demo` installs them with nothing else to build or download.

include!("build/wasm.rs");

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("host/ sits in the workspace root");
    let out = build_wasm(
        root,
        &[
            "kith-plugin-lead-scoring",
            "kith-plugin-deal-fields",
            "kith-plugin-sla-escalation",
            "kith-plugin-stale-deals",
            "kith-plugin-win-loss",
        ],
    );
    println!("cargo:rustc-env=KITH_BUNDLED_PLUGINS={}", out.display());
}
