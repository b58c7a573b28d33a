//! The plugin runtime: loads WebAssembly components built against `wit/kith-plugin.wit` and
//! calls them in a sandbox.
//!
//! One [`Runtime`] per process owns the wasmtime engine (component model, pooling allocator,
//! copy-on-write memory images, epoch interruption driven by a ticker thread) and one linker
//! in which WASI is linked with nothing granted: no files, environment, sockets or inherited
//! stdio; its clocks are frozen at the epoch and its randomness has a fixed seed. Every call
//! gets a fresh store and instance (so nothing leaks between calls), a time
//! deadline, a memory cap and input/output size caps, and fails with a [`PluginError`] that
//! names the plugin, the hook and what went wrong.

mod convert;
pub mod devloop;
pub mod manifest;
pub mod registry;
mod reports;
mod runtime;
pub mod scaffold;
mod workflow;

pub use self::convert::{
    entity_from_record, event_to_wit, kind_from_wit, kind_to_wit, value_from_wit,
};
pub use self::registry::{InstallMode, PluginView, Registry, RegistryError};
pub use self::runtime::{
    CallReport, DataAccess, KvAccess, Limits, LoadedPlugin, PluginError, Runtime, StoreAccess,
};
pub use self::workflow::{DeliveryView, TimerView};

/// The generated host-side bindings of the `plugin` world.
pub mod wit {
    #![allow(missing_docs, clippy::all)]
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
    });
}
