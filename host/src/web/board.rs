//! The pipeline board at `/deals/board`: a column per stage with its totals (from the
//! pipeline report, so they count every deal the caller may see, not only the cards shown),
//! a card per deal, and a way to move a card to another stage: drag it (the script), or pick
//! the stage in the card's own form (keyboard, phone, no script). Moving into a stage that
//! asks for fields ([`Stage::asks_for`]: a lost deal's reason, a won deal's amount) shows a
//! form for them first.

use std::collections::BTreeMap;

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kith_core::{
    AnyRecord, Command, EntityKind, Filter, FilterOp, Input, Pipeline, Query, Role, SortKey, Stage,
    Value,
};
use maud::{Markup, html};
use serde::Deserialize;

use super::fields::{self, posted};
use super::records::{display_name, error_page};
use super::{CsrfPosted, encode, html_page};
use crate::api::auth::{Caller, Need, Routes};
use crate::api::{ApiError, AppState, read_as, write};

/// Cards shown per column; the column's totals still count every deal in it.
const CARDS: usize = 50;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/deals/board", &[(Method::GET, Need::Viewer)], get(board))
        .route(
            "/deals/{id}/stage",
            &[(Method::POST, Need::Agent)],
            post(move_deal),
        )
}

#[derive(Deserialize)]
struct BoardParams {
    pipeline: Option<String>,
}

/// One column: the stage, its cards, and its totals per currency (deals, amount).
struct Column {
    stage: Stage,
    cards: Vec<AnyRecord>,
    deals: u64,
    totals: BTreeMap<String, String>,
}

async fn board(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(p): QueryParams<BoardParams>,
) -> Response {
    match load(&state, &caller, p.pipeline).await {
        Ok((pipelines, chosen, columns, names)) => {
            let body = view(&caller, &pipelines, &chosen, &columns, &names);
            html_page(StatusCode::OK, "Pipeline board", Some(&caller), body)
        }
        Err(e) => error_page(&caller, &e),
    }
}

type Loaded = (
    Vec<Pipeline>,
    Pipeline,
    Vec<Column>,
    BTreeMap<kith_core::Id, String>,
);

async fn load(
    state: &AppState,
    caller: &Caller,
    wanted: Option<String>,
) -> Result<Loaded, ApiError> {
    let pipelines = state.store.pipelines()?;
    let chosen = match wanted.as_deref() {
        Some(key) => pipelines
            .iter()
            .find(|p| p.key == key)
            .ok_or_else(|| ApiError::not_found(format!("no pipeline '{key}'")))?,
        None => pipelines
            .first()
            .ok_or_else(|| ApiError::not_found("there is no pipeline"))?,
    }
    .clone();
    let reports = state.reports.clone();
    let access = caller.access.clone();
    let key = chosen.key.clone();
    let table = tokio::task::spawn_blocking(move || {
        let raw = BTreeMap::from([("pipeline".to_owned(), key)]);
        reports.run_as("pipeline", &raw, Some(&access))
    })
    .await??;
    let col = |name: &str| table.columns.iter().position(|c| c.name == name);
    let (stage_i, cur_i, deals_i, amount_i) =
        (col("stage"), col("currency"), col("deals"), col("amount"));
    let mut deals: BTreeMap<String, u64> = BTreeMap::new();
    let mut totals: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for row in &table.rows {
        let cell = |i: Option<usize>| i.and_then(|i| row.get(i)).cloned().unwrap_or(Value::Null);
        let stage = cell(stage_i).to_string();
        let n = match cell(deals_i) {
            Value::Integer(n) => u64::try_from(n).unwrap_or(0),
            _ => 0,
        };
        *deals.entry(stage.clone()).or_default() += n;
        if let (Value::Text(currency), amount) = (cell(cur_i), cell(amount_i))
            && n > 0
        {
            totals
                .entry(stage)
                .or_default()
                .insert(currency, amount.to_string());
        }
    }
    let stages = chosen.stages.clone();
    let pipeline_key = chosen.key.clone();
    let (cards, names) = read_as(&state.store, caller, move |s| {
        let mut cards = Vec::new();
        let mut companies = BTreeMap::new();
        for stage in &stages {
            let q = Query {
                filters: vec![
                    Filter {
                        field: "pipeline".to_owned(),
                        op: FilterOp::Eq,
                        value: pipeline_key.clone(),
                    },
                    Filter {
                        field: "stage".to_owned(),
                        op: FilterOp::Eq,
                        value: stage.key.clone(),
                    },
                ],
                sort: Some(SortKey::parse("-amount")),
                limit: CARDS,
                ..Query::default()
            };
            let items = s.list(EntityKind::Deal, &q)?.items;
            for d in &items {
                if let Some(Value::Ref(c)) = d.get("company_id")
                    && let Ok(company) = s.get(EntityKind::Company, c)
                {
                    companies.insert(c, company.summary());
                }
            }
            cards.push(items);
        }
        Ok((cards, companies))
    })
    .await?;
    let columns = chosen
        .stages
        .iter()
        .cloned()
        .zip(cards)
        .map(|(stage, cards)| Column {
            deals: deals.get(&stage.key).copied().unwrap_or(0),
            totals: totals.remove(&stage.key).unwrap_or_default(),
            stage,
            cards,
        })
        .collect();
    Ok((pipelines, chosen, columns, names))
}

fn view(
    caller: &Caller,
    pipelines: &[Pipeline],
    chosen: &Pipeline,
    columns: &[Column],
    names: &BTreeMap<kith_core::Id, String>,
) -> Markup {
    let may_move = caller.role() >= Role::Agent;
    let csrf = caller.csrf().unwrap_or("");
    html! {
        div.page-head {
            h1 { (chosen.name) " board" }
            a.button.secondary href="/deals" { "List view" }
            @if may_move { a.button href="/deals/new" { "New deal" } }
        }
        @if pipelines.len() > 1 {
            nav.views aria-label="Pipelines" {
                @for p in pipelines {
                    a href=(format!("/deals/board?pipeline={}", encode(&p.key))) aria-current=[(p.key == chosen.key).then_some("page")] { (p.name) }
                }
            }
        }
        @if may_move {
            p.muted.hint { "Drag a card to another column, or choose its stage and press Move." }
        }
        div.board data-board="" {
            @for c in columns {
                section.column data-stage=(c.stage.key) aria-labelledby=(format!("col-{}", c.stage.key)) {
                    header {
                        h2 id=(format!("col-{}", c.stage.key)) { (c.stage.name) }
                        p.totals {
                            (c.deals) " deal" @if c.deals != 1 { "s" }
                            @for (currency, amount) in &c.totals { " · " (amount) " " (currency) }
                            " · " (c.stage.probability) "%"
                        }
                    }
                    ol.cards {
                        @for d in &c.cards {
                            li.deal-card data-deal=(d.id().to_string()) {
                                @if may_move { span.grip aria-hidden="true" title="Drag to another stage" { "⠿" } }
                                a href=(format!("/deals/{}", d.id())) { (display_name(d)) }
                                @if let (Some(Value::Number(a)), Some(Value::Text(cur))) = (d.get("amount"), d.get("currency")) {
                                    p.amount { (fields::money(a)) " " (cur) }
                                }
                                @if let Some(Value::Ref(company)) = d.get("company_id") {
                                    @if let Some(n) = names.get(&company) { p.muted { (n) } }
                                }
                                @if may_move {
                                    form.move method="post" action=(format!("/deals/{}/stage", d.id())) {
                                        input type="hidden" name="csrf" value=(csrf);
                                        label.sr for=(format!("stage-{}", d.id())) { "Stage of " (display_name(d)) }
                                        select id=(format!("stage-{}", d.id())) name="stage" {
                                            @for s in &chosen.stages {
                                                option value=(s.key) selected[s.key == c.stage.key] { (s.name) }
                                            }
                                        }
                                        button type="submit" { "Move" }
                                    }
                                }
                            }
                        }
                    }
                    @if c.deals > c.cards.len() as u64 {
                        p { a href=(format!("/deals?stage={}&pipeline={}", encode(&c.stage.key), encode(&chosen.key))) { "All " (c.deals) } }
                    }
                }
            }
        }
    }
}

/// What a move came to.
enum Moved {
    /// Done; back to this pipeline's board.
    Done(String),
    /// The stage asks for these fields first.
    Ask(Box<AnyRecord>, Stage, Vec<&'static str>),
}

async fn move_deal(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    CsrfPosted(form): CsrfPosted,
) -> Response {
    let Ok(id) = raw.parse::<kith_core::Id>() else {
        return error_page(
            &caller,
            &ApiError::not_found(format!("no deal with id '{raw}'")),
        );
    };
    let deal = match read_as(&state.store, &caller, move |s| s.get(EntityKind::Deal, id)).await {
        Ok(d) => d,
        Err(e) => return error_page(&caller, &e),
    };
    let stage_key = posted(&form, "stage").unwrap_or("").trim().to_owned();
    let pipeline_key = match deal.get("pipeline") {
        Some(Value::Text(p)) if !p.is_empty() => p,
        _ => kith_core::pipeline::DEFAULT_PIPELINE.to_owned(),
    };
    let stage = state.store.pipelines().ok().and_then(|ps| {
        ps.into_iter()
            .find(|p| p.key == pipeline_key)
            .and_then(|p| p.stage(&stage_key).cloned())
    });
    let result: Result<Moved, ApiError> = async {
        let Some(stage) = stage.clone() else {
            return Err(ApiError::from(kith_core::Error::invalid(
                "stage",
                format!("'{stage_key}' is not a stage of this deal's pipeline"),
            )));
        };
        let mut input = Input::default();
        input
            .fields
            .insert("stage".to_owned(), Value::Text(stage.key.clone()));
        // What the stage asks for: given in this form, or already on the deal.
        let mut missing = Vec::new();
        for field in stage.asks_for() {
            match posted(&form, field).map(str::trim) {
                Some(v) if !v.is_empty() => {
                    input
                        .fields
                        .insert((*field).to_owned(), Value::Text(v.to_owned()));
                }
                _ if !deal.get(field).unwrap_or(Value::Null).is_empty() => {}
                _ => missing.push(*field),
            }
        }
        if !missing.is_empty() {
            return Ok(Moved::Ask(Box::new(deal.clone()), stage, missing));
        }
        let kind = EntityKind::Deal;
        write(&state.store, &caller, Command::Update { kind, id, input }).await?;
        Ok(Moved::Done(pipeline_key.clone()))
    }
    .await;
    match (result, stage) {
        (Ok(Moved::Done(p)), _) => {
            Redirect::to(&format!("/deals/board?pipeline={}", encode(&p))).into_response()
        }
        (Ok(Moved::Ask(deal, stage, missing)), _) => {
            ask(&caller, &deal, &stage, &missing, &form, None)
        }
        // A value given on the "needs more" form was refused: asked again, beside it.
        (Err(e), Some(stage)) if e.status() != StatusCode::NOT_FOUND => {
            let asked: Vec<&str> = stage.asks_for().to_vec();
            ask(&caller, &deal, &stage, &asked, &form, Some(&e))
        }
        (Err(e), _) => error_page(&caller, &e),
    }
}

/// The form asking for what a stage needs before the deal moves (or showing why the move
/// failed).
fn ask(
    caller: &Caller,
    deal: &AnyRecord,
    stage: &Stage,
    missing: &[&str],
    form: &fields::Posted,
    error: Option<&ApiError>,
) -> Response {
    let status = error.map_or(StatusCode::OK, ApiError::status);
    let field = error.and_then(ApiError::field);
    let body = html! {
        section.card {
            h1 { "Move “" (display_name(deal)) "” to " (stage.name) }
            @if let Some(e) = error {
                @if field.is_none_or(|f| !missing.contains(&f)) {
                    p.error role="alert" { (e.message()) }
                }
            } @else {
                p { "This stage needs a little more before the deal moves." }
            }
            form method="post" action=(format!("/deals/{}/stage", deal.id())) {
                input type="hidden" name="csrf" value=(caller.csrf().unwrap_or(""));
                input type="hidden" name="stage" value=(stage.key);
                @for f in missing {
                    @let id = format!("ask-{f}");
                    label for=(id) { (fields::label_of(f)) " *" }
                    @let value = posted(form, f).unwrap_or("");
                    @if *f == "lost_reason" {
                        textarea id=(id) name=(f) rows="3" required aria-invalid=[(field == Some(*f)).then_some("true")] { (value) }
                    } @else {
                        input id=(id) type="text" name=(f) value=(value) required aria-invalid=[(field == Some(*f)).then_some("true")];
                    }
                    @if let (Some(e), true) = (error, field == Some(*f)) {
                        p.field-error { (e.message()) }
                    }
                }
                div.actions {
                    button type="submit" { "Move deal" }
                    a href="/deals/board" { "Cancel" }
                }
            }
        }
    };
    html_page(status, "Move deal", Some(caller), body)
}
