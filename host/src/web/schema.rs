//! The admin's pages for the shape of records: custom fields (`/admin/fields`: every kind's
//! fields with the plugin that owns each, a form to define one, removal of an admin's own)
//! and pipelines (`/admin/pipelines`: each pipeline's stages with probability and outcome,
//! edited as a table, and a form for a new pipeline). Both go through the same commands as
//! `/api/v1/fields` and `/api/v1/pipelines`, so the rules and messages are the API's.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kith_core::{Command, EntityKind, FieldType, NewFieldDef, Pipeline, Stage, StageOutcome};
use maud::{Markup, html};

use super::fields::{label_of, posted};
use super::records::{PAGE_KINDS, title};
use super::{CsrfPosted, Notice, admin_nav, html_page, notices};
use crate::api::auth::{Caller, Need, Routes};
use crate::api::{ApiError, AppState, write};

/// Blank stage rows offered under a pipeline's stages, for adding stages.
const BLANK_STAGES: usize = 2;

/// Every custom field type, as the API names it.
const TYPES: [(&str, FieldType); 14] = [
    ("text", FieldType::Text),
    ("long_text", FieldType::LongText),
    ("number", FieldType::Number),
    ("integer", FieldType::Integer),
    ("money", FieldType::Money),
    ("date", FieldType::Date),
    ("datetime", FieldType::Datetime),
    ("boolean", FieldType::Boolean),
    ("choice", FieldType::Choice),
    ("multi_choice", FieldType::MultiChoice),
    ("url", FieldType::Url),
    ("email", FieldType::Email),
    ("phone", FieldType::Phone),
    ("reference", FieldType::Reference),
];

pub(super) fn routes() -> Routes {
    use Method as M;
    Routes::new()
        .route(
            "/admin/fields",
            &[(M::GET, Need::Admin), (M::POST, Need::Admin)],
            get(fields_page).post(define_field),
        )
        .route(
            "/admin/fields/{kind}/{name}",
            &[(M::GET, Need::Admin), (M::POST, Need::Admin)],
            get(field_page).post(change_field),
        )
        .route(
            "/admin/fields/delete",
            &[(M::POST, Need::Admin)],
            post(delete_field),
        )
        .route(
            "/admin/pipelines",
            &[(M::GET, Need::Admin), (M::POST, Need::Admin)],
            get(pipelines_page).post(new_pipeline),
        )
        .route(
            "/admin/pipelines/{key}",
            &[(M::POST, Need::Admin)],
            post(save_pipeline),
        )
}

fn type_name(t: FieldType) -> &'static str {
    TYPES
        .iter()
        .find(|(_, ft)| *ft == t)
        .map_or("text", |(n, _)| n)
}

async fn fields_page(State(state): State<AppState>, caller: Caller) -> Response {
    fields_view(&state, &caller, StatusCode::OK, &Notice::default())
}

fn fields_view(state: &AppState, caller: &Caller, status: StatusCode, n: &Notice) -> Response {
    let csrf = caller.csrf().unwrap_or("");
    let mut all = Vec::new();
    for kind in PAGE_KINDS {
        match state.store.field_defs(kind) {
            Ok(defs) => all.push((kind, defs)),
            Err(e) => return super::records::error_page(caller, &ApiError::from(e)),
        }
    }
    let bad = |f: &str| n.field.as_deref() == Some(f);
    let body = html! {
        h1 { "Custom fields" }
        (admin_nav("/admin/fields"))
        (notices(n))
        @for (kind, defs) in &all {
            section.card {
                h2 { (title(*kind)) }
                @if defs.is_empty() {
                    p.muted { "No custom fields." }
                } @else {
                    div.table-wrap {
                        table {
                            thead { tr { th { "Label" } th { "Name" } th { "Type" } th { "Required" } th { "Options" } th { "Owner" } th { span.sr { "Action" } } } }
                            tbody {
                                @for d in defs {
                                    tr {
                                        td { (d.label) }
                                        td { code { (d.name) } }
                                        td { (type_name(d.field_type)) @if let Some(k) = d.reference_kind { " → " (k.name()) } }
                                        td { @if d.required { "yes" } @else { "no" } }
                                        td { (d.options.join(", ")) }
                                        td { @match &d.plugin { Some(p) => a href=(format!("/admin/plugins/{p}")) { "plugin " (p) }, None => "admin" } }
                                        td {
                                            @if d.plugin.is_none() {
                                                a.button.secondary href=(format!("/admin/fields/{}/{}", kind.plural(), d.name)) aria-label=(format!("Edit {}", d.label)) { "Edit" }
                                                " "
                                                form.inline method="post" action="/admin/fields/delete" {
                                                    input type="hidden" name="csrf" value=(csrf);
                                                    input type="hidden" name="kind" value=(kind.plural());
                                                    input type="hidden" name="name" value=(d.name);
                                                    button.danger type="submit" aria-label=(format!("Remove {}", d.label))
                                                        data-confirm=(format!("Remove the field {}? Its values are removed from every record.", d.label)) { "Remove" }
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
        }
        section.card {
            h2 { "Define a field" }
            form method="post" action="/admin/fields" {
                input type="hidden" name="csrf" value=(csrf);
                div.filter-row {
                    div {
                        label for="fd-kind" { "Record kind" }
                        select #fd-kind name="kind" { @for k in PAGE_KINDS { option value=(k.plural()) { (title(k)) } } }
                    }
                    div.field.invalid[bad("name")] {
                        label for="fd-name" { "Name (lower case, for the API)" }
                        input #fd-name type="text" name="name" required pattern="[a-z][a-z0-9_]*" aria-invalid=[bad("name").then_some("true")];
                        @if bad("name") { @if let Some(e) = &n.error { p.field-error { (e) } } }
                    }
                    div {
                        label for="fd-label" { "Label" }
                        input #fd-label type="text" name="label";
                    }
                    div {
                        label for="fd-type" { "Type" }
                        select #fd-type name="type" { @for (name, _) in TYPES { option value=(name) { (label_of(name)) } } }
                    }
                }
                div.filter-row {
                    div.field.invalid[bad("options")] {
                        label for="fd-options" { "Options (for choices; comma-separated)" }
                        input #fd-options type="text" name="options";
                    }
                    div.field.invalid[bad("reference_kind")] {
                        label for="fd-ref" { "Points at (for references)" }
                        select #fd-ref name="reference_kind" {
                            option value="" { "—" }
                            @for k in EntityKind::ALL { option value=(k.name()) { (title(k)) } }
                        }
                    }
                    div {
                        label for="fd-help" { "Help" }
                        input #fd-help type="text" name="help";
                    }
                }
                input type="hidden" name="required" value="false";
                label.choice for="fd-required" { input #fd-required type="checkbox" name="required" value="true"; "Required" }
                button type="submit" { "Define field" }
            }
        }
    };
    html_page(status, "Custom fields", Some(caller), body)
}

fn kind_of(raw: &str) -> Result<EntityKind, ApiError> {
    EntityKind::parse(raw)
        .ok_or_else(|| ApiError::not_found(format!("'{raw}' is not a record kind")))
}

async fn define_field(
    State(state): State<AppState>,
    caller: Caller,
    CsrfPosted(form): CsrfPosted,
) -> Response {
    let result = async {
        let kind = kind_of(posted(&form, "kind").unwrap_or(""))?;
        let text = |k: &str| {
            posted(&form, k)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let ty = posted(&form, "type").unwrap_or("text");
        let field_type = TYPES
            .iter()
            .find(|(n, _)| *n == ty)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                ApiError::from(kith_core::Error::invalid(
                    "type",
                    format!("'{ty}' is not a field type"),
                ))
            })?;
        let reference_kind = match text("reference_kind") {
            None => None,
            Some(k) => Some(kind_of(&k)?),
        };
        let def = NewFieldDef {
            name: text("name").unwrap_or_default(),
            label: text("label"),
            field_type,
            required: posted(&form, "required") == Some("true"),
            options: text("options")
                .map(|o| {
                    o.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            help: text("help"),
            reference_kind,
        };
        write(&state.store, &caller, Command::DefineField { kind, def }).await?;
        Ok(format!("Field defined on {}.", kind.plural()))
    }
    .await;
    after_fields(&state, &caller, result)
}

fn after_fields(state: &AppState, caller: &Caller, result: Result<String, ApiError>) -> Response {
    match result {
        Ok(m) => fields_view(state, caller, StatusCode::OK, &Notice::ok(m)),
        Err(e) => {
            let mut n = Notice::error(e.message());
            n.field = e.field().map(str::to_owned);
            fields_view(state, caller, e.status(), &n)
        }
    }
}

/// The form changing one field: label, help, required, options (added to, not removed).
fn field_view(
    caller: &Caller,
    def: &kith_core::FieldDef,
    status: StatusCode,
    n: &Notice,
) -> Response {
    let kind = def.kind;
    let choice = matches!(def.field_type, FieldType::Choice | FieldType::MultiChoice);
    let bad = |f: &str| n.field.as_deref() == Some(f);
    let body = html! {
        p.muted { a href="/admin/fields" { "All custom fields" } }
        section.card {
            h1 { "Edit " (def.label) }
            p.muted { (title(kind)) " · " code { (def.name) } " · " (type_name(def.field_type)) }
            (notices(n))
            form method="post" action=(format!("/admin/fields/{}/{}", kind.plural(), def.name)) {
                input type="hidden" name="csrf" value=(caller.csrf().unwrap_or(""));
                div.field.invalid[bad("label")] {
                    label for="fe-label" { "Label" }
                    input #fe-label type="text" name="label" value=(def.label) required;
                }
                label for="fe-help" { "Help" }
                input #fe-help type="text" name="help" value=(def.help.as_deref().unwrap_or(""));
                @if choice {
                    div.field.invalid[bad("options")] {
                        label for="fe-options" { "Options (comma-separated; add new ones, keep the old)" }
                        input #fe-options type="text" name="options" value=(def.options.join(", ")) aria-invalid=[bad("options").then_some("true")];
                        @if bad("options") { @if let Some(e) = &n.error { p.field-error { (e) } } }
                    }
                }
                input type="hidden" name="required" value="false";
                label.choice for="fe-required" { input #fe-required type="checkbox" name="required" value="true" checked[def.required]; "Required" }
                div.actions {
                    button type="submit" { "Save field" }
                    a href="/admin/fields" { "Cancel" }
                }
            }
        }
    };
    html_page(status, &format!("Edit {}", def.label), Some(caller), body)
}

/// A custom field by kind and name.
fn field_def(state: &AppState, raw: &str, name: &str) -> Result<kith_core::FieldDef, ApiError> {
    let kind = kind_of(raw)?;
    state
        .store
        .field_defs(kind)?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!("{} has no custom field '{name}'", kind.plural()))
        })
}

async fn field_page(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, name)): Path<(String, String)>,
) -> Response {
    match field_def(&state, &raw, &name) {
        Ok(def) => field_view(&caller, &def, StatusCode::OK, &Notice::default()),
        Err(e) => super::records::error_page(&caller, &e),
    }
}

async fn change_field(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, name)): Path<(String, String)>,
    CsrfPosted(form): CsrfPosted,
) -> Response {
    let def = match field_def(&state, &raw, &name) {
        Ok(d) => d,
        Err(e) => return super::records::error_page(&caller, &e),
    };
    let changes = kith_core::custom::FieldChanges {
        label: posted(&form, "label").map(str::to_owned),
        help: posted(&form, "help").map(str::to_owned),
        required: posted(&form, "required").map(|r| r == "true"),
        options: posted(&form, "options").map(|o| {
            o.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
    };
    let cmd = Command::ChangeField {
        kind: def.kind,
        name,
        changes,
    };
    match write(&state.store, &caller, cmd).await {
        Ok(_) => Redirect::to("/admin/fields").into_response(),
        Err(e) => {
            let mut n = Notice::error(e.message());
            n.field = e.field().map(str::to_owned);
            field_view(&caller, &def, e.status(), &n)
        }
    }
}

async fn delete_field(
    State(state): State<AppState>,
    caller: Caller,
    CsrfPosted(form): CsrfPosted,
) -> Response {
    let result = async {
        let kind = kind_of(posted(&form, "kind").unwrap_or(""))?;
        let name = posted(&form, "name").unwrap_or("").to_owned();
        write(
            &state.store,
            &caller,
            Command::DeleteField {
                kind,
                name: name.clone(),
            },
        )
        .await?;
        Ok(format!("Field {name} removed from {}.", kind.plural()))
    }
    .await;
    after_fields(&state, &caller, result)
}

async fn pipelines_page(State(state): State<AppState>, caller: Caller) -> Response {
    pipelines_view(&state, &caller, StatusCode::OK, &Notice::default(), None)
}

/// The pipelines page; `draft` is a pipeline form sent back with an error, shown as typed.
fn pipelines_view(
    state: &AppState,
    caller: &Caller,
    status: StatusCode,
    n: &Notice,
    draft: Option<&Pipeline>,
) -> Response {
    let pipelines = match state.store.pipelines() {
        Ok(p) => p,
        Err(e) => return super::records::error_page(caller, &ApiError::from(e)),
    };
    let csrf = caller.csrf().unwrap_or("");
    let blank = Pipeline {
        key: String::new(),
        name: String::new(),
        stages: Vec::new(),
    };
    let body = html! {
        h1 { "Pipelines" }
        (admin_nav("/admin/pipelines"))
        (notices(n))
        @for p in &pipelines {
            @let shown = draft.filter(|d| d.key == p.key).unwrap_or(p);
            section.card {
                h2 { (p.name) " " small.muted { code { (p.key) } } }
                (pipeline_form(shown, csrf, &format!("/admin/pipelines/{}", p.key), "Save stages"))
            }
        }
        section.card {
            h2 { "New pipeline" }
            @let shown = draft.filter(|d| !pipelines.iter().any(|p| p.key == d.key)).unwrap_or(&blank);
            (pipeline_form(shown, csrf, "/admin/pipelines", "Create pipeline"))
        }
    };
    html_page(status, "Pipelines", Some(caller), body)
}

fn pipeline_form(p: &Pipeline, csrf: &str, action: &str, submit: &str) -> Markup {
    let new = p.key.is_empty() || action == "/admin/pipelines";
    let id = if new { "new".to_owned() } else { p.key.clone() };
    let blank = Stage {
        key: String::new(),
        name: String::new(),
        probability: 0,
        outcome: StageOutcome::Open,
    };
    html! {
        form method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            div.filter-row {
                @if new {
                    div {
                        label for=(format!("pl-{id}-key")) { "Key (lower case, for the API)" }
                        input id=(format!("pl-{id}-key")) type="text" name="key" value=(p.key) required;
                    }
                }
                div {
                    label for=(format!("pl-{id}-name")) { "Name" }
                    input id=(format!("pl-{id}-name")) type="text" name="name" value=(p.name) required;
                }
            }
            div.table-wrap {
                table {
                    caption.sr { "Stages in board order" }
                    thead { tr { th { "Stage key" } th { "Name" } th { "Win probability (%)" } th { "Outcome" } } }
                    tbody {
                        @for (i, s) in p.stages.iter().chain(std::iter::repeat_n(&blank, BLANK_STAGES)).enumerate() {
                            tr {
                                td { input type="text" name="stage_key" value=(s.key) aria-label=(format!("Stage {} key", i + 1)); }
                                td { input type="text" name="stage_name" value=(s.name) aria-label=(format!("Stage {} name", i + 1)); }
                                td { input type="text" inputmode="numeric" name="stage_probability" value=(s.probability) aria-label=(format!("Stage {} probability", i + 1)); }
                                td {
                                    select name="stage_outcome" aria-label=(format!("Stage {} outcome", i + 1)) {
                                        @for (v, o) in [("open", StageOutcome::Open), ("won", StageOutcome::Won), ("lost", StageOutcome::Lost)] {
                                            option value=(v) selected[s.outcome == o] { (label_of(v)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.muted { "Clear a stage's key to remove it (stages that deals are in must stay). Rows are in board order." }
            button type="submit" { (submit) }
        }
    }
}

/// The pipeline a form describes; rows without a key are left out.
fn pipeline_of(key: &str, form: &super::fields::Posted) -> Result<Pipeline, ApiError> {
    let column = |name: &str| -> Vec<&str> {
        form.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .collect()
    };
    let (keys, names, probs, outcomes) = (
        column("stage_key"),
        column("stage_name"),
        column("stage_probability"),
        column("stage_outcome"),
    );
    let mut stages = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if k.is_empty() {
            continue;
        }
        let raw = probs.get(i).copied().unwrap_or("0");
        let probability = raw
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| {
                ApiError::from(kith_core::Error::invalid(
                    "stages",
                    format!(
                        "stage {k}: the win probability '{raw}' is not a whole number from 0 to 100"
                    ),
                ))
            })?;
        let outcome = match outcomes.get(i).copied().unwrap_or("open") {
            "won" => StageOutcome::Won,
            "lost" => StageOutcome::Lost,
            _ => StageOutcome::Open,
        };
        stages.push(Stage {
            key: (*k).to_owned(),
            name: names.get(i).copied().unwrap_or("").to_owned(),
            probability,
            outcome,
        });
    }
    Ok(Pipeline {
        key: key.to_owned(),
        name: posted(form, "name").unwrap_or("").trim().to_owned(),
        stages,
    })
}

async fn save(state: &AppState, caller: &Caller, p: Pipeline, exists: bool) -> Response {
    let known = state
        .store
        .pipelines()
        .map(|ps| ps.iter().any(|x| x.key == p.key))
        .unwrap_or(false);
    if known != exists {
        let message = if exists {
            format!("there is no pipeline '{}'", p.key)
        } else {
            format!("a pipeline '{}' already exists; change it above", p.key)
        };
        let e = ApiError::new(
            if exists {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::CONFLICT
            },
            "conflict",
            message,
        );
        return pipelines_view(
            state,
            caller,
            e.status(),
            &Notice::error(e.message()),
            Some(&p),
        );
    }
    match write(&state.store, caller, Command::PutPipeline(p.clone())).await {
        Ok(_) => Redirect::to("/admin/pipelines").into_response(),
        Err(e) => pipelines_view(
            state,
            caller,
            e.status(),
            &Notice::error(e.message()),
            Some(&p),
        ),
    }
}

async fn new_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    CsrfPosted(form): CsrfPosted,
) -> Response {
    let key = posted(&form, "key")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match pipeline_of(&key, &form) {
        Ok(p) => save(&state, &caller, p, false).await,
        Err(e) => pipelines_view(
            &state,
            &caller,
            e.status(),
            &Notice::error(e.message()),
            None,
        ),
    }
}

async fn save_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    CsrfPosted(form): CsrfPosted,
) -> Response {
    match pipeline_of(&key, &form) {
        Ok(p) => save(&state, &caller, p, true).await,
        Err(e) => pipelines_view(
            &state,
            &caller,
            e.status(),
            &Notice::error(e.message()),
            None,
        ),
    }
}
