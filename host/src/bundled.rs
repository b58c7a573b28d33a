//! The plugins shipped inside the `kith` binary (built from `plugins/` by `build.rs`), which
//! `kith serve --demo` installs.

use crate::plugin::{InstallMode, PluginView, Registry, RegistryError};

/// A plugin shipped with Kith.
pub struct Bundled {
    /// Its id.
    pub id: &'static str,
    /// Its `kith-plugin.toml`.
    pub manifest: &'static str,
    /// Its WebAssembly component.
    pub wasm: &'static [u8],
}

/// Every bundled plugin.
pub const BUNDLED: &[Bundled] = &[
    Bundled {
        id: "lead-scoring",
        manifest: include_str!("../../plugins/lead-scoring/kith-plugin.toml"),
        wasm: include_bytes!(concat!(
            env!("KITH_BUNDLED_PLUGINS"),
            "/kith_plugin_lead_scoring.wasm"
        )),
    },
    Bundled {
        id: "deal-fields",
        manifest: include_str!("../../plugins/deal-fields/kith-plugin.toml"),
        wasm: include_bytes!(concat!(
            env!("KITH_BUNDLED_PLUGINS"),
            "/kith_plugin_deal_fields.wasm"
        )),
    },
    Bundled {
        id: "sla-escalation",
        manifest: include_str!("../../plugins/sla-escalation/kith-plugin.toml"),
        wasm: include_bytes!(concat!(
            env!("KITH_BUNDLED_PLUGINS"),
            "/kith_plugin_sla_escalation.wasm"
        )),
    },
    Bundled {
        id: "stale-deals",
        manifest: include_str!("../../plugins/stale-deals/kith-plugin.toml"),
        wasm: include_bytes!(concat!(
            env!("KITH_BUNDLED_PLUGINS"),
            "/kith_plugin_stale_deals.wasm"
        )),
    },
    Bundled {
        id: "win-loss",
        manifest: include_str!("../../plugins/win-loss/kith-plugin.toml"),
        wasm: include_bytes!(concat!(
            env!("KITH_BUNDLED_PLUGINS"),
            "/kith_plugin_win_loss.wasm"
        )),
    },
];

/// Installs each bundled plugin that is not installed yet, granting what its manifest
/// requests (they are part of Kith). Returns the ones installed now.
pub fn install_missing(registry: &Registry) -> Result<Vec<PluginView>, RegistryError> {
    let installed: Vec<String> = registry.list().into_iter().map(|p| p.id).collect();
    let mut out = Vec::new();
    for b in BUNDLED {
        if installed.iter().any(|id| id == b.id) {
            continue;
        }
        let manifest = crate::plugin::manifest::Manifest::parse(b.manifest)?;
        out.push(registry.install(b.manifest, b.wasm, &manifest.requested(), InstallMode::New)?);
    }
    Ok(out)
}
