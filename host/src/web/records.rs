//! The record pages: for every kind a list (search, filters, sort, paging, custom-field
//! columns), a detail page (every field, scores with reasons, related records, the timeline,
//! and forms to log an interaction or add a task), and create, edit and delete forms whose
//! validation errors show beside their field. Also the search page behind the box on every
//! page.
//!
//! Every read goes through [`read_as`] (the caller's access rule, in the core) and every
//! change through [`write`] with the same commands as the JSON API, so a page can show or
//! change nothing the API would not.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kith_core::{
    AnyRecord, Command, EntityKind, FieldDef, Filter, FilterOp, Id, Outcome, Page, Query, Role,
    Scoped, SortKey, StoredScore, TimelineItem, Value,
};
use maud::{Markup, html};

use super::fields::{self, Choices, FormField, Posted};
use super::{CsrfPosted, html_page, local_path};
use crate::api::auth::{Caller, Need, Routes};
use crate::api::{ApiError, AppState, parse_id, parse_query, read_as, write};

/// The kinds with pages, in menu order.
pub(crate) const PAGE_KINDS: [EntityKind; 6] = [
    EntityKind::Contact,
    EntityKind::Company,
    EntityKind::Deal,
    EntityKind::Ticket,
    EntityKind::Task,
    EntityKind::Interaction,
];

/// Rows per list page.
const PAGE_SIZE: usize = 25;

pub(super) fn routes() -> Routes {
    use Method as M;
    let mut routes = Routes::new().route("/search", &[(M::GET, Need::Viewer)], get(search));
    for kind in PAGE_KINDS {
        let base = format!("/{}", kind.plural());
        routes = routes
            .route(
                &base,
                &[(M::GET, Need::Viewer), (M::POST, Need::Agent)],
                get(move |s, c, q| list_page(kind, s, c, q))
                    .post(move |s, c, f| create(kind, s, c, f)),
            )
            .route(
                &format!("{base}/new"),
                &[(M::GET, Need::Agent)],
                get(move |s, c, q| new_page(kind, s, c, q)),
            )
            .route(
                &format!("{base}/{{id}}"),
                &[(M::GET, Need::Viewer), (M::POST, Need::Agent)],
                get(move |s, c, p| detail_page(kind, s, c, p))
                    .post(move |s, c, p, f| update(kind, s, c, p, f)),
            )
            .route(
                &format!("{base}/{{id}}/edit"),
                &[(M::GET, Need::Agent)],
                get(move |s, c, p| edit_page(kind, s, c, p)),
            )
            .route(
                &format!("{base}/{{id}}/delete"),
                &[(M::POST, Need::Agent)],
                post(move |s, c, p, f| delete(kind, s, c, p, f)),
            );
    }
    routes
}

/// The page title for a kind's list: `Contacts`.
pub(crate) fn title(kind: EntityKind) -> String {
    fields::label_of(kind.plural())
}

/// The columns a kind's list shows before its custom fields.
fn columns(kind: EntityKind) -> &'static [&'static str] {
    match kind {
        EntityKind::Contact => &["email", "phone", "title", "company_id", "lifecycle_stage"],
        EntityKind::Company => &["domain", "industry", "city", "country", "size"],
        EntityKind::Deal => &[
            "amount",
            "currency",
            "stage",
            "status",
            "expected_close",
            "company_id",
        ],
        EntityKind::Ticket => &[
            "status",
            "priority",
            "assignee",
            "requester_id",
            "resolution_due",
        ],
        EntityKind::Task => &["due_at", "assignee", "done", "contact_id", "deal_id"],
        EntityKind::Interaction => &["kind", "direction", "occurred_at", "contact_id"],
    }
}

/// The field a row's name comes from (for sorting by it).
fn name_field(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Contact => "last_name",
        EntityKind::Company => "name",
        EntityKind::Deal | EntityKind::Task => "title",
        EntityKind::Ticket | EntityKind::Interaction => "subject",
    }
}

/// Preset views of a list, as (key, label, extra query): the tickets queue and the task lists.
fn views(
    kind: EntityKind,
    caller: &Caller,
    now: kith_core::Timestamp,
) -> Vec<(&'static str, &'static str, String)> {
    let day = now.date_naive();
    let start = day
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().to_rfc3339())
        .unwrap_or_default();
    let end = day
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().to_rfc3339())
        .unwrap_or_default();
    let now = now.to_rfc3339();
    let me = caller.user.id.to_string();
    let enc = |s: &str| super::encode(s);
    match kind {
        EntityKind::Task => {
            let mut v = vec![(
                "mine",
                "Mine",
                format!("assignee={me}&done=false&sort=due_at"),
            )];
            if let Some(team) = &caller.user.team {
                v.push((
                    "team",
                    "My team's",
                    format!("team={}&done=false&sort=due_at", enc(team)),
                ));
            }
            v.extend([
                (
                    "today",
                    "Due today",
                    format!(
                        "done=false&due_at[gte]={}&due_at[lt]={}&sort=due_at",
                        enc(&start),
                        enc(&end)
                    ),
                ),
                (
                    "overdue",
                    "Overdue",
                    format!("done=false&due_at[lt]={}&sort=due_at", enc(&now)),
                ),
                ("done", "Done", "done=true&sort=-completed_at".to_owned()),
                ("all", "All", String::new()),
            ]);
            v
        }
        EntityKind::Ticket => vec![
            (
                "queue",
                "Queue",
                "status[in]=open,pending&sort=resolution_due".to_owned(),
            ),
            (
                "mine",
                "Assigned to me",
                format!("assignee={me}&status[in]=open,pending&sort=resolution_due"),
            ),
            (
                "urgent",
                "Urgent and high",
                "priority[in]=urgent,high&status[in]=open,pending&sort=resolution_due".to_owned(),
            ),
            (
                "overdue",
                "Overdue",
                format!(
                    "status[in]=open,pending&resolution_due[lt]={}&sort=resolution_due",
                    enc(&now)
                ),
            ),
            (
                "resolved",
                "Resolved",
                "status[in]=resolved,closed&sort=-resolved_at".to_owned(),
            ),
            ("all", "All", String::new()),
        ],
        _ => Vec::new(),
    }
}

/// Ids referenced by `records` (built-in references and reference custom fields), by kind.
fn references(records: &[AnyRecord], defs: &[FieldDef]) -> Vec<(EntityKind, Id)> {
    let mut out = BTreeSet::new();
    for r in records {
        for f in r.kind().fields() {
            if let Some(kind) = fields::ref_kind(f.name) {
                collect_ids(r.get(f.name), kind, &mut out);
            }
        }
        for d in defs.iter().filter(|d| d.reference_kind.is_some()) {
            if let Some(kind) = d.reference_kind {
                collect_ids(r.get(&format!("custom.{}", d.name)), kind, &mut out);
            }
        }
    }
    out.into_iter().collect()
}

fn collect_ids(v: Option<Value>, kind: EntityKind, out: &mut BTreeSet<(EntityKind, Id)>) {
    match v {
        Some(Value::Ref(id)) => {
            out.insert((kind, id));
        }
        Some(Value::List(items)) => {
            for i in items {
                collect_ids(Some(i), kind, out);
            }
        }
        _ => {}
    }
}

/// The names of the referenced records the caller may see (the others stay unnamed), and
/// of every user (owners and assignees are user ids).
fn names(s: &Scoped, refs: &[(EntityKind, Id)]) -> BTreeMap<Id, String> {
    let mut names: BTreeMap<Id, String> = s
        .store()
        .directory()
        .users()
        .iter()
        .map(|u| (u.id, u.name.clone()))
        .collect();
    names.extend(
        refs.iter()
            .filter_map(|(k, id)| s.get(*k, *id).ok().map(|r| (*id, r.summary()))),
    );
    names
}

/// The kind a field of `kind` points at, built-in or custom.
fn target_kind(field: &str, defs: &[FieldDef]) -> Option<EntityKind> {
    match field.strip_prefix("custom.") {
        Some(name) => defs
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.reference_kind),
        None => fields::ref_kind(field),
    }
}

/// Label of a column: a built-in field's, or a custom field's own label.
fn column_label(field: &str, defs: &[FieldDef]) -> String {
    match field.strip_prefix("custom.") {
        Some(name) => defs
            .iter()
            .find(|d| d.name == name)
            .map_or_else(|| name.to_owned(), |d| d.label.clone()),
        None => fields::label_of(field),
    }
}

/// How an active filter reads on a list page, in the words of the filter form: "Stage is
/// proposal", "Amount at least 100", "Company is Acme Ltd" (a record id is shown by its name
/// when the page has it).
fn chip_text(key: &str, value: &str, defs: &[FieldDef], names: &BTreeMap<Id, String>) -> String {
    let (field, op) = match key.split_once('[') {
        Some((field, rest)) => (field, rest.strip_suffix(']').unwrap_or(rest)),
        None => (key, "eq"),
    };
    let op = match op {
        "eq" => "is",
        "ne" => "is not",
        "gt" => "more than",
        "gte" => "at least",
        "lt" => "less than",
        "lte" => "at most",
        "in" => "is one of",
        other => other,
    };
    let shown = value
        .parse::<Id>()
        .ok()
        .and_then(|id| names.get(&id).cloned())
        .unwrap_or_else(|| value.to_owned());
    format!("{} {op} {shown}", column_label(field, defs))
}

/// What a list page read.
struct Listing {
    page: Page<AnyRecord>,
    total: u64,
    defs: Vec<FieldDef>,
    names: BTreeMap<Id, String>,
}

async fn list_page(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Response {
    let raw = raw.unwrap_or_default();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    // The filter form's three controls become one `field[op]=value` parameter, in a URL
    // that can be bookmarked.
    if let Some((_, field)) = params.iter().find(|(k, _)| k == "filter_field") {
        let op = params
            .iter()
            .find(|(k, _)| k == "filter_op")
            .map_or("eq", |(_, v)| v.as_str());
        let value = params
            .iter()
            .find(|(k, _)| k == "filter_value")
            .map_or("", |(_, v)| v.as_str());
        let key = format!("{field}[{op}]");
        let add: Vec<(&str, &str)> = if field.is_empty() {
            Vec::new()
        } else {
            vec![(key.as_str(), value)]
        };
        let rest = requery(
            &raw,
            &[
                "filter_field",
                "filter_op",
                "filter_value",
                "cursor",
                "view",
            ],
            &add,
        );
        return Redirect::to(&format!("/{}?{rest}", kind.plural())).into_response();
    }
    let now = state.store.clock().now();
    let presets = views(kind, &caller, now);
    let view = params
        .iter()
        .find(|(k, _)| k == "view")
        .map(|(_, v)| v.clone());
    let own = requery(&raw, &["view"], &[]);
    // A view's query applies when nothing else was asked; a plain list opens on the first.
    let (query, current_view) = if own.is_empty() {
        let chosen = match &view {
            Some(v) => presets.iter().find(|(key, _, _)| key == v),
            None => presets.first(),
        };
        chosen.map_or((String::new(), None), |(key, _, q)| (q.clone(), Some(*key)))
    } else {
        (own, None)
    };
    let result = async {
        let mut q = parse_query(Some(&query))?;
        q.limit = PAGE_SIZE;
        read_as(&state.store, &caller, move |s| {
            let defs = s.store().field_defs(kind)?;
            let page = s.list(kind, &q)?;
            let total = s.count(
                kind,
                &Query {
                    filters: q.filters.clone(),
                    search: q.search.clone(),
                    ..Query::default()
                },
            )?;
            let refs = references(&page.items, &defs);
            let names = names(s, &refs);
            Ok(Listing {
                page,
                total,
                defs,
                names,
            })
        })
        .await
    }
    .await;
    let ctx = ListContext {
        kind,
        caller: &caller,
        raw: &query,
        presets: &presets,
        current_view,
        now,
    };
    let (status, body) = match result {
        Ok(l) => (StatusCode::OK, list_view(&ctx, &l, None)),
        Err(e) => {
            let empty = Listing {
                page: Page {
                    items: Vec::new(),
                    next_cursor: None,
                },
                total: 0,
                defs: Vec::new(),
                names: BTreeMap::new(),
            };
            (e.status(), list_view(&ctx, &empty, Some(e.message())))
        }
    };
    html_page(status, &title(kind), Some(&caller), body)
}

/// What a list page is showing.
struct ListContext<'a> {
    kind: EntityKind,
    caller: &'a Caller,
    /// The query the list ran (a view's, or the URL's).
    raw: &'a str,
    presets: &'a [(&'static str, &'static str, String)],
    current_view: Option<&'static str>,
    now: kith_core::Timestamp,
}

/// The query string without `drop` keys, plus `add`.
fn requery(raw: &str, drop: &[&str], add: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        let base = k.split('[').next().unwrap_or(&k);
        if !drop.contains(&k.as_ref()) && !drop.contains(&base) {
            s.append_pair(&k, &v);
        }
    }
    for (k, v) in add {
        s.append_pair(k, v);
    }
    s.finish()
}

fn list_view(ctx: &ListContext<'_>, l: &Listing, error: Option<&str>) -> Markup {
    let ListContext {
        kind,
        caller,
        raw,
        presets,
        current_view,
        now,
    } = *ctx;
    let plural = kind.plural();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let sort = get("sort");
    let filters: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "q" | "sort" | "cursor" | "limit" | "view"))
        .collect();
    let custom_cols: Vec<String> = l
        .defs
        .iter()
        .filter(|d| !matches!(d.field_type, kith_core::FieldType::LongText))
        .map(|d| format!("custom.{}", d.name))
        .collect();
    let cols: Vec<String> = columns(kind)
        .iter()
        .map(|c| (*c).to_owned())
        .chain(custom_cols)
        .collect();
    let filterable: Vec<(String, String)> = kind
        .fields()
        .iter()
        .filter(|f| f.name != "id")
        .map(|f| (f.name.to_owned(), fields::label_of(f.name)))
        .chain(
            l.defs
                .iter()
                .map(|d| (format!("custom.{}", d.name), d.label.clone())),
        )
        .collect();
    let sort_link = |field: &str| {
        let next = if sort == field {
            format!("-{field}")
        } else {
            field.to_owned()
        };
        format!(
            "/{plural}?{}",
            requery(raw, &["sort", "cursor", "view"], &[("sort", &next)])
        )
    };
    let sorted = |field: &str| {
        if sort == field {
            Some("ascending")
        } else if sort.strip_prefix('-') == Some(field) {
            Some("descending")
        } else {
            None
        }
    };
    let name_col = name_field(kind);
    // Tasks are ticked off from the list, which is shown again afterwards.
    let quick_done = kind == EntityKind::Task && caller.role() >= Role::Agent;
    let here = match current_view {
        Some(v) => format!("/{plural}?view={v}"),
        None => format!("/{plural}?{raw}"),
    };
    html! {
        div.page-head {
            h1 { (title(kind)) }
            @if caller.role() >= Role::Agent {
                a.button href=(format!("/{plural}/new")) { "New " (kind.name()) }
            }
            @if kind == EntityKind::Deal {
                a.button.secondary href="/deals/board" { "Pipeline board" }
            }
        }
        @if !presets.is_empty() {
            nav.views aria-label="Views" {
                @for (key, label, _) in presets {
                    a href=(format!("/{plural}?view={key}")) aria-current=[(current_view == Some(*key)).then_some("page")] { (label) }
                }
            }
        }
        form.filters method="get" action=(format!("/{plural}")) role="search" {
            @for (k, v) in &filters {
                input type="hidden" name=(k) value=(v);
            }
            @if !sort.is_empty() { input type="hidden" name="sort" value=(sort); }
            div.filter-row {
                div {
                    label for="list-q" { "Search " (plural) }
                    input #list-q type="search" name="q" value=(get("q"));
                }
                div {
                    label for="filter-field" { "Filter field" }
                    select #filter-field name="filter_field" {
                        option value="" { "—" }
                        @for (name, label) in &filterable { option value=(name) { (label) } }
                    }
                }
                div {
                    label for="filter-op" { "Condition" }
                    select #filter-op name="filter_op" {
                        option value="eq" { "is" }
                        option value="ne" { "is not" }
                        option value="contains" { "contains" }
                        option value="gt" { "more than" }
                        option value="gte" { "at least" }
                        option value="lt" { "less than" }
                        option value="lte" { "at most" }
                    }
                }
                div {
                    label for="filter-value" { "Value" }
                    input #filter-value type="text" name="filter_value";
                }
                div { button type="submit" { "Apply" } }
            }
        }
        @if !filters.is_empty() {
            p.chips {
                "Filtered by: "
                @for (k, v) in &filters {
                    @let text = chip_text(k, v, &l.defs, &l.names);
                    span.chip {
                        (text) " "
                        a href=(format!("/{plural}?{}", requery(raw, &[k.as_str(), "cursor", "view"], &[]))) aria-label=(format!("Remove filter: {text}")) { "×" }
                    }
                }
            }
        }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        p.muted { (l.total) " " (if l.total == 1 { kind.name() } else { plural }) }
        @if l.page.items.is_empty() {
            p { "Nothing here yet." }
        } @else {
            div.table-wrap {
                table.records {
                    thead {
                        tr {
                            th aria-sort=[sorted(name_col)] { a href=(sort_link(name_col)) { "Name" } }
                            @for c in &cols {
                                th aria-sort=[sorted(c)] { a href=(sort_link(c)) { (column_label(c, &l.defs)) } }
                            }
                            @if quick_done { th { span.sr { "Action" } } }
                        }
                    }
                    tbody {
                        @for r in &l.page.items {
                            tr {
                                td { a href=(format!("/{plural}/{}", r.id())) { (display_name(r)) } }
                                @for c in &cols {
                                    td class=(cell_class(r, c, now)) {
                                        (fields::show(&r.get(c).unwrap_or(Value::Null), target_kind(c, &l.defs), &l.names))
                                    }
                                }
                                @if quick_done {
                                    td {
                                        @if r.get("done") == Some(Value::Bool(false)) {
                                            form.inline method="post" action=(format!("/tasks/{}", r.id())) {
                                                input type="hidden" name="csrf" value=(caller.csrf().unwrap_or(""));
                                                input type="hidden" name="done" value="true";
                                                input type="hidden" name="back" value=(here);
                                                button.small type="submit" aria-label=(format!("Mark {} done", display_name(r))) { "Done" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if params.iter().any(|(k, _)| k == "cursor") {
                a href=(format!("/{plural}?{}", requery(raw, &["cursor"], &[]))) { "First page" }
            }
            @if let Some(c) = &l.page.next_cursor {
                a href=(format!("/{plural}?{}", requery(raw, &["cursor", "view"], &[("cursor", c)]))) rel="next" { "Next page" }
            }
        }
    }
}

/// A row's name, never empty.
pub(crate) fn display_name(r: &AnyRecord) -> String {
    let s = r.summary();
    if s.trim().is_empty() {
        format!("(untitled {})", r.kind().name())
    } else {
        s
    }
}

/// A cell's class: SLA due times close (within four hours) or past are highlighted while the
/// ticket is open.
fn cell_class(r: &AnyRecord, field: &str, now: kith_core::Timestamp) -> &'static str {
    if !matches!(field, "resolution_due" | "first_response_due" | "due_at") {
        return "";
    }
    let open = match r {
        AnyRecord::Ticket(_) => matches!(
            r.get("status"),
            Some(Value::Text(s)) if s == "open" || s == "pending"
        ),
        AnyRecord::Task(t) => !t.done,
        _ => false,
    };
    match r.get(field) {
        Some(Value::DateTime(due)) if open => {
            if due < now {
                "overdue"
            } else if due - now < chrono::Duration::hours(4) {
                "due-soon"
            } else {
                ""
            }
        }
        _ => "",
    }
}

/// Related records a detail page lists, as (heading, kind, filter field, value).
fn related(kind: EntityKind) -> Vec<(&'static str, EntityKind, &'static str)> {
    match kind {
        EntityKind::Contact => vec![
            ("Deals", EntityKind::Deal, "contact_ids"),
            ("Tickets", EntityKind::Ticket, "requester_id"),
            ("Tasks", EntityKind::Task, "contact_id"),
        ],
        EntityKind::Company => vec![
            ("People", EntityKind::Contact, "company_id"),
            ("Deals", EntityKind::Deal, "company_id"),
            ("Tickets", EntityKind::Ticket, "company_id"),
            ("Tasks", EntityKind::Task, "company_id"),
        ],
        EntityKind::Deal => vec![("Tasks", EntityKind::Task, "deal_id")],
        EntityKind::Ticket => vec![("Tasks", EntityKind::Task, "ticket_id")],
        EntityKind::Interaction | EntityKind::Task => Vec::new(),
    }
}

/// The field interactions and tasks use to link to a record of `kind`.
fn link_field(kind: EntityKind) -> Option<&'static str> {
    match kind {
        EntityKind::Contact => Some("contact_id"),
        EntityKind::Company => Some("company_id"),
        EntityKind::Deal => Some("deal_id"),
        EntityKind::Ticket => Some("ticket_id"),
        EntityKind::Interaction | EntityKind::Task => None,
    }
}

/// What a detail page read.
struct Detail {
    record: AnyRecord,
    scores: Vec<(String, StoredScore)>,
    defs: Vec<FieldDef>,
    related: Vec<(&'static str, EntityKind, Vec<AnyRecord>)>,
    timeline: Vec<TimelineItem>,
    names: BTreeMap<Id, String>,
}

async fn load_detail(
    state: &AppState,
    caller: &Caller,
    kind: EntityKind,
    id: Id,
) -> Result<Detail, ApiError> {
    read_as(&state.store, caller, move |s| {
        let (record, scores) = s.get_with_scores(kind, id)?;
        let defs = s.store().field_defs(kind)?;
        let mut all = vec![record.clone()];
        let mut rel = Vec::new();
        for (heading, k, field) in related(kind) {
            let q = Query {
                filters: vec![Filter {
                    field: field.to_owned(),
                    op: FilterOp::Eq,
                    value: id.to_string(),
                }],
                sort: Some(SortKey::parse("-created_at")),
                limit: 20,
                ..Query::default()
            };
            let items = s.list(k, &q)?.items;
            all.extend(items.iter().cloned());
            rel.push((heading, k, items));
        }
        let timeline = s.timeline(kind, id, 50, None)?.items;
        let mut refs = references(&all, &defs);
        refs.extend(
            timeline
                .iter()
                .filter_map(|t| t.record.as_ref())
                .flat_map(|r| references(std::slice::from_ref(r), &[])),
        );
        let names = names(s, &refs);
        Ok(Detail {
            record,
            scores,
            defs,
            related: rel,
            timeline,
            names,
        })
    })
    .await
}

async fn detail_page(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Response {
    detail_response(&state, &caller, kind, &raw, None).await
}

/// A detail page, with `notice` (an error from one of its forms) shown at the top.
async fn detail_response(
    state: &AppState,
    caller: &Caller,
    kind: EntityKind,
    raw: &str,
    notice: Option<ApiError>,
) -> Response {
    let loaded = match parse_id(kind, raw) {
        Ok(id) => load_detail(state, caller, kind, id).await,
        Err(e) => Err(e),
    };
    match loaded {
        Ok(d) => {
            let status = notice.as_ref().map_or(StatusCode::OK, ApiError::status);
            let body = detail_view(kind, caller, &d, notice.as_ref().map(ApiError::message));
            html_page(status, &display_name(&d.record), Some(caller), body)
        }
        Err(e) => error_page(caller, &e),
    }
}

/// A page saying what went wrong, with the error's status.
pub(crate) fn error_page(caller: &Caller, e: &ApiError) -> Response {
    let body = html! {
        section.card {
            h1 { "Not available" }
            p.error role="alert" { (e.message()) }
            p { a href="/" { "Back to the dashboard" } }
        }
    };
    html_page(e.status(), "Not available", Some(caller), body)
}

fn detail_view(kind: EntityKind, caller: &Caller, d: &Detail, error: Option<&str>) -> Markup {
    let r = &d.record;
    let id = r.id();
    let plural = kind.plural();
    let csrf = caller.csrf().unwrap_or("");
    let may_change = caller.role() >= Role::Agent;
    let builtin: Vec<_> = kind
        .fields()
        .into_iter()
        .filter(|f| f.name != "id")
        .collect();
    html! {
        div.page-head {
            h1 { (display_name(r)) }
            @if may_change {
                a.button href=(format!("/{plural}/{id}/edit")) { "Edit" }
                form.inline method="post" action=(format!("/{plural}/{id}/delete")) {
                    input type="hidden" name="csrf" value=(csrf);
                    button.danger type="submit" data-confirm=(format!("Delete this {}?", kind.name())) { "Delete" }
                }
            }
        }
        p.muted { a href=(format!("/{plural}")) { "All " (plural) } }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        div.detail {
            section.card aria-labelledby="fields-h" {
                h2 #fields-h { "Details" }
                dl {
                    @for f in &builtin {
                        @let v = r.get(f.name).unwrap_or(Value::Null);
                        @if !v.is_empty() {
                            dt { (fields::label_of(f.name)) }
                            dd { (fields::show(&v, fields::ref_kind(f.name), &d.names)) }
                        }
                    }
                    @for def in &d.defs {
                        @let v = r.get(&format!("custom.{}", def.name)).unwrap_or(Value::Null);
                        dt { (def.label) @if let Some(p) = &def.plugin { " " span.badge title=(format!("from the plugin {p}")) { (p) } } }
                        dd { (fields::show(&v, def.reference_kind, &d.names)) }
                    }
                }
            }
            @if !d.scores.is_empty() {
                section.card aria-labelledby="scores-h" {
                    h2 #scores-h { "Scores" }
                    @for (name, s) in &d.scores {
                        h3 { (name) ": " strong.score { (s.value) } " / 100" }
                        ul {
                            @for reason in &s.reasons {
                                li { (format!("{:+}", reason.points)) " " (reason.reason) }
                            }
                        }
                    }
                }
            }
            @for (heading, k, items) in &d.related {
                section.card {
                    h2 { (heading) }
                    @if items.is_empty() {
                        p.muted { "None." }
                    } @else {
                        ul.related {
                            @for item in items {
                                li {
                                    a href=(format!("/{}/{}", k.plural(), item.id())) { (display_name(item)) }
                                    (related_note(item))
                                }
                            }
                        }
                    }
                }
            }
            @if let (true, Some(link)) = (may_change, link_field(kind)) {
                section.card aria-labelledby="log-h" {
                    h2 #log-h { "Log an interaction" }
                    form method="post" action="/interactions" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="back" value=(format!("/{plural}/{id}"));
                        input type="hidden" name=(link) value=(id.to_string());
                        label for="log-kind" { "Type" }
                        select #log-kind name="kind" required {
                            @for k in ["note", "call", "email", "meeting", "chat", "sms"] {
                                option value=(k) { (fields::label_of(k)) }
                            }
                        }
                        label for="log-direction" { "Direction" }
                        select #log-direction name="direction" {
                            option value="" { "—" }
                            option value="outbound" { "Outbound" }
                            option value="inbound" { "Inbound" }
                        }
                        label for="log-subject" { "Subject" }
                        input #log-subject type="text" name="subject";
                        label for="log-body" { "Notes" }
                        textarea #log-body name="body" rows="3" {}
                        button type="submit" { "Log interaction" }
                    }
                }
                section.card aria-labelledby="task-h" {
                    h2 #task-h { "Add a task" }
                    form method="post" action="/tasks" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="back" value=(format!("/{plural}/{id}"));
                        input type="hidden" name=(link) value=(id.to_string());
                        label for="task-title" { "Task" }
                        input #task-title type="text" name="title" required;
                        label for="task-due" { "Due (UTC)" }
                        input #task-due type="datetime-local" name="due_at";
                        button type="submit" { "Add task" }
                    }
                }
            }
            section.card.timeline aria-labelledby="timeline-h" {
                h2 #timeline-h { "Timeline" }
                @if d.timeline.is_empty() {
                    p.muted { "Nothing has happened yet." }
                } @else {
                    ol.timeline {
                        @for item in &d.timeline {
                            li {
                                time datetime=(item.at.to_rfc3339()) { (item.at.format("%Y-%m-%d %H:%M")) }
                                " "
                                span.badge { (item.item_type) }
                                " "
                                @match &item.record {
                                    Some(rec) => a href=(format!("/{}/{}", rec.kind().plural(), rec.id())) { (item.summary) },
                                    None => span { (item.summary) },
                                }
                                @if let Some(AnyRecord::Interaction(i)) = &item.record {
                                    @if let Some(b) = &i.body { p.body { (b) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A short note after a related record's name: a deal's stage and amount, a ticket's
/// status, a task's due time.
fn related_note(r: &AnyRecord) -> Markup {
    html! {
        @match r {
            AnyRecord::Deal(d) => span.muted { " · " (d.stage) @if let (Some(a), Some(c)) = (d.amount, &d.currency) { " · " (a) " " (c) } },
            AnyRecord::Ticket(_) => span.muted { " · " (r.get("status").unwrap_or(Value::Null)) " · " (r.get("priority").unwrap_or(Value::Null)) },
            AnyRecord::Task(t) => span.muted {
                @if t.done { " · done" }
                @else if let Some(due) = t.due_at { " · due " (due.format("%Y-%m-%d %H:%M")) }
            },
            _ => {}
        }
    }
}

/// What a form needs besides the values: the fields, and with `choices` the records a
/// reference field picks from (needed to show a form, not to read a posted one).
async fn form_fields(
    state: &AppState,
    caller: &Caller,
    kind: EntityKind,
    choices: bool,
) -> Result<Vec<FormField>, ApiError> {
    read_as(&state.store, caller, move |s| {
        let defs = s.store().field_defs(kind)?;
        let pipelines = s.store().pipelines()?;
        let mut wanted: BTreeSet<EntityKind> = kind
            .fields()
            .iter()
            .filter_map(|f| fields::ref_kind(f.name))
            .collect();
        wanted.extend(defs.iter().filter_map(|d| d.reference_kind));
        if !choices {
            wanted.clear();
        }
        let mut choices = Choices::new();
        for k in wanted {
            // Enough to pick from on a form; a longer list is searched on its own page.
            let q = Query {
                sort: Some(SortKey::parse(name_field(k))),
                limit: 500,
                ..Query::default()
            };
            let options = s
                .list(k, &q)?
                .items
                .iter()
                .map(|r| (r.id().to_string(), display_name(r)))
                .collect();
            choices.insert(k, options);
        }
        Ok(fields::form_fields(kind, &defs, &pipelines, &choices))
    })
    .await
}

/// A create or edit form: `id` is the record being edited, `None` for a new one.
fn form_view(
    kind: EntityKind,
    caller: &Caller,
    id: Option<Id>,
    fields_: &[FormField],
    values: &BTreeMap<String, String>,
    error: Option<&ApiError>,
) -> Markup {
    let plural = kind.plural();
    let (action, heading) = match id {
        Some(id) => (format!("/{plural}/{id}"), format!("Edit {}", kind.name())),
        None => (format!("/{plural}"), format!("New {}", kind.name())),
    };
    let field = error.and_then(|e| fields::error_field(e.field()));
    // An error that belongs to no field on the form is shown above it.
    let placed = field.as_deref().is_some_and(|f| {
        fields_
            .iter()
            .any(|ff| ff.name == f || ff.name.strip_prefix("custom.") == Some(f))
    });
    html! {
        section.card {
            h1 { (heading) }
            @if let Some(e) = error {
                @if placed {
                    p.error role="alert" { "Please correct the field marked below." }
                } @else {
                    p.error role="alert" { (e.message()) }
                }
            }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(caller.csrf().unwrap_or(""));
                @if let Some(back) = values.get("back") { input type="hidden" name="back" value=(back); }
                (fields::controls(fields_, values, field.as_deref().zip(error.map(ApiError::message))))
                div.actions {
                    button type="submit" { "Save" }
                    a href=(id.map_or_else(|| format!("/{plural}"), |id| format!("/{plural}/{id}"))) { "Cancel" }
                }
            }
        }
    }
}

async fn new_page(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Response {
    match form_fields(&state, &caller, kind, true).await {
        Ok(f) => {
            // Links given in the URL (`/tasks/new?deal_id=...`) start filled in.
            let values: BTreeMap<String, String> =
                url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                    .into_owned()
                    .collect();
            let body = form_view(kind, &caller, None, &f, &values, None);
            html_page(
                StatusCode::OK,
                &format!("New {}", kind.name()),
                Some(&caller),
                body,
            )
        }
        Err(e) => error_page(&caller, &e),
    }
}

async fn edit_page(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Response {
    let loaded = async {
        let id = parse_id(kind, &raw)?;
        let record = read_as(&state.store, &caller, move |s| s.get(kind, id)).await?;
        let f = form_fields(&state, &caller, kind, true).await?;
        Ok::<_, ApiError>((record, f))
    }
    .await;
    match loaded {
        Ok((record, f)) => {
            let values = f
                .iter()
                .map(|ff| (ff.name.clone(), fields::form_value(&record, &ff.name)))
                .collect();
            let body = form_view(kind, &caller, Some(record.id()), &f, &values, None);
            html_page(
                StatusCode::OK,
                &format!("Edit {}", display_name(&record)),
                Some(&caller),
                body,
            )
        }
        Err(e) => error_page(&caller, &e),
    }
}

/// Where to go after a form: its `back` field when it is a path on this site.
fn back(form: &Posted) -> Option<String> {
    fields::posted(form, "back")
        .map(|b| local_path(Some(b)).to_owned())
        .filter(|b| b != "/")
}

/// The form re-shown with what was typed and the error beside its field.
async fn refill(
    state: &AppState,
    kind: EntityKind,
    caller: &Caller,
    id: Option<Id>,
    form: &Posted,
    e: &ApiError,
) -> Response {
    let f = match form_fields(state, caller, kind, true).await {
        Ok(f) => f,
        Err(e) => return error_page(caller, &e),
    };
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form {
        let slot = values.entry(k.clone()).or_default();
        // Several values under one name (multi-choice boxes) are shown joined.
        if slot.is_empty() || slot == "false" {
            *slot = v.clone();
        } else if !v.is_empty() {
            slot.push_str(", ");
            slot.push_str(v);
        }
    }
    let body = form_view(kind, caller, id, &f, &values, Some(e));
    html_page(
        e.status(),
        &format!(
            "{} {}",
            if id.is_some() { "Edit" } else { "New" },
            kind.name()
        ),
        Some(caller),
        body,
    )
}

async fn create(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    CsrfPosted(form): CsrfPosted,
) -> Response {
    let f = match form_fields(&state, &caller, kind, false).await {
        Ok(f) => f,
        Err(e) => return error_page(&caller, &e),
    };
    let input = fields::to_input(&f, &form);
    match write(&state.store, &caller, Command::Create { kind, input }).await {
        Ok(Outcome::Record(r)) => {
            let to = back(&form).unwrap_or_else(|| format!("/{}/{}", kind.plural(), r.id()));
            Redirect::to(&to).into_response()
        }
        Ok(other) => error_page(
            &caller,
            &ApiError::internal(&format!("create returned {other:?}")),
        ),
        Err(e) => refill(&state, kind, &caller, None, &form, &e).await,
    }
}

async fn update(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    CsrfPosted(form): CsrfPosted,
) -> Response {
    let id = match parse_id(kind, &raw) {
        Ok(id) => id,
        Err(e) => return error_page(&caller, &e),
    };
    let f = match form_fields(&state, &caller, kind, false).await {
        Ok(f) => f,
        Err(e) => return error_page(&caller, &e),
    };
    let input = fields::to_input(&f, &form);
    match write(&state.store, &caller, Command::Update { kind, id, input }).await {
        Ok(_) => {
            let to = back(&form).unwrap_or_else(|| format!("/{}/{id}", kind.plural()));
            Redirect::to(&to).into_response()
        }
        Err(e) if e.status() == StatusCode::NOT_FOUND => error_page(&caller, &e),
        Err(e) => refill(&state, kind, &caller, Some(id), &form, &e).await,
    }
}

async fn delete(
    kind: EntityKind,
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    CsrfPosted(_): CsrfPosted,
) -> Response {
    let id = match parse_id(kind, &raw) {
        Ok(id) => id,
        Err(e) => return error_page(&caller, &e),
    };
    match write(&state.store, &caller, Command::Delete { kind, id }).await {
        Ok(_) => Redirect::to(&format!("/{}", kind.plural())).into_response(),
        Err(e) if e.status() == StatusCode::NOT_FOUND => error_page(&caller, &e),
        // Refused (another's record, or records still linked): said on the record's page.
        Err(e) => detail_response(&state, &caller, kind, &raw, Some(e)).await,
    }
}

/// The kinds the search box looks through.
const SEARCHED: [EntityKind; 4] = [
    EntityKind::Contact,
    EntityKind::Company,
    EntityKind::Deal,
    EntityKind::Ticket,
];

async fn search(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Response {
    let text = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let found = if text.is_empty() {
        Ok(Vec::new())
    } else {
        let q = text.clone();
        read_as(&state.store, &caller, move |s| {
            SEARCHED
                .into_iter()
                .map(|k| {
                    let query = Query {
                        search: Some(q.clone()),
                        limit: 10,
                        ..Query::default()
                    };
                    let page = s.list(k, &query)?;
                    let total = s.count(
                        k,
                        &Query {
                            search: Some(q.clone()),
                            ..Query::default()
                        },
                    )?;
                    Ok((k, page.items, total))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
    };
    let groups = match found {
        Ok(g) => g,
        Err(e) => return error_page(&caller, &e),
    };
    let body = html! {
        h1 { "Search" }
        form.search-page method="get" action="/search" role="search" {
            label for="search-page-q" { "Find contacts, companies, deals and tickets" }
            input #search-page-q type="search" name="q" value=(text);
            button type="submit" { "Search" }
        }
        @if !text.is_empty() {
            @if groups.iter().all(|(_, items, _)| items.is_empty()) {
                p { "Nothing matches “" (text) "”." }
            }
            @for (k, items, total) in &groups {
                @if !items.is_empty() {
                    section.card {
                        h2 { (title(*k)) " " span.muted { "(" (total) ")" } }
                        ul.related {
                            @for r in items {
                                li {
                                    a href=(format!("/{}/{}", k.plural(), r.id())) { (display_name(r)) }
                                    @if let Some(Value::Text(e)) = r.get("email") { span.muted { " · " (e) } }
                                    @if let Some(Value::Text(d)) = r.get("domain") { span.muted { " · " (d) } }
                                }
                            }
                        }
                        @if *total > items.len() as u64 {
                            p { a href=(format!("/{}?q={}", k.plural(), super::encode(&text))) { "All " (total) " " (k.plural()) } }
                        }
                    }
                }
            }
        }
    };
    html_page(StatusCode::OK, "Search", Some(&caller), body)
}
