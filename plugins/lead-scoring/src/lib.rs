//! Lead scoring: rates each contact 0–100 from point rules an admin can tune in settings —
//! seniority in the title, company size, corporate or free email domain, how many recent
//! interactions there were and how recent the last one is, and open deals. Every point comes
//! with a reason the user sees beside the score.

use kith_sdk::host;
use kith_sdk::{
    Capabilities, Entity, EntityExt, EntityKind, FieldValue, Filter, Plugin, PluginInfo, Score,
    ScoreCard, ScorerDef, SettingType, Settings, Timestamp, setting,
};

/// The plugin.
pub struct LeadScoring;

const DAY_MICROS: i64 = 86_400_000_000;

fn list(items: &[&str]) -> FieldValue {
    FieldValue::Choices(items.iter().map(|s| (*s).to_owned()).collect())
}

impl Plugin for LeadScoring {
    fn describe() -> PluginInfo {
        let int =
            |name, label, v| setting(name, label, SettingType::Integer, FieldValue::Integer(v));
        PluginInfo {
            name: "Lead scoring".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Scores contacts 0-100 from title seniority, company size, email domain, interactions and open deals.".to_owned(),
            fields: Vec::new(),
            scorers: vec![ScorerDef {
                name: "lead".to_owned(),
                kind: EntityKind::Contact,
                description: "How ready a contact is to buy, 0 to 100.".to_owned(),
                depends_on: vec![EntityKind::Company, EntityKind::Interaction, EntityKind::Deal],
            }],
            reports: Vec::new(),
            settings: vec![
                setting("senior_titles", "Words in a senior title", SettingType::TextList,
                    list(&["chief", "ceo", "cto", "cfo", "coo", "founder", "owner", "president", "vp", "vice president", "head", "director"])),
                int("senior_points", "Points for a senior title", 25),
                setting("mid_titles", "Words in a mid-level title", SettingType::TextList,
                    list(&["manager", "lead", "principal", "senior"])),
                int("mid_points", "Points for a mid-level title", 10),
                setting("free_email_domains", "Free email domains", SettingType::TextList,
                    list(&["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "mail.com"])),
                int("corporate_email_points", "Points for a corporate email", 15),
                int("free_email_points", "Points for a free email (usually negative)", -5),
                int("large_company_size", "Employees for a large company", 1000),
                int("large_company_points", "Points for a large company", 20),
                int("mid_company_size", "Employees for a mid-size company", 100),
                int("mid_company_points", "Points for a mid-size company", 10),
                int("points_per_interaction", "Points per interaction in the window", 5),
                int("max_interaction_points", "Most points from interactions", 20),
                int("interaction_window_days", "Days of interactions that count", 90),
                int("recent_days", "Days for an interaction to count as recent", 14),
                int("recent_points", "Points when the last interaction is recent", 10),
                int("open_deal_points", "Points when the contact has an open deal", 20),
            ],
            subscriptions: Vec::new(),
            validates: Vec::new(),
            capabilities: Capabilities {
                read: vec![EntityKind::Contact, EntityKind::Company, EntityKind::Interaction, EntityKind::Deal],
                actions: Vec::new(),
            },
        }
    }

    fn score(scorer: &str, contact: &Entity, now: Timestamp) -> Option<Score> {
        if scorer != "lead" || contact.kind != EntityKind::Contact {
            return None;
        }
        let s = host::settings();
        let mut card = ScoreCard::new();
        title_points(&s, contact, &mut card);
        email_points(&s, contact, &mut card);
        company_points(&s, contact, &mut card);
        activity_points(&s, contact, now, &mut card);
        Some(card.finish(contact))
    }
}

fn points(s: &Settings, name: &str) -> i32 {
    s.integer(name)
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(0)
}

fn title_points(s: &Settings, contact: &Entity, card: &mut ScoreCard) {
    let Some(title) = contact.text("title") else {
        return;
    };
    let lower = title.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |phrase: &str| {
        let p: Vec<&str> = phrase.split_whitespace().collect();
        !p.is_empty() && words.windows(p.len()).any(|w| w == p.as_slice())
    };
    if s.list("senior_titles")
        .iter()
        .any(|k| has(&k.to_lowercase()))
    {
        card.add(points(s, "senior_points"), format!("Senior title: {title}"));
    } else if s.list("mid_titles").iter().any(|k| has(&k.to_lowercase())) {
        card.add(points(s, "mid_points"), format!("Mid-level title: {title}"));
    }
}

fn email_points(s: &Settings, contact: &Entity, card: &mut ScoreCard) {
    let Some(domain) = contact
        .text("email")
        .and_then(|e| e.rsplit_once('@'))
        .map(|(_, d)| d.to_lowercase())
    else {
        return;
    };
    if s.list("free_email_domains")
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&domain))
    {
        card.add(
            points(s, "free_email_points"),
            format!("Free email domain ({domain})"),
        );
    } else {
        card.add(
            points(s, "corporate_email_points"),
            format!("Corporate email domain ({domain})"),
        );
    }
}

fn company_points(s: &Settings, contact: &Entity, card: &mut ScoreCard) {
    let Some(company_id) = contact.text("company_id") else {
        return;
    };
    let company = match host::get(EntityKind::Company, company_id) {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => {
            host::log(
                kith_sdk::Level::Warn,
                &format!("cannot read company {company_id}: {e}"),
            );
            return;
        }
    };
    let Some(size) = company.integer("size") else {
        return;
    };
    let name = company.text("name").unwrap_or("the company");
    if size >= s.integer("large_company_size").unwrap_or(i64::MAX) {
        card.add(
            points(s, "large_company_points"),
            format!("Large company: {name} ({size} employees)"),
        );
    } else if size >= s.integer("mid_company_size").unwrap_or(i64::MAX) {
        card.add(
            points(s, "mid_company_points"),
            format!("Mid-size company: {name} ({size} employees)"),
        );
    }
}

fn eq(field: &str, value: &str) -> Filter {
    Filter {
        field: field.to_owned(),
        op: "eq".to_owned(),
        value: value.to_owned(),
    }
}

fn activity_points(s: &Settings, contact: &Entity, now: Timestamp, card: &mut ScoreCard) {
    let window = s.integer("interaction_window_days").unwrap_or(90) * DAY_MICROS;
    match host::query_all(EntityKind::Interaction, &[eq("contact_id", &contact.id)]) {
        Ok(interactions) => {
            let times: Vec<Timestamp> = interactions
                .iter()
                .filter_map(|i| i.datetime("occurred_at"))
                .filter(|t| *t <= now && now - *t <= window)
                .collect();
            if !times.is_empty() {
                let per = points(s, "points_per_interaction");
                let count = i32::try_from(times.len()).unwrap_or(i32::MAX);
                let earned = per
                    .saturating_mul(count)
                    .min(points(s, "max_interaction_points"));
                card.add(
                    earned,
                    format!(
                        "{count} interaction(s) in the last {} days",
                        window / DAY_MICROS
                    ),
                );
                let last = times.iter().max().copied().unwrap_or(0);
                let recent = s.integer("recent_days").unwrap_or(14);
                if now - last <= recent * DAY_MICROS {
                    card.add(
                        points(s, "recent_points"),
                        format!("Interaction in the last {recent} days"),
                    );
                }
            }
        }
        Err(e) => host::log(
            kith_sdk::Level::Warn,
            &format!("cannot read interactions: {e}"),
        ),
    }
    match host::query(
        EntityKind::Deal,
        &[eq("contact_ids", &contact.id), eq("status", "open")],
        1,
        None,
    ) {
        Ok(page) if !page.items.is_empty() => {
            card.add(points(s, "open_deal_points"), "Has an open deal");
        }
        Ok(_) => {}
        Err(e) => host::log(kith_sdk::Level::Warn, &format!("cannot read deals: {e}")),
    }
}

kith_sdk::register_plugin!(LeadScoring);

#[cfg(test)]
mod tests {
    use kith_sdk::testing::{TestHost, entity};
    use kith_sdk::{EntityKind, FieldValue, Plugin, field};

    use super::LeadScoring;

    const NOW: i64 = 1_800_000_000_000_000;
    const DAY: i64 = super::DAY_MICROS;

    fn text(s: &str) -> FieldValue {
        FieldValue::Text(s.to_owned())
    }

    fn contact(title: &str, email: &str, company: Option<&str>) -> kith_sdk::Entity {
        let mut fields = vec![field("title", text(title)), field("email", text(email))];
        if let Some(c) = company {
            fields.push(field("company_id", FieldValue::Reference(c.to_owned())));
        }
        entity(EntityKind::Contact, "c1", fields)
    }

    fn interaction(id: &str, days_ago: i64) -> kith_sdk::Entity {
        entity(
            EntityKind::Interaction,
            id,
            [
                field("contact_id", FieldValue::Reference("c1".to_owned())),
                field("occurred_at", FieldValue::Datetime(NOW - days_ago * DAY)),
            ],
        )
    }

    #[test]
    fn a_senior_buyer_at_a_large_active_company_scores_high() {
        TestHost::for_plugin::<LeadScoring>()
            .with_records([
                entity(
                    EntityKind::Company,
                    "co1",
                    [
                        field("name", text("Acme")),
                        field("size", FieldValue::Integer(5000)),
                    ],
                ),
                interaction("i1", 2),
                interaction("i2", 20),
                interaction("i3", 400),
                entity(
                    EntityKind::Deal,
                    "d1",
                    [
                        field("contact_ids", FieldValue::References(vec!["c1".to_owned()])),
                        field("status", FieldValue::Choice("open".to_owned())),
                    ],
                ),
            ])
            .install();
        let score = LeadScoring::score(
            "lead",
            &contact("VP of Sales", "ada@acme.com", Some("co1")),
            NOW,
        )
        .expect("a score");
        let reasons: Vec<(i32, &str)> = score
            .reasons
            .iter()
            .map(|r| (r.points, r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (25, "Senior title: VP of Sales"),
                (15, "Corporate email domain (acme.com)"),
                (20, "Large company: Acme (5000 employees)"),
                (10, "2 interaction(s) in the last 90 days"),
                (10, "Interaction in the last 14 days"),
                (20, "Has an open deal"),
            ]
        );
        assert_eq!(score.value, 100);
        assert_eq!(score.id, "c1");
    }

    #[test]
    fn a_cold_contact_with_a_free_email_scores_low_and_never_below_zero() {
        TestHost::for_plugin::<LeadScoring>().install();
        let score = LeadScoring::score("lead", &contact("Intern", "bob@gmail.com", None), NOW)
            .expect("a score");
        assert_eq!(score.value, 0);
        assert_eq!(score.reasons.len(), 1);
        assert_eq!(score.reasons[0].points, -5);
    }

    #[test]
    fn settings_change_the_rules() {
        TestHost::for_plugin::<LeadScoring>()
            .set("senior_points", FieldValue::Integer(40))
            .set(
                "senior_titles",
                FieldValue::Choices(vec!["captain".to_owned()]),
            )
            .install();
        let score = LeadScoring::score(
            "lead",
            &contact("Captain of Industry", "c@corp.example", None),
            NOW,
        )
        .expect("a score");
        assert_eq!(score.value, 55);
        let none = LeadScoring::score("lead", &contact("VP", "c@corp.example", None), NOW)
            .expect("a score");
        assert_eq!(
            none.value, 15,
            "VP is no longer senior once the list is replaced"
        );
    }

    #[test]
    fn unknown_scorers_and_kinds_are_not_scored() {
        TestHost::for_plugin::<LeadScoring>().install();
        assert!(LeadScoring::score("other", &contact("CEO", "a@b.example", None), NOW).is_none());
        let company = entity(EntityKind::Company, "co", []);
        assert!(LeadScoring::score("lead", &company, NOW).is_none());
    }
}
