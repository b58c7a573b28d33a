//! kith-sdk: write Kith plugins in Rust.
//!
//! Implement [`Plugin`] (every hook but `describe` has a default), register it with
//! [`register_plugin!`], and build with `cargo build --target wasm32-wasip2 --release`.
//! Outside WebAssembly the host functions in [`host`] talk to a [`testing::TestHost`], so
//! plugin logic is unit-tested with plain `cargo test`; [`testing`] also builds events and
//! picks actions apart for those tests. See `sdk/README.md`.
//!
//! Besides the builders at the root ([`field`], [`filter`], [`value`], [`action`],
//! [`Report`], ...) two small modules cover what plugins otherwise write again and again:
//! [`time`] (microsecond timestamps to and from civil dates, `YYYY-MM-DD` and RFC 3339, start
//! of day and month, whole days between) and [`decimal`] (exact decimals for money: parse,
//! add, format, ratios and percentages with fixed places). Neither needs a dependency.

#[doc(hidden)]
pub mod bindings {
    //! Generated from `wit/kith-plugin.wit`. Use the re-exports at the crate root instead.
    #![allow(missing_docs, clippy::all)]
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_kith_plugin",
        default_bindings_module: "kith_sdk::bindings",
        generate_all,
        additional_derives: [PartialEq],
    });
}

mod builders;
pub mod decimal;
pub mod host;
mod make;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod time;

pub use bindings::kith::plugin::host::Level;
pub use bindings::kith::plugin::types::{
    Action, AssignOwner, Capabilities, ChartKind, Column, Entity, EntityKind, Event, Field,
    FieldChange, FieldDef, FieldError, FieldType, FieldValue, Filter, MoveDeal, NewInteraction,
    NewTask, Operation, Page, PluginInfo, ReportDef, ReportTable, Score, ScoreReason, ScorerDef,
    SettingDef, SettingType, TagChange, TicketChange, Timer, Timestamp, UpdateFields,
};
pub use builders::{EntityExt, ScoreCard, Settings, field, filter, setting};
pub use make::{Report, action, field_def, plugin_info, value};

/// The WIT package version this SDK implements.
pub const WIT_VERSION: &str = "0.1.0";

/// A Kith plugin. Every hook is an associated function (plugins keep no state between calls:
/// each call runs in a fresh instance); all but [`Plugin::describe`] have defaults.
pub trait Plugin {
    /// What the plugin provides and needs.
    fn describe() -> PluginInfo;

    /// Checks a write before it commits; `Err` rejects it with the messages.
    fn validate(
        entity: &Entity,
        before: Option<&Entity>,
        now: Timestamp,
    ) -> Result<(), Vec<FieldError>> {
        let _ = (entity, before, now);
        Ok(())
    }

    /// Values of the plugin's computed custom fields for a record about to be written.
    fn compute_fields(entity: &Entity, now: Timestamp) -> Vec<Field> {
        let _ = (entity, now);
        Vec::new()
    }

    /// Scores one record with the named scorer; `None` leaves it unscored.
    fn score(scorer: &str, entity: &Entity, now: Timestamp) -> Option<Score> {
        let _ = (scorer, entity, now);
        None
    }

    /// Reacts to an event of a kind listed in `subscriptions` with actions for the host to
    /// apply together, all or nothing. `Err` (or a panic) fails the call: the host retries
    /// the same event later and suspends the plugin after repeated failures, so return an
    /// error only for something that may pass on a retry, and ignore events you do not need.
    fn on_event(event: &Event, now: Timestamp) -> Result<Vec<Action>, String> {
        let _ = (event, now);
        Ok(Vec::new())
    }

    /// A timer scheduled with [`action::schedule`] is due: `payload` as scheduled, `due` the
    /// time it was set for (before `now` if the server was down at that time).
    fn on_timer(payload: &str, due: Timestamp, now: Timestamp) -> Result<Vec<Action>, String> {
        let _ = (payload, due, now);
        Ok(Vec::new())
    }

    /// Runs a report.
    fn run_report(id: &str, parameters: &[Field], now: Timestamp) -> Result<ReportTable, String> {
        let _ = (parameters, now);
        Err(format!("this plugin has no report '{id}'"))
    }
}

#[doc(hidden)]
pub mod __private {
    use std::sync::Once;

    /// Sends panic messages through the host's log before the trap, so the host can report
    /// them (a bare trap says only "unreachable").
    pub fn install_panic_hook() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                crate::host::log(crate::Level::Error, &format!("panic: {info}"));
            }));
        });
    }
}

/// Exports a [`Plugin`] implementation as the component's `plugin` world.
///
/// ```text
/// struct MyPlugin;
/// impl kith_sdk::Plugin for MyPlugin {
///     fn describe() -> kith_sdk::PluginInfo { /* ... */ }
/// }
/// kith_sdk::register_plugin!(MyPlugin);
/// ```
///
/// `plugins/lead-scoring/src/lib.rs` is a complete example.
#[macro_export]
macro_rules! register_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __KithPluginExports;

        impl $crate::bindings::Guest for __KithPluginExports {
            fn describe() -> $crate::PluginInfo {
                $crate::__private::install_panic_hook();
                <$plugin as $crate::Plugin>::describe()
            }

            fn validate(
                entity: $crate::Entity,
                before: ::core::option::Option<$crate::Entity>,
                now: $crate::Timestamp,
            ) -> ::core::result::Result<(), ::std::vec::Vec<$crate::FieldError>> {
                $crate::__private::install_panic_hook();
                <$plugin as $crate::Plugin>::validate(&entity, before.as_ref(), now)
            }

            fn compute_fields(entity: $crate::Entity, now: $crate::Timestamp) -> ::std::vec::Vec<$crate::Field> {
                $crate::__private::install_panic_hook();
                <$plugin as $crate::Plugin>::compute_fields(&entity, now)
            }

            fn score(
                scorer: ::std::string::String,
                entities: ::std::vec::Vec<$crate::Entity>,
                now: $crate::Timestamp,
            ) -> ::std::vec::Vec<$crate::Score> {
                $crate::__private::install_panic_hook();
                entities
                    .iter()
                    .filter_map(|e| <$plugin as $crate::Plugin>::score(&scorer, e, now))
                    .collect()
            }

            fn on_event(
                event: $crate::Event,
                now: $crate::Timestamp,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::Action>, ::std::string::String> {
                $crate::__private::install_panic_hook();
                <$plugin as $crate::Plugin>::on_event(&event, now)
            }

            fn on_timer(
                payload: ::std::string::String,
                due: $crate::Timestamp,
                now: $crate::Timestamp,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::Action>, ::std::string::String> {
                $crate::__private::install_panic_hook();
                <$plugin as $crate::Plugin>::on_timer(&payload, due, now)
            }

            fn run_report(
                id: ::std::string::String,
                parameters: ::std::vec::Vec<$crate::Field>,
                now: $crate::Timestamp,
            ) -> ::core::result::Result<$crate::ReportTable, ::std::string::String> {
                $crate::__private::install_panic_hook();
                <$plugin as $crate::Plugin>::run_report(&id, &parameters, now)
            }
        }

        $crate::bindings::__export_kith_plugin!(__KithPluginExports with_types_in $crate::bindings);
    };
}
