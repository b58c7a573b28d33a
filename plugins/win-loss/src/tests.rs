//! Native tests of the win/loss report against `kith_sdk::testing::TestHost`: the figures for
//! each grouping, the filters and paging it asks of the host, exact money, and bad input.

use kith_sdk::testing::{self, TestHost, entity, parse_instant};
use kith_sdk::{
    ChartKind, Entity, EntityKind, Field, FieldValue, Plugin, ReportTable, SettingType, field,
    filter, value,
};

use super::{PLUGIN_ID, WinLoss};

const NULL: FieldValue = FieldValue::Null;

fn at(s: &str) -> i64 {
    parse_instant(s).expect("a time")
}

/// A deal closed (won or lost) at `closed`, with optional source, owner, reason and amount.
struct D<'a> {
    id: &'a str,
    status: &'a str,
    closed: &'a str,
    source: Option<&'a str>,
    owner: Option<&'a str>,
    reason: Option<&'a str>,
    amount: Option<(&'a str, &'a str)>,
}

const BASE: D<'static> = D {
    id: "",
    status: "won",
    closed: "2026-01-15T10:00:00Z",
    source: None,
    owner: None,
    reason: None,
    amount: None,
};

fn deal(d: D<'_>) -> Entity {
    let mut fields = vec![
        field("title", value::text(format!("Deal {}", d.id))),
        field("status", value::choice(d.status)),
        field("stage", value::choice(d.status)),
        field("pipeline", value::text("default")),
    ];
    if d.status != "open" {
        fields.push(field("closed_at", value::datetime(at(d.closed))));
    }
    let opt = |name: &str, v: Option<&str>| v.map(|s| field(name, value::text(s)));
    fields.extend(opt("source", d.source));
    fields.extend(opt("owner", d.owner));
    fields.extend(opt("lost_reason", d.reason));
    if let Some((amount, currency)) = d.amount {
        fields.push(field("amount", value::money(amount)));
        fields.push(field("currency", value::text(currency)));
    }
    entity(EntityKind::Deal, d.id, fields)
}

/// Three months of deals: January 2 won (one without an amount) and 1 lost, February none,
/// March 1 won and 2 lost, an April deal still open, and one won in 2025.
fn pipeline() -> Vec<Entity> {
    vec![
        deal(D {
            id: "a",
            source: Some("web"),
            owner: Some("ana"),
            amount: Some(("1200.50", "EUR")),
            ..BASE
        }),
        deal(D {
            id: "b",
            source: Some("referral"),
            owner: Some("bo"),
            ..BASE
        }),
        deal(D {
            id: "c",
            status: "lost",
            closed: "2026-01-31T23:59:59Z",
            source: Some("web"),
            owner: Some("ana"),
            reason: Some("price"),
            amount: Some(("99.5", "EUR")),
        }),
        deal(D {
            id: "d",
            closed: "2026-03-01T00:00:00Z",
            source: Some("web"),
            owner: Some("bo"),
            amount: Some(("100", "EUR")),
            ..BASE
        }),
        deal(D {
            id: "e",
            status: "lost",
            closed: "2026-03-10T08:00:00Z",
            owner: Some("ana"),
            reason: Some("price"),
            amount: Some(("0.01", "EUR")),
            ..BASE
        }),
        deal(D {
            id: "f",
            status: "lost",
            closed: "2026-03-20T08:00:00Z",
            source: Some("event"),
            reason: Some(" "),
            ..BASE
        }),
        deal(D {
            id: "open",
            status: "open",
            source: Some("web"),
            amount: Some(("5000", "EUR")),
            ..BASE
        }),
        deal(D {
            id: "old",
            closed: "2025-06-01T12:00:00Z",
            source: Some("web"),
            owner: Some("ana"),
            amount: Some(("7", "EUR")),
            ..BASE
        }),
    ]
}

fn params(pairs: &[(&str, &str)]) -> Vec<Field> {
    pairs
        .iter()
        .map(|(k, v)| field(k, value::text(*v)))
        .collect()
}

fn run(records: Vec<Entity>, p: &[(&str, &str)]) -> ReportTable {
    TestHost::for_plugin::<WinLoss>()
        .with_records(records)
        .install();
    WinLoss::run_report("summary", &params(p), 0).expect("the report runs")
}

fn columns(t: &ReportTable) -> Vec<&str> {
    t.columns.iter().map(|c| c.name.as_str()).collect()
}

fn int(i: i64) -> FieldValue {
    value::integer(i)
}

fn num(s: &str) -> FieldValue {
    value::number(s)
}

fn eur(s: &str) -> FieldValue {
    value::money(s)
}

fn text(s: &str) -> FieldValue {
    value::text(s)
}

#[test]
fn by_month_counts_win_rate_and_exact_amounts_with_empty_months_filled() {
    let t = run(
        pipeline(),
        &[
            ("from", "2026-01-01"),
            ("to", "2026-03-31"),
            ("by", "month"),
        ],
    );
    assert_eq!(
        columns(&t),
        [
            "month",
            "won",
            "lost",
            "win_rate",
            "won_amount_eur",
            "lost_amount_eur"
        ]
    );
    assert_eq!(
        t.rows,
        vec![
            vec![
                text("2026-01"),
                int(2),
                int(1),
                num("66.7"),
                eur("1200.50"),
                eur("99.50")
            ],
            vec![
                text("2026-02"),
                int(0),
                int(0),
                NULL,
                eur("0.00"),
                eur("0.00")
            ],
            vec![
                text("2026-03"),
                int(1),
                int(2),
                num("33.3"),
                eur("100.00"),
                eur("0.01")
            ],
        ]
    );
    assert_eq!(t.chart, ChartKind::Bar);
    assert_eq!(t.label_column.as_deref(), Some("month"));
    assert_eq!(t.value_columns, ["won", "lost"]);
}

#[test]
fn the_date_range_and_status_are_filters_the_host_applies() {
    run(
        pipeline(),
        &[
            ("from", "2026-01-01"),
            ("to", "2026-01-31"),
            ("pipeline", "default"),
        ],
    );
    let queries = TestHost::queries();
    assert_eq!(queries.len(), 1);
    assert_eq!(queries[0].kind, EntityKind::Deal);
    assert_eq!(queries[0].limit, 1000);
    assert_eq!(
        queries[0].filters,
        [
            filter("status", "in", "won,lost"),
            filter("closed_at", "gte", "2026-01-01"),
            filter("closed_at", "lt", "2026-02-01"),
            filter("pipeline", "eq", "default"),
        ],
        "the last day counts whole: up to, not including, the next midnight"
    );
}

#[test]
fn the_last_day_counts_whole_and_the_next_does_not() {
    let t = run(
        pipeline(),
        &[
            ("from", "2026-01-31"),
            ("to", "2026-02-28"),
            ("by", "total"),
        ],
    );
    // Only c, lost at 23:59:59 on 31 January; d closed at midnight on 1 March.
    assert_eq!(
        t.rows,
        vec![vec![
            text("2026-01-31 to 2026-02-28"),
            int(0),
            int(1),
            num("0.0"),
            eur("0"),
            eur("99.5"),
        ]]
    );
    assert_eq!(columns(&t)[0], "total");
}

#[test]
fn without_parameters_it_counts_every_closed_deal_by_month() {
    let t = run(pipeline(), &[]);
    let months: Vec<&FieldValue> = t.rows.iter().map(|r| &r[0]).collect();
    assert_eq!(months.len(), 10, "2025-06 to 2026-03, gaps included");
    assert_eq!(months[0], &text("2025-06"));
    assert_eq!(months[9], &text("2026-03"));
    assert_eq!(
        TestHost::queries()[0].filters,
        [filter("status", "in", "won,lost")]
    );
    let total = run(pipeline(), &[("by", "total")]);
    assert_eq!(
        total.rows,
        vec![vec![
            text("All closed deals"),
            int(4),
            int(3),
            num("57.1"),
            eur("1307.50"),
            eur("99.51"),
        ]],
        "the open deal never counts"
    );
}

#[test]
fn by_source_most_closed_first_and_missing_as_none() {
    let t = run(pipeline(), &[("from", "2026-01-01"), ("by", "source")]);
    assert_eq!(columns(&t)[0], "source");
    let rows: Vec<(&FieldValue, &FieldValue, &FieldValue, &FieldValue)> = t
        .rows
        .iter()
        .map(|r| (&r[0], &r[1], &r[2], &r[3]))
        .collect();
    assert_eq!(
        rows,
        vec![
            (&text("web"), &int(2), &int(1), &num("66.7")),
            (&text("(none)"), &int(0), &int(1), &num("0.0")),
            (&text("event"), &int(0), &int(1), &num("0.0")),
            (&text("referral"), &int(1), &int(0), &num("100.0")),
        ]
    );
    assert_eq!(t.label_column.as_deref(), Some("source"));
}

#[test]
fn by_owner() {
    let t = run(pipeline(), &[("from", "2026-01-01"), ("by", "owner")]);
    let rows: Vec<Vec<FieldValue>> = t.rows.iter().map(|r| r[..4].to_vec()).collect();
    assert_eq!(
        rows,
        vec![
            vec![text("ana"), int(1), int(2), num("33.3")],
            vec![text("bo"), int(2), int(0), num("100.0")],
            vec![text("(none)"), int(0), int(1), num("0.0")],
        ]
    );
}

#[test]
fn lost_reasons_with_their_share_of_losses() {
    let t = run(pipeline(), &[("by", "lost_reason")]);
    assert_eq!(
        columns(&t),
        ["lost_reason", "lost", "share", "lost_amount_eur"]
    );
    assert_eq!(
        t.rows,
        vec![
            vec![text("price"), int(2), num("66.7"), eur("99.51")],
            vec![text("(none)"), int(1), num("33.3"), eur("0.00")],
        ]
    );
    assert_eq!(t.chart, ChartKind::Pie);
    assert_eq!(t.value_columns, ["lost"]);
    assert_eq!(
        TestHost::queries()[0].filters,
        [filter("status", "in", "lost")],
        "won deals are not even read"
    );
}

#[test]
fn each_currency_gets_its_own_amount_columns() {
    let t = run(
        vec![
            deal(D {
                id: "a",
                amount: Some(("10.10", "usd")),
                ..BASE
            }),
            deal(D {
                id: "b",
                amount: Some(("5", "EUR")),
                ..BASE
            }),
            deal(D {
                id: "c",
                status: "lost",
                amount: Some(("0.90", "USD")),
                ..BASE
            }),
        ],
        &[("by", "total")],
    );
    assert_eq!(
        columns(&t),
        [
            "total",
            "won",
            "lost",
            "win_rate",
            "won_amount_eur",
            "lost_amount_eur",
            "won_amount_usd",
            "lost_amount_usd"
        ]
    );
    assert_eq!(
        t.rows[0][4..],
        [eur("5"), eur("0"), eur("10.10"), eur("0.90")]
    );
    assert_eq!(t.columns[6].label, "Won amount (USD)");
}

#[test]
fn deals_without_amounts_make_no_amount_columns() {
    let t = run(vec![deal(D { id: "a", ..BASE })], &[]);
    assert_eq!(columns(&t), ["month", "won", "lost", "win_rate"]);
    assert_eq!(
        t.rows,
        vec![vec![text("2026-01"), int(1), int(0), num("100.0")]]
    );
}

#[test]
fn no_closed_deals_is_an_empty_table() {
    let t = run(Vec::new(), &[("by", "source")]);
    assert_eq!(columns(&t), ["source", "won", "lost", "win_rate"]);
    assert!(t.rows.is_empty());
}

#[test]
fn it_pages_through_every_deal_with_the_cursor() {
    let deals: Vec<Entity> = (0..2_501)
        .map(|i| {
            let id = format!("d{i}");
            deal(D {
                id: &id,
                status: if i % 4 == 0 { "lost" } else { "won" },
                amount: Some(("0.10", "EUR")),
                ..BASE
            })
        })
        .collect();
    let t = run(deals, &[("by", "total")]);
    assert_eq!(
        t.rows,
        vec![vec![
            text("All closed deals"),
            int(1_875),
            int(626),
            num("75.0"),
            eur("187.50"),
            eur("62.60"),
        ]]
    );
    let cursors: Vec<Option<String>> = TestHost::queries()
        .into_iter()
        .map(|q| {
            assert_eq!(q.limit, 1000);
            q.cursor
        })
        .collect();
    assert_eq!(
        cursors,
        [None, Some("1000".to_owned()), Some("2000".to_owned())]
    );
}

#[test]
fn bad_parameters_are_reported() {
    TestHost::for_plugin::<WinLoss>().install();
    let err = |p: &[(&str, &str)]| WinLoss::run_report("summary", &params(p), 0).unwrap_err();
    assert_eq!(
        err(&[("from", "2026-02-30")]),
        "from: '2026-02-30' is not a date (YYYY-MM-DD)"
    );
    assert_eq!(
        err(&[("to", "March")]),
        "to: 'March' is not a date (YYYY-MM-DD)"
    );
    assert_eq!(
        err(&[("from", "2026-03-01"), ("to", "2026-02-01")]),
        "from (2026-03-01) is after to (2026-02-01)"
    );
    assert_eq!(
        err(&[("by", "weekday")]),
        "by: 'weekday' is not one of month, source, owner, lost_reason, total"
    );
    assert_eq!(
        WinLoss::run_report("funnel", &[], 0).unwrap_err(),
        "this plugin has no report 'funnel'"
    );
    assert!(TestHost::queries().is_empty(), "nothing read for bad input");
}

#[test]
fn parameters_may_come_as_choices_dates_or_blanks() {
    TestHost::for_plugin::<WinLoss>()
        .with_records(pipeline())
        .install();
    let p = vec![
        field("by", value::choice("Total")),
        field("from", value::date("2026-03-01")),
        field("to", value::text("  ")),
        field("pipeline", NULL),
    ];
    let t = WinLoss::run_report("summary", &p, 0).expect("runs");
    assert_eq!(
        t.rows[0][..4],
        [text("From 2026-03-01"), int(1), int(2), num("33.3")]
    );
}

#[test]
fn decimals_add_exactly() {
    let total = |amounts: &[&str]| {
        let deals = amounts.iter().enumerate().map(|(i, a)| {
            deal(D {
                id: &format!("d{i}"),
                amount: Some((a, "EUR")),
                ..BASE
            })
        });
        let t = run(deals.collect(), &[("by", "total")]);
        t.rows[0][4].clone()
    };
    assert_eq!(total(&["0.1", "0.2"]), eur("0.3"));
    assert_eq!(total(&["10", "0.05"]), eur("10.05"));
    assert_eq!(total(&["-1.50", "1"]), eur("-0.50"));
    assert_eq!(
        total(&["99999999999999999999.99", "0.01"]),
        eur("100000000000000000000.00")
    );
    for bad in ["", "1e3", "1.2.3", "abc", "."] {
        TestHost::for_plugin::<WinLoss>()
            .with_records([deal(D {
                id: "x",
                amount: Some((bad, "EUR")),
                ..BASE
            })])
            .install();
        assert_eq!(
            WinLoss::run_report("summary", &[], 0).unwrap_err(),
            format!("deal x: amount '{bad}' is not a decimal")
        );
    }
}

#[test]
fn dates_parse_strictly() {
    TestHost::for_plugin::<WinLoss>().install();
    let from = |s: &str| WinLoss::run_report("summary", &params(&[("from", s)]), 0);
    for good in ["1970-01-01", "2024-02-29"] {
        assert!(from(good).is_ok(), "{good}");
    }
    for bad in [
        "2023-02-29",
        "2026-04-31",
        "2026-13-01",
        "2026-1-01",
        "26-01-01x",
    ] {
        assert_eq!(
            from(bad).unwrap_err(),
            format!("from: '{bad}' is not a date (YYYY-MM-DD)")
        );
    }
}

#[test]
fn describe_declares_one_report_and_reads_deals_only() {
    let info = WinLoss::describe();
    assert_eq!(info.capabilities.read, vec![EntityKind::Deal]);
    assert!(info.capabilities.actions.is_empty());
    assert!(info.subscriptions.is_empty() && info.settings.is_empty());
    assert_eq!(info.reports.len(), 1);
    let report = &info.reports[0];
    assert_eq!(report.id, "summary");
    let parameters: Vec<(&str, SettingType, &FieldValue)> = report
        .parameters
        .iter()
        .map(|p| (p.name.as_str(), p.setting_type, &p.default))
        .collect();
    assert_eq!(
        parameters,
        vec![
            ("from", SettingType::Text, &text("")),
            ("to", SettingType::Text, &text("")),
            ("by", SettingType::Choice, &value::choice("month")),
            ("pipeline", SettingType::Text, &text("")),
        ]
    );
    assert_eq!(
        report.parameters[2].options,
        ["month", "source", "owner", "lost_reason", "total"]
    );
}

/// The manifest is what an admin reviews before install, and the host refuses a plugin whose
/// `describe` disagrees with it.
#[test]
fn the_manifest_matches_describe() {
    let manifest = include_str!("../kith-plugin.toml");
    let problems = testing::manifest_mismatches::<WinLoss>(PLUGIN_ID, manifest);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(!manifest.contains("[[settings]]") && !manifest.contains("subscriptions"));
}
