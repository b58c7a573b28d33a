//! What a plugin may ask of Kith. Inside WebAssembly these call the host; natively (in a
//! plugin's own `cargo test`) they call the thread's [`crate::testing::TestHost`].

use crate::{Entity, EntityKind, Filter, Level, Page};

/// Writes a line to the plugin's log.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::kith::plugin::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::with(|h| h.logs.push((level, message.to_owned())));
}

/// Reads one record; `Ok(None)` if it does not exist, `Err` if the plugin may not read `kind`.
pub fn get(kind: EntityKind, id: &str) -> Result<Option<Entity>, String> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::kith::plugin::host::get(kind, id);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::with(|h| h.get(kind, id))
}

/// Lists records of `kind` matching every filter, newest first.
pub fn query(
    kind: EntityKind,
    filters: &[Filter],
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page, String> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::kith::plugin::host::query(kind, filters, limit, cursor);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::with(|h| h.query(kind, filters, limit, cursor))
}

/// Every record of `kind` matching the filters, following pages.
pub fn query_all(kind: EntityKind, filters: &[Filter]) -> Result<Vec<Entity>, String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = query(kind, filters, 1000, cursor.as_deref())?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// Reads from the plugin's private key-value storage.
pub fn kv_get(key: &str) -> Option<Vec<u8>> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::kith::plugin::host::kv_get(key);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::with(|h| h.kv.get(key).cloned())
}

/// Writes to the plugin's private key-value storage.
pub fn kv_set(key: &str, value: &[u8]) -> Result<(), String> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::kith::plugin::host::kv_set(key, value);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::with(|h| {
        h.kv.insert(key.to_owned(), value.to_vec());
        Ok(())
    })
}

/// Removes a key from the plugin's private storage.
pub fn kv_delete(key: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::kith::plugin::host::kv_delete(key);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::with(|h| {
        h.kv.remove(key);
    });
}

/// The plugin's settings: defaults overridden by what an admin set.
///
/// Inside WebAssembly the host is asked once per call and the answer reused: every call runs
/// in a fresh instance, so settings cannot change during one, and a scorer that reads them
/// for each record of a batch would otherwise copy them all across each time.
pub fn settings() -> crate::Settings {
    #[cfg(target_arch = "wasm32")]
    {
        static CACHE: std::sync::OnceLock<crate::Settings> = std::sync::OnceLock::new();
        CACHE
            .get_or_init(|| crate::Settings::new(crate::bindings::kith::plugin::host::settings()))
            .clone()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let fields: Vec<crate::Field> = crate::testing::with(|h| h.settings.clone());
        crate::Settings::new(fields)
    }
}
