//! `kith plugin new`: writes a new plugin crate that builds to `wasm32-wasip2` with plain cargo
//! and passes its own native test — a contact scorer to start from, its manifest, a README, a
//! sample input for `kith plugin run` and a `.gitignore`.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// What to scaffold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaffoldOptions {
    /// The plugin's id, a slug such as `my-plugin`; the package is `kith-plugin-<name>`.
    pub name: String,
    /// The crate's own directory (`./my-plugin`); it must not exist or be empty.
    pub dir: PathBuf,
    /// Where the new crate gets kith-sdk from.
    pub sdk: SdkSource,
}

/// Where the new crate gets kith-sdk from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A local checkout of the SDK (the `sdk/` directory of the Kith repository). A relative
    /// path is written as given, so cargo reads it relative to the new crate.
    Path(PathBuf),
    /// A version requirement for kith-sdk from the registry.
    Version(String),
}

/// Why a plugin could not be scaffolded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The name is not a slug.
    #[error(
        "'{name}' is not a valid plugin name: {reason} (use lower-case letters, digits and '-', \
         starting with a letter, at most {MAX_NAME_LEN} characters)"
    )]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The target directory already has files in it.
    #[error("{} already exists and is not empty", .0.display())]
    DirNotEmpty(PathBuf),
    /// The SDK path cannot be written into `Cargo.toml`.
    #[error("the kith-sdk path {} is not valid UTF-8", .0.display())]
    SdkPathNotUtf8(PathBuf),
    /// Reading or writing a file or directory failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done: "create", "write", "read".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// The longest plugin name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Writes a new plugin crate into `opts.dir` and returns the files written, in order.
///
/// Refuses a name that is not a slug and a directory that already has files in it; never
/// overwrites a file. An I/O failure part-way leaves the files written so far.
pub fn scaffold(opts: &ScaffoldOptions) -> Result<Vec<PathBuf>, ScaffoldError> {
    check_name(&opts.name)?;
    let sdk = sdk_dependency(&opts.sdk)?;
    ensure_empty(&opts.dir)?;
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| ScaffoldError::Io {
            action,
            path,
            source,
        }
    };
    let src = opts.dir.join("src");
    fs::create_dir_all(&src).map_err(io("create", &src))?;
    let mut written = Vec::new();
    for (rel, text) in render(&opts.name, &sdk) {
        let path = opts.dir.join(rel);
        // `create_new` so that a file appearing between the emptiness check and now is
        // reported rather than overwritten.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(io("write", &path))?;
        written.push(path);
    }
    Ok(written)
}

/// The SDK of this Kith checkout (`<host>/../sdk`, canonicalized) when it is there, otherwise
/// kith-sdk at this Kith's version from the registry.
pub fn default_sdk_source() -> SdkSource {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("sdk");
    match sdk.canonicalize() {
        Ok(path) if path.join("Cargo.toml").is_file() => SdkSource::Path(path),
        _ => SdkSource::Version(env!("CARGO_PKG_VERSION").to_owned()),
    }
}

/// Checks that `name` is a slug: lower-case ASCII letters, digits and '-', starting with a
/// letter, 1 to [`MAX_NAME_LEN`] characters.
fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |reason| {
        Err(ScaffoldError::BadName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is too long");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lower-case letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("it has a character other than a-z, 0-9 and '-'");
    }
    Ok(())
}

/// Fails unless `dir` is missing or an empty directory.
fn ensure_empty(dir: &Path) -> Result<(), ScaffoldError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(ScaffoldError::DirNotEmpty(dir.to_owned())),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ScaffoldError::Io {
            action: "read",
            path: dir.to_owned(),
            source,
        }),
    }
}

/// The `kith-sdk = ...` dependency line for the new crate's `Cargo.toml`.
fn sdk_dependency(sdk: &SdkSource) -> Result<String, ScaffoldError> {
    Ok(match sdk {
        SdkSource::Path(path) => {
            let text = path
                .to_str()
                .ok_or_else(|| ScaffoldError::SdkPathNotUtf8(path.clone()))?;
            format!("kith-sdk = {{ path = {} }}", toml_string(text))
        }
        SdkSource::Version(version) => format!("kith-sdk = {}", toml_string(version)),
    })
}

/// `s` as a TOML basic string, quotes included.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The names the templates need, all derived from the plugin's slug.
struct Names {
    /// The plugin id, as given.
    id: String,
    /// The cargo package: `kith-plugin-<id>`, or the id itself if it already has the prefix.
    package: String,
    /// The library (and `.wasm` file) name: the package with underscores.
    lib: String,
    /// The Rust type implementing `Plugin`, such as `MyPlugin`.
    type_name: String,
    /// The name people see, such as "My plugin".
    title: String,
}

const PACKAGE_PREFIX: &str = "kith-plugin-";

impl Names {
    fn new(id: &str) -> Names {
        let (package, base) = match id.strip_prefix(PACKAGE_PREFIX) {
            Some(rest) if !rest.is_empty() => (id.to_owned(), rest),
            _ => (format!("{PACKAGE_PREFIX}{id}"), id),
        };
        // "my-plugin" gives `MyPlugin`, "lead-scoring" `LeadScoringPlugin`. The suffix keeps
        // the type from clashing with the SDK names the template imports (`Score`, `Entity`).
        let stem = base
            .strip_suffix("-plugin")
            .filter(|s| !s.is_empty())
            .unwrap_or(base);
        let mut type_name: String = stem.split('-').map(capitalized).collect();
        type_name.push_str("Plugin");
        Names {
            id: id.to_owned(),
            lib: package.replace('-', "_"),
            package,
            type_name,
            title: capitalized(&base.replace('-', " ")),
        }
    }
}

/// `s` with its first character in upper case.
fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What the example plugin does, in the manifest, `Cargo.toml` and `describe`.
const DESCRIPTION: &str =
    "Scores how complete a contact's profile is: points for an email and for a title.";

/// The files of the new crate, relative to its directory, with their contents.
fn render(id: &str, sdk_dependency: &str) -> Vec<(&'static str, String)> {
    let n = Names::new(id);
    let fill = |template: &str| {
        template
            .replace("@ID@", &n.id)
            .replace("@PACKAGE@", &n.package)
            .replace("@LIB@", &n.lib)
            .replace("@TYPE@", &n.type_name)
            .replace("@TITLE@", &n.title)
            .replace("@DESCRIPTION@", DESCRIPTION)
            .replace("@SDK@", sdk_dependency)
    };
    vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        ("kith-plugin.toml", fill(MANIFEST)),
        ("src/lib.rs", fill(LIB_RS)),
        ("README.md", fill(README)),
        ("sample.json", fill(SAMPLE)),
        (".gitignore", "/target\n".to_owned()),
    ]
}

const CARGO_TOML: &str = r#"[package]
name = "@PACKAGE@"
description = "Kith plugin @ID@. @DESCRIPTION@"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib is the WebAssembly component; rlib lets `cargo test` link the plugin natively.
crate-type = ["cdylib", "rlib"]

[dependencies]
@SDK@

# An empty workspace table keeps this crate its own workspace, so it builds standalone even
# when it sits inside another one.
[workspace]

[profile.release]
opt-level = "s"
lto = true
strip = true

[lints.rust]
unsafe_code = "forbid"
missing_docs = "warn"

[lints.clippy]
unwrap_used = "warn"
"#;

const MANIFEST: &str = r#"# Manifest of the @ID@ plugin: what an admin sees and grants at install.
id = "@ID@"
name = "@TITLE@"
version = "0.1.0"
wit = "0.1.0"
description = "@DESCRIPTION@"

[capabilities]
read = ["contact"]
actions = []
"#;

const LIB_RS: &str = r#"//! @TITLE@: a Kith plugin that scores how complete a contact's profile is — points for having
//! an email and for having a title, each with a reason the user sees beside the score.
//!
//! Build the component with `cargo build --release --target wasm32-wasip2`; test the logic
//! natively with `cargo test`. See README.md.

use kith_sdk::{
    Capabilities, Entity, EntityExt, EntityKind, FieldValue, Plugin, PluginInfo, Score, ScoreCard,
    ScorerDef, SettingType, Timestamp, host, setting,
};

/// The plugin. Hooks are associated functions: each call runs in a fresh instance, so a
/// plugin keeps no state between calls.
pub struct @TYPE@;

/// The name of the scorer this plugin provides.
pub const SCORER: &str = "profile";

/// What the plugin does; keep it in step with `description` in kith-plugin.toml.
const DESCRIPTION: &str =
    "@DESCRIPTION@";

impl Plugin for @TYPE@ {
    fn describe() -> PluginInfo {
        let points = |name, label, default| {
            setting(
                name,
                label,
                SettingType::Integer,
                FieldValue::Integer(default),
            )
        };
        PluginInfo {
            name: "@TITLE@".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: DESCRIPTION.to_owned(),
            fields: Vec::new(),
            scorers: vec![ScorerDef {
                name: SCORER.to_owned(),
                kind: EntityKind::Contact,
                description: "How complete a contact's profile is, 0 to 100.".to_owned(),
                depends_on: Vec::new(),
            }],
            reports: Vec::new(),
            settings: vec![
                points("email_points", "Points for having an email", 50),
                points("title_points", "Points for having a title", 50),
            ],
            subscriptions: Vec::new(),
            validates: Vec::new(),
            // Keep this in step with `[capabilities]` in kith-plugin.toml.
            capabilities: Capabilities {
                read: vec![EntityKind::Contact],
                actions: Vec::new(),
            },
        }
    }

    fn score(scorer: &str, contact: &Entity, _now: Timestamp) -> Option<Score> {
        if scorer != SCORER || contact.kind != EntityKind::Contact {
            return None;
        }
        let settings = host::settings();
        let points = |name| {
            settings
                .integer(name)
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(0)
        };
        let present = |name| contact.text(name).filter(|v| !v.trim().is_empty());
        let mut card = ScoreCard::new();
        if let Some(email) = present("email") {
            card.add(points("email_points"), format!("Has an email: {email}"));
        }
        if let Some(title) = present("title") {
            card.add(points("title_points"), format!("Has a title: {title}"));
        }
        Some(card.finish(contact))
    }
}

kith_sdk::register_plugin!(@TYPE@);

#[cfg(test)]
mod tests {
    use kith_sdk::testing::{TestHost, entity};
    use kith_sdk::{Entity, EntityKind, FieldValue, Plugin, field};

    use super::{@TYPE@, SCORER};

    fn contact(fields: &[(&str, &str)]) -> Entity {
        entity(
            EntityKind::Contact,
            "c1",
            fields
                .iter()
                .map(|(name, value)| field(name, FieldValue::Text((*value).to_owned()))),
        )
    }

    fn reasons(score: &kith_sdk::Score) -> Vec<(i32, &str)> {
        score
            .reasons
            .iter()
            .map(|r| (r.points, r.reason.as_str()))
            .collect()
    }

    #[test]
    fn a_contact_with_an_email_and_a_title_scores_full_marks() {
        TestHost::for_plugin::<@TYPE@>().install();
        let ada = contact(&[("email", "ada@acme.example"), ("title", "VP Sales")]);
        let score = @TYPE@::score(SCORER, &ada, 0).expect("a score");
        assert_eq!(score.id, "c1");
        assert_eq!(score.value, 100);
        assert_eq!(
            reasons(&score),
            vec![
                (50, "Has an email: ada@acme.example"),
                (50, "Has a title: VP Sales"),
            ]
        );
    }

    #[test]
    fn an_empty_profile_scores_zero_and_settings_change_the_points() {
        TestHost::for_plugin::<@TYPE@>()
            .set("title_points", FieldValue::Integer(30))
            .install();
        let bare = @TYPE@::score(SCORER, &contact(&[("title", " ")]), 0).expect("a score");
        assert_eq!(bare.value, 0);
        assert!(bare.reasons.is_empty());
        let titled = @TYPE@::score(SCORER, &contact(&[("title", "CEO")]), 0).expect("a score");
        assert_eq!(reasons(&titled), vec![(30, "Has a title: CEO")]);
    }

    #[test]
    fn other_scorers_and_kinds_are_not_scored() {
        TestHost::for_plugin::<@TYPE@>().install();
        assert!(@TYPE@::score("other", &contact(&[]), 0).is_none());
        let company = entity(EntityKind::Company, "co1", []);
        assert!(@TYPE@::score(SCORER, &company, 0).is_none());
    }
}
"#;

const README: &str = r#"# @TITLE@

A Kith plugin (`@PACKAGE@`):

> @DESCRIPTION@

The code is in `src/lib.rs`; `kith-plugin.toml` is the manifest an admin sees and grants at
install.

## Build

```sh
rustup target add wasm32-wasip2      # once
cargo build --release --target wasm32-wasip2
```

The component lands in `target/wasm32-wasip2/release/@LIB@.wasm` (under
`$CARGO_TARGET_DIR` instead if you set it).

## Test

```sh
cargo test
```

Tests run natively, without WebAssembly: `kith_sdk::testing::TestHost` stands in for the Kith
host, with the plugin's default settings, any overrides (`.set(...)`) and records for
`host::get` and `host::query` (`.with_records(...)`).

## Try it

```sh
kith plugin run target/wasm32-wasip2/release/@LIB@.wasm    # describe
kith plugin run target/wasm32-wasip2/release/@LIB@.wasm --hook score --input sample.json
```

`sample.json` holds the scorer, the time and the contacts the hook receives (`entities`). Add
`"settings": { "title_points": 30 }` to override a setting, and `"records": [...]` for what
`host::get` and `host::query` can find.

## Install

After building, from this directory:

```sh
kith plugin install .
```

Install checks that the component agrees with its manifest: bump `version` in `Cargo.toml`
and `kith-plugin.toml` together, and if the plugin comes to read more than contacts
(`host::get`, `host::query`), list the kinds both in `kith-plugin.toml` under
`[capabilities]` and in `describe()`.
"#;

const SAMPLE: &str = r#"{
  "scorer": "profile",
  "now": "2026-01-01T12:00:00Z",
  "entities": [
    { "kind": "contact", "id": "c1", "fields": { "first_name": "Ada", "last_name": "Lovelace", "email": "ada@acme.example", "title": "VP Sales" } },
    { "kind": "contact", "id": "c2", "fields": { "first_name": "Bob", "email": "bob@example.com" } },
    { "kind": "contact", "id": "c3", "fields": { "first_name": "Cy" } }
  ]
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path, name: &str) -> ScaffoldOptions {
        ScaffoldOptions {
            name: name.to_owned(),
            dir: dir.to_owned(),
            sdk: SdkSource::Path(PathBuf::from("/src/kith/sdk")),
        }
    }

    fn read(dir: &Path, rel: &str) -> String {
        fs::read_to_string(dir.join(rel)).unwrap()
    }

    #[test]
    fn names_that_are_not_slugs_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for (name, reason) in [
            ("", "it is empty"),
            (long.as_str(), "it is too long"),
            ("My-plugin", "it must start with a lower-case letter"),
            ("1plugin", "it must start with a lower-case letter"),
            ("-plugin", "it must start with a lower-case letter"),
            (
                "my_plugin",
                "it has a character other than a-z, 0-9 and '-'",
            ),
            (
                "my plugin",
                "it has a character other than a-z, 0-9 and '-'",
            ),
            (
                "my/plugin",
                "it has a character other than a-z, 0-9 and '-'",
            ),
            ("plügin", "it has a character other than a-z, 0-9 and '-'"),
        ] {
            let dir = tmp.path().join("out");
            match scaffold(&options(&dir, name)) {
                Err(ScaffoldError::BadName { name: n, reason: r }) => {
                    assert_eq!((n.as_str(), r), (name, reason));
                }
                other => panic!("{name:?}: expected BadName, got {other:?}"),
            }
            assert!(!dir.exists(), "{name:?}: nothing is written");
        }
        let longest = "a".repeat(MAX_NAME_LEN);
        for name in ["a", "my-plugin", "crm2-sync", longest.as_str()] {
            assert!(check_name(name).is_ok(), "{name:?} is a valid name");
            // Every name accepted here is also a valid id for an installed plugin.
            assert!(
                kith_core::pipeline::is_slug(name),
                "{name:?} is a core slug"
            );
        }
    }

    #[test]
    fn a_directory_with_files_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
        let err = scaffold(&options(tmp.path(), "my-plugin")).unwrap_err();
        assert!(matches!(&err, ScaffoldError::DirNotEmpty(p) if p == tmp.path()));
        assert_eq!(
            err.to_string(),
            format!("{} already exists and is not empty", tmp.path().display())
        );
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
        assert_eq!(read(tmp.path(), "notes.txt"), "mine");
    }

    #[test]
    fn an_empty_existing_directory_is_used() {
        let tmp = tempfile::tempdir().unwrap();
        let files = scaffold(&options(tmp.path(), "my-plugin")).unwrap();
        assert_eq!(files.len(), 6);
        assert!(tmp.path().join("src/lib.rs").is_file());
    }

    #[test]
    fn io_failures_name_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a-file");
        fs::write(&file, "").unwrap();
        let dir = file.join("my-plugin");
        let err = scaffold(&options(&dir, "my-plugin")).unwrap_err();
        match &err {
            ScaffoldError::Io { action, path, .. } => assert_eq!((*action, path), ("read", &dir)),
            other => panic!("expected Io, got {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read {}: ", dir.display())),
            "{err}"
        );
    }

    #[test]
    fn the_crate_is_written_with_its_names_and_sdk_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("my-plugin");
        let files = scaffold(&options(&dir, "my-plugin")).unwrap();
        let rel: Vec<String> = files
            .iter()
            .map(|f| {
                f.strip_prefix(&dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/")
            })
            .collect();
        assert_eq!(
            rel,
            [
                "Cargo.toml",
                "kith-plugin.toml",
                "src/lib.rs",
                "README.md",
                "sample.json",
                ".gitignore"
            ]
        );

        let cargo = read(&dir, "Cargo.toml");
        for want in [
            "name = \"kith-plugin-my-plugin\"\n",
            "crate-type = [\"cdylib\", \"rlib\"]\n",
            "\nkith-sdk = { path = \"/src/kith/sdk\" }\n",
            "\n[workspace]\n",
            "[profile.release]\nopt-level = \"s\"\nlto = true\nstrip = true\n",
        ] {
            assert!(cargo.contains(want), "Cargo.toml lacks {want:?}:\n{cargo}");
        }

        let lib = read(&dir, "src/lib.rs");
        assert!(lib.starts_with("//! My plugin: "));
        for want in [
            "pub struct MyPlugin;",
            "impl Plugin for MyPlugin {",
            "kith_sdk::register_plugin!(MyPlugin);",
            "#[cfg(test)]",
            "TestHost::for_plugin::<MyPlugin>()",
            "assert_eq!(score.value, 100);",
        ] {
            assert!(lib.contains(want), "lib.rs lacks {want:?}");
        }
        for rel in [
            "Cargo.toml",
            "kith-plugin.toml",
            "src/lib.rs",
            "README.md",
            "sample.json",
        ] {
            let text = read(&dir, rel);
            for token in [
                "@ID@",
                "@PACKAGE@",
                "@LIB@",
                "@TYPE@",
                "@TITLE@",
                "@DESCRIPTION@",
                "@SDK@",
            ] {
                assert!(!text.contains(token), "{rel} keeps {token}");
            }
        }

        let readme = read(&dir, "README.md");
        for want in [
            "cargo build --release --target wasm32-wasip2",
            "target/wasm32-wasip2/release/kith_plugin_my_plugin.wasm",
            "cargo test",
            "--hook score --input sample.json",
            "kith plugin install .",
        ] {
            assert!(readme.contains(want), "README.md lacks {want:?}");
        }
        assert_eq!(read(&dir, ".gitignore"), "/target\n");
    }

    #[test]
    fn the_manifest_matches_the_bundled_plugins_format() {
        let tmp = tempfile::tempdir().unwrap();
        scaffold(&options(tmp.path(), "my-plugin")).unwrap();
        assert_eq!(
            read(tmp.path(), "kith-plugin.toml"),
            "# Manifest of the my-plugin plugin: what an admin sees and grants at install.\n\
             id = \"my-plugin\"\n\
             name = \"My plugin\"\n\
             version = \"0.1.0\"\n\
             wit = \"0.1.0\"\n\
             description = \"Scores how complete a contact's profile is: points for an email and for a title.\"\n\
             \n\
             [capabilities]\n\
             read = [\"contact\"]\n\
             actions = []\n"
        );
        let parsed =
            super::super::manifest::Manifest::parse(&read(tmp.path(), "kith-plugin.toml")).unwrap();
        assert_eq!(parsed.requested(), ["read:contact"]);
        // The description `describe()` reports is the manifest's.
        let lib = read(tmp.path(), "src/lib.rs");
        assert!(lib.contains(&format!(
            "const DESCRIPTION: &str =\n    \"{DESCRIPTION}\";"
        )));
    }

    #[test]
    fn the_sample_is_valid_score_input() {
        let tmp = tempfile::tempdir().unwrap();
        scaffold(&options(tmp.path(), "my-plugin")).unwrap();
        let sample: serde_json::Value =
            serde_json::from_str(&read(tmp.path(), "sample.json")).unwrap();
        assert_eq!(sample["scorer"], "profile");
        assert!(read(tmp.path(), "src/lib.rs").contains("pub const SCORER: &str = \"profile\";"));
        kith_core::schema::parse_timestamp(sample["now"].as_str().unwrap()).unwrap();
        let entities = sample["entities"].as_array().unwrap();
        assert!(!entities.is_empty());
        for e in entities {
            let kind = kith_core::EntityKind::parse(e["kind"].as_str().unwrap()).unwrap();
            assert_eq!(kind, kith_core::EntityKind::Contact);
            assert!(e["id"].is_string());
            for (name, value) in e["fields"].as_object().unwrap() {
                assert!(kind.field(name).is_some(), "contacts have no field {name}");
                assert!(value.is_string());
            }
        }
    }

    #[test]
    fn names_follow_the_slug() {
        for (id, package, lib, type_name, title) in [
            (
                "my-plugin",
                "kith-plugin-my-plugin",
                "kith_plugin_my_plugin",
                "MyPlugin",
                "My plugin",
            ),
            (
                "lead-scoring",
                "kith-plugin-lead-scoring",
                "kith_plugin_lead_scoring",
                "LeadScoringPlugin",
                "Lead scoring",
            ),
            (
                "kith-plugin-crm2-sync",
                "kith-plugin-crm2-sync",
                "kith_plugin_crm2_sync",
                "Crm2SyncPlugin",
                "Crm2 sync",
            ),
            (
                "score",
                "kith-plugin-score",
                "kith_plugin_score",
                "ScorePlugin",
                "Score",
            ),
            (
                "plugin",
                "kith-plugin-plugin",
                "kith_plugin_plugin",
                "PluginPlugin",
                "Plugin",
            ),
            (
                "kith-plugin",
                "kith-plugin-kith-plugin",
                "kith_plugin_kith_plugin",
                "KithPlugin",
                "Kith plugin",
            ),
        ] {
            let n = Names::new(id);
            assert_eq!(
                (
                    n.package.as_str(),
                    n.lib.as_str(),
                    n.type_name.as_str(),
                    n.title.as_str()
                ),
                (package, lib, type_name, title),
                "names for {id:?}"
            );
        }
    }

    #[test]
    fn the_sdk_comes_by_path_or_by_version() {
        let check = |sdk: SdkSource, want: &str| {
            let tmp = tempfile::tempdir().unwrap();
            let opts = ScaffoldOptions {
                sdk,
                ..options(tmp.path(), "my-plugin")
            };
            scaffold(&opts).unwrap();
            let cargo = read(tmp.path(), "Cargo.toml");
            assert!(cargo.contains(&format!("\n{want}\n")), "{want}:\n{cargo}");
        };
        check(
            SdkSource::Version("0.1.0".to_owned()),
            r#"kith-sdk = "0.1.0""#,
        );
        check(
            SdkSource::Path(PathBuf::from(r#"C:\kith "main"\sdk"#)),
            r#"kith-sdk = { path = "C:\\kith \"main\"\\sdk" }"#,
        );
        match default_sdk_source() {
            SdkSource::Path(p) => {
                assert!(p.is_absolute());
                assert!(p.join("src/lib.rs").is_file());
            }
            SdkSource::Version(v) => assert_eq!(v, env!("CARGO_PKG_VERSION")),
        }
    }
}
