//! Deal fields: adds a next step and a renewal date to deals, refuses to save a deal in a
//! late stage (Proposal and Negotiation by default, an admin setting) without a next step, and
//! computes how many days a deal has sat in its stage and how old it is.

use kith_sdk::host;
use kith_sdk::{
    Capabilities, Entity, EntityExt, EntityKind, Field, FieldDef, FieldError, FieldType,
    FieldValue, Plugin, PluginInfo, SettingDef, SettingType, Timestamp, field, setting,
};

/// The plugin.
pub struct DealFields;

/// Timestamps are microseconds since the Unix epoch (the WIT `timestamp` type).
const DAY_MICROS: i64 = 86_400_000_000;

/// The setting listing the stage keys at which a deal needs a next step.
const REQUIRE_NEXT_STEP_IN: &str = "require_next_step_in";

/// The open late stages of the default pipeline. Won and lost are left out on purpose: a
/// closed deal has no next step to take.
const DEFAULT_NEXT_STEP_STAGES: &[&str] = &["proposal", "negotiation"];

const NEXT_STEP: &str = "next_step";
const RENEWAL_DATE: &str = "renewal_date";
const DAYS_IN_STAGE: &str = "days_in_stage";
const DEAL_AGE_DAYS: &str = "deal_age_days";

impl Plugin for DealFields {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "Deal fields".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Adds next step and renewal date to deals, requires a next step from Proposal on, and computes days in stage and deal age.".to_owned(),
            fields: vec![
                // Not `required` in the definition: the host would then demand it at every
                // stage, while it is needed only from Proposal on, which `validate` checks.
                deal_field(NEXT_STEP, "Next step", FieldType::Text, false,
                    "What happens next on this deal. Required once the deal reaches a stage listed in the plugin's settings (Proposal and Negotiation by default); won and lost deals don't need one."),
                deal_field(RENEWAL_DATE, "Renewal date", FieldType::Date, false,
                    "When the contract comes up for renewal, if it does."),
                deal_field(DAYS_IN_STAGE, "Days in stage", FieldType::Integer, true,
                    "Whole days since the deal entered its current stage."),
                deal_field(DEAL_AGE_DAYS, "Deal age (days)", FieldType::Integer, true,
                    "Whole days since the deal was created."),
            ],
            scorers: Vec::new(),
            reports: Vec::new(),
            settings: vec![SettingDef {
                help: Some("Stage keys at which a deal cannot be saved without a next step. Leave empty to never require one.".to_owned()),
                ..setting(
                    REQUIRE_NEXT_STEP_IN,
                    "Stages that need a next step",
                    SettingType::TextList,
                    FieldValue::Choices(
                        DEFAULT_NEXT_STEP_STAGES.iter().map(|s| (*s).to_owned()).collect(),
                    ),
                )
            }],
            subscriptions: Vec::new(),
            validates: vec![EntityKind::Deal],
            // Every hook works on the deal it is handed, so the plugin asks to read nothing.
            capabilities: Capabilities {
                read: Vec::new(),
                actions: Vec::new(),
            },
        }
    }

    fn validate(
        entity: &Entity,
        _before: Option<&Entity>,
        _now: Timestamp,
    ) -> Result<(), Vec<FieldError>> {
        if entity.kind != EntityKind::Deal {
            return Ok(());
        }
        let Some(stage) = entity.text("stage") else {
            return Ok(());
        };
        // Admins type these keys by hand, so stray spaces and capitals should not disable the
        // rule.
        let needs_next_step = host::settings()
            .list(REQUIRE_NEXT_STEP_IN)
            .iter()
            .any(|s| s.trim().eq_ignore_ascii_case(stage));
        let has_next_step = entity.text(NEXT_STEP).is_some_and(|s| !s.trim().is_empty());
        if needs_next_step && !has_next_step {
            return Err(vec![FieldError {
                field: NEXT_STEP.to_owned(),
                message: format!("a deal at stage '{stage}' needs a next step"),
            }]);
        }
        Ok(())
    }

    fn compute_fields(entity: &Entity, now: Timestamp) -> Vec<Field> {
        if entity.kind != EntityKind::Deal {
            return Vec::new();
        }
        // A deal about to be created may not carry its creation time yet; it is then zero
        // days old, which is what falling back to `now` gives.
        let created = entity.datetime("created_at").unwrap_or(now);
        // Deals written before Kith tracked stage changes have no `stage_changed_at`; their
        // creation time is the best lower bound there is.
        let stage_changed = entity.datetime("stage_changed_at").unwrap_or(created);
        vec![
            field(
                DAYS_IN_STAGE,
                FieldValue::Integer(whole_days(stage_changed, now)),
            ),
            field(DEAL_AGE_DAYS, FieldValue::Integer(whole_days(created, now))),
        ]
    }
}

/// A custom field on deals.
fn deal_field(
    name: &str,
    label: &str,
    field_type: FieldType,
    computed: bool,
    help: &str,
) -> FieldDef {
    FieldDef {
        kind: EntityKind::Deal,
        name: name.to_owned(),
        label: label.to_owned(),
        field_type,
        required: false,
        options: Vec::new(),
        help: Some(help.to_owned()),
        reference_kind: None,
        computed,
    }
}

/// Whole days from `since` to `now`, never negative: a time in the future (clock skew between
/// the machine that wrote it and the host, or imported data) counts as today.
fn whole_days(since: Timestamp, now: Timestamp) -> i64 {
    now.saturating_sub(since).max(0) / DAY_MICROS
}

kith_sdk::register_plugin!(DealFields);

#[cfg(test)]
mod tests {
    use kith_sdk::testing::{TestHost, entity};
    use kith_sdk::{
        Entity, EntityKind, FieldError, FieldType, FieldValue, Plugin, SettingType, WIT_VERSION,
        field,
    };

    use super::DealFields;

    const NOW: i64 = 1_800_000_000_000_000;
    const DAY: i64 = super::DAY_MICROS;

    fn deal(stage: &str, next_step: Option<&str>) -> Entity {
        let mut d = entity(
            EntityKind::Deal,
            "d1",
            [
                field("title", FieldValue::Text("Pilot".to_owned())),
                field("stage", FieldValue::Text(stage.to_owned())),
            ],
        );
        if let Some(n) = next_step {
            d.custom
                .push(field("next_step", FieldValue::Text(n.to_owned())));
        }
        d
    }

    fn rejected(stage: &str) -> Result<(), Vec<FieldError>> {
        Err(vec![FieldError {
            field: "next_step".to_owned(),
            message: format!("a deal at stage '{stage}' needs a next step"),
        }])
    }

    fn check(stage: &str, next_step: Option<&str>, expected: Result<(), Vec<FieldError>>) {
        assert_eq!(
            DealFields::validate(&deal(stage, next_step), None, NOW),
            expected,
            "stage {stage}, next step {next_step:?}"
        );
    }

    #[test]
    fn late_open_stages_need_a_next_step() {
        TestHost::for_plugin::<DealFields>().install();
        check("proposal", None, rejected("proposal"));
        check("negotiation", None, rejected("negotiation"));
        check("proposal", Some("   "), rejected("proposal"));
        check("proposal", Some("Send the contract"), Ok(()));
        check("negotiation", Some("Call legal"), Ok(()));
    }

    #[test]
    fn early_and_closed_stages_do_not() {
        TestHost::for_plugin::<DealFields>().install();
        check("lead", None, Ok(()));
        check("qualified", None, Ok(()));
        check("won", None, Ok(()));
        check("lost", None, Ok(()));
    }

    #[test]
    fn the_stages_come_from_the_setting() {
        TestHost::for_plugin::<DealFields>()
            .set(
                "require_next_step_in",
                FieldValue::Choices(vec![" Qualified ".to_owned()]),
            )
            .install();
        check("qualified", None, rejected("qualified"));
        check("qualified", Some("Book a demo"), Ok(()));
        check("proposal", None, Ok(()));

        TestHost::for_plugin::<DealFields>()
            .set("require_next_step_in", FieldValue::Choices(Vec::new()))
            .install();
        check("proposal", None, Ok(()));
    }

    #[test]
    fn other_kinds_are_not_validated() {
        TestHost::for_plugin::<DealFields>().install();
        let ticket = entity(
            EntityKind::Ticket,
            "t1",
            [field("stage", FieldValue::Text("proposal".to_owned()))],
        );
        assert_eq!(DealFields::validate(&ticket, None, NOW), Ok(()));
    }

    fn computed(e: &Entity) -> Vec<(String, FieldValue)> {
        DealFields::compute_fields(e, NOW)
            .into_iter()
            .map(|f| (f.name, f.value))
            .collect()
    }

    fn days(in_stage: i64, age: i64) -> Vec<(String, FieldValue)> {
        vec![
            ("days_in_stage".to_owned(), FieldValue::Integer(in_stage)),
            ("deal_age_days".to_owned(), FieldValue::Integer(age)),
        ]
    }

    #[test]
    fn computes_days_in_stage_and_age_in_whole_days() {
        TestHost::for_plugin::<DealFields>().install();
        let mut d = deal("proposal", Some("Send the contract"));
        d.fields.extend([
            field("created_at", FieldValue::Datetime(NOW - 30 * DAY - 1)),
            // Half a day short of 4: whole days round down.
            field(
                "stage_changed_at",
                FieldValue::Datetime(NOW - 4 * DAY + DAY / 2),
            ),
        ]);
        assert_eq!(computed(&d), days(3, 30));
    }

    #[test]
    fn without_a_stage_change_the_deal_has_been_in_its_stage_since_creation() {
        TestHost::for_plugin::<DealFields>().install();
        let mut d = deal("lead", None);
        d.fields.extend([
            field("created_at", FieldValue::Datetime(NOW - 12 * DAY)),
            field("stage_changed_at", FieldValue::Null),
        ]);
        assert_eq!(computed(&d), days(12, 12));
    }

    #[test]
    fn a_new_or_future_dated_deal_is_zero_days_old() {
        TestHost::for_plugin::<DealFields>().install();
        assert_eq!(computed(&deal("lead", None)), days(0, 0));
        let mut d = deal("lead", None);
        d.fields
            .push(field("created_at", FieldValue::Datetime(NOW + 3 * DAY)));
        assert_eq!(computed(&d), days(0, 0));
    }

    #[test]
    fn other_kinds_get_no_computed_fields() {
        TestHost::for_plugin::<DealFields>().install();
        let contact = entity(
            EntityKind::Contact,
            "c1",
            [field("created_at", FieldValue::Datetime(NOW - 5 * DAY))],
        );
        assert!(DealFields::compute_fields(&contact, NOW).is_empty());
    }

    #[test]
    fn describes_four_deal_fields_two_of_them_computed() {
        let info = DealFields::describe();
        let fields: Vec<(&str, FieldType, bool, bool)> = info
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.field_type, f.required, f.computed))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("next_step", FieldType::Text, false, false),
                ("renewal_date", FieldType::Date, false, false),
                ("days_in_stage", FieldType::Integer, false, true),
                ("deal_age_days", FieldType::Integer, false, true),
            ]
        );
        assert!(info.fields.iter().all(|f| f.kind == EntityKind::Deal));
        assert!(info.fields.iter().all(|f| f.help.is_some()));
        assert_eq!(info.validates, vec![EntityKind::Deal]);
        assert!(info.capabilities.read.is_empty());
        assert!(info.capabilities.actions.is_empty());
        assert!(
            info.scorers.is_empty() && info.reports.is_empty() && info.subscriptions.is_empty()
        );
        let settings: Vec<(&str, SettingType, &FieldValue)> = info
            .settings
            .iter()
            .map(|s| (s.name.as_str(), s.setting_type, &s.default))
            .collect();
        assert_eq!(
            settings,
            vec![(
                "require_next_step_in",
                SettingType::TextList,
                &FieldValue::Choices(vec!["proposal".to_owned(), "negotiation".to_owned()])
            )]
        );
    }

    /// The manifest is what an admin reviews before install, so it must say what `describe`
    /// says. The SDK has no TOML parser, so this renders what the manifest should contain and
    /// looks for it verbatim.
    #[test]
    fn the_manifest_matches_describe() {
        let manifest = include_str!("../kith-plugin.toml");
        let info = DealFields::describe();
        let quoted = |s: &str| format!("{s:?}");
        let mut expected = vec![
            "id = \"deal-fields\"\n".to_owned(),
            format!("name = {}\n", quoted(&info.name)),
            format!("version = {}\n", quoted(&info.version)),
            format!("wit = {}\n", quoted(WIT_VERSION)),
            format!("description = {}\n", quoted(&info.description)),
            "read = []\nactions = []\n".to_owned(),
        ];
        assert_eq!(
            manifest.matches("[[settings]]").count(),
            info.settings.len()
        );
        for s in &info.settings {
            let ty = match s.setting_type {
                SettingType::Text => "text",
                SettingType::Integer => "integer",
                SettingType::Number => "number",
                SettingType::Boolean => "boolean",
                SettingType::Choice => "choice",
                SettingType::TextList => "text-list",
            };
            let default = match &s.default {
                FieldValue::Choices(l) => {
                    let items: Vec<String> = l.iter().map(|i| quoted(i)).collect();
                    format!("[{}]", items.join(", "))
                }
                other => panic!("render {other:?} as TOML in this test"),
            };
            let mut block = format!(
                "[[settings]]\nname = {}\nlabel = {}\ntype = {}\ndefault = {default}\n",
                quoted(&s.name),
                quoted(&s.label),
                quoted(ty),
            );
            if let Some(help) = &s.help {
                block.push_str(&format!("help = {}\n", quoted(help)));
            }
            assert!(s.options.is_empty(), "render options in this test");
            expected.push(block);
        }
        for want in expected {
            assert!(manifest.contains(&want), "the manifest lacks:\n{want}");
        }
    }
}
