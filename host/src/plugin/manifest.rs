//! `kith-plugin.toml`: a plugin's identity and the capabilities it requests, read and checked
//! before any of its code is compiled.

use kith_core::EntityKind;
use serde::Deserialize;

/// The WIT package version this host implements; manifests must name a compatible one.
pub const WIT_VERSION: &str = "0.1.0";

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST: usize = 64 << 10;

/// Actions a plugin may ask to be allowed (the `action` variant of the WIT contract).
pub const ACTIONS: [&str; 9] = [
    "update-fields",
    "create-task",
    "log-interaction",
    "assign-owner",
    "add-tag",
    "remove-tag",
    "change-ticket",
    "move-deal",
    "schedule",
];

/// A parsed and checked manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique id: a slug.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The plugin's version (`MAJOR.MINOR.PATCH`).
    pub version: String,
    /// The `kith:plugin` WIT version it was built against.
    pub wit: String,
    /// What it does, for the admin deciding whether to install it.
    #[serde(default)]
    pub description: String,
    /// What it asks to be allowed.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Settings it declares (they must agree with what the plugin's `describe` says).
    #[serde(default)]
    pub settings: Vec<ManifestSetting>,
}

/// Requested capabilities.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Entity kinds it may read through `get` and `query`.
    #[serde(default)]
    pub read: Vec<String>,
    /// Action kinds its `on-event` may return.
    #[serde(default)]
    pub actions: Vec<String>,
}

/// A setting as a manifest declares it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSetting {
    /// Its name.
    pub name: String,
    /// Its label.
    #[serde(default)]
    pub label: Option<String>,
    /// Its type: text, integer, number, boolean, choice or text-list.
    #[serde(rename = "type")]
    pub setting_type: String,
    /// Its default (any TOML value of the type).
    #[serde(default)]
    pub default: Option<toml::Value>,
    /// Help text.
    #[serde(default)]
    pub help: Option<String>,
    /// Options of a choice.
    #[serde(default)]
    pub options: Vec<String>,
}

/// Why a manifest was refused; `field` names the offending key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("kith-plugin.toml: {field}: {message}")]
pub struct ManifestError {
    /// The key at fault (`id`, `capabilities.read`, ...), or `toml` for a syntax error.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> ManifestError {
    ManifestError {
        field: field.to_owned(),
        message: message.into(),
    }
}

impl Manifest {
    /// Parses and checks a manifest.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        if text.len() > MAX_MANIFEST {
            return Err(err(
                "toml",
                format!("is {} bytes; the limit is {MAX_MANIFEST}", text.len()),
            ));
        }
        let m: Manifest = toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            err("toml", format!("{message}{at}"))
        })?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), ManifestError> {
        kith_core::plugin::check_plugin_id(&self.id).map_err(|e| err("id", strip(&e)))?;
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err(err("name", "must be 1-100 characters"));
        }
        if parse_version(&self.version).is_none() {
            return Err(err(
                "version",
                format!("'{}' is not MAJOR.MINOR.PATCH", self.version),
            ));
        }
        if !wit_compatible(&self.wit) {
            return Err(err(
                "wit",
                format!(
                    "the plugin was built against kith:plugin@{}; this server implements {WIT_VERSION}",
                    self.wit
                ),
            ));
        }
        if self.description.len() > 2000 {
            return Err(err("description", "is longer than 2,000 characters"));
        }
        for k in &self.capabilities.read {
            if EntityKind::parse(k).is_none() {
                return Err(err(
                    "capabilities.read",
                    format!(
                        "'{k}' is not an entity kind (contact, company, deal, ticket, interaction, task)"
                    ),
                ));
            }
        }
        for a in &self.capabilities.actions {
            if !ACTIONS.contains(&a.as_str()) {
                return Err(err(
                    "capabilities.actions",
                    format!("'{a}' is not an action ({})", ACTIONS.join(", ")),
                ));
            }
        }
        for s in &self.settings {
            if ![
                "text",
                "integer",
                "number",
                "boolean",
                "choice",
                "text-list",
            ]
            .contains(&s.setting_type.as_str())
            {
                return Err(err(
                    "settings",
                    format!(
                        "setting '{}' has type '{}'; types are text, integer, number, boolean, choice, text-list",
                        s.name, s.setting_type
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The capabilities requested, as granted capability strings (`read:contact`,
    /// `action:create-task`), in a stable order.
    pub fn requested(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .capabilities
            .read
            .iter()
            .filter_map(|k| EntityKind::parse(k))
            .map(|k| format!("read:{}", k.name()))
            .chain(
                self.capabilities
                    .actions
                    .iter()
                    .map(|a| format!("action:{a}")),
            )
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The kinds it may read.
    pub fn readable(&self) -> Vec<EntityKind> {
        self.capabilities
            .read
            .iter()
            .filter_map(|k| EntityKind::parse(k))
            .collect()
    }
}

/// An error message without the field prefix the core puts on it.
fn strip(e: &kith_core::Error) -> String {
    match e {
        kith_core::Error::Invalid(f) => f.message.clone(),
        other => other.to_string(),
    }
}

/// `MAJOR.MINOR.PATCH` as numbers (a pre-release or build suffix is ignored).
pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((major, minor, patch))
}

/// Whether a plugin built against WIT version `v` runs on this host: same 0.MINOR while the
/// contract is 0.x (semver's rule for pre-1.0), same MAJOR after.
pub fn wit_compatible(v: &str) -> bool {
    match (parse_version(v), parse_version(WIT_VERSION)) {
        (Some((0, minor, patch)), Some((0, host_minor, host_patch))) => {
            minor == host_minor && patch <= host_patch
        }
        (Some((major, _, _)), Some((host_major, _, _))) => major == host_major && major > 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "lead-scoring"
name = "Lead scoring"
version = "0.1.0"
wit = "0.1.0"
description = "Scores contacts."

[capabilities]
read = ["contact", "company"]
actions = ["create-task"]

[[settings]]
name = "senior_points"
type = "integer"
default = 25
"#;

    #[test]
    fn a_good_manifest_parses() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(m.id, "lead-scoring");
        assert_eq!(
            m.requested(),
            ["action:create-task", "read:company", "read:contact"]
        );
        assert_eq!(m.readable(), [EntityKind::Contact, EntityKind::Company]);
    }

    #[test]
    fn bad_manifests_name_the_field() {
        let cases = [
            ("id = ", "toml"),
            (&GOOD.replace("lead-scoring", "Lead Scoring!"), "id"),
            (
                &GOOD.replace("version = \"0.1.0\"", "version = \"one\""),
                "version",
            ),
            (&GOOD.replace("wit = \"0.1.0\"", "wit = \"0.2.0\""), "wit"),
            (
                &GOOD.replace("\"company\"]", "\"invoice\"]"),
                "capabilities.read",
            ),
            (
                &GOOD.replace("create-task", "delete-everything"),
                "capabilities.actions",
            ),
            (&GOOD.replace("\"integer\"", "\"float\""), "settings"),
            (
                &GOOD.replace("[capabilities]", "colour = \"red\"\n[capabilities]"),
                "toml",
            ),
            ("", "toml"),
        ];
        for (text, field) in cases {
            let e = Manifest::parse(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
    }

    #[test]
    fn the_bundled_manifests_parse() {
        for dir in [
            "lead-scoring",
            "deal-fields",
            "sla-escalation",
            "stale-deals",
            "win-loss",
        ] {
            let path = format!(
                "{}/../plugins/{dir}/kith-plugin.toml",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read_to_string(&path).unwrap();
            let m = Manifest::parse(&text).unwrap();
            assert_eq!(m.id, dir);
        }
    }

    #[test]
    fn wit_versions() {
        assert!(wit_compatible("0.1.0"));
        assert!(!wit_compatible("0.2.0"));
        assert!(!wit_compatible("0.1.1"));
        assert!(!wit_compatible("1.0.0"));
        assert!(!wit_compatible("x"));
    }
}
