//! The OpenAPI 3.1 document, generated from the core's field tables so it cannot drift from
//! what the API accepts: every record kind's schema comes from `EntityKind::fields()`.

use kith_core::EntityKind;
use kith_core::report::ParamKind;

use super::auth::{Need, SESSION_COOKIE, route_table};
use kith_core::schema::{FieldInfo, ValueType};
use serde_json::{Map, Value as Json, json};

/// A short name of a field type, as shown in `/api/v1/fields/{kind}`.
pub fn type_name(ty: ValueType) -> &'static str {
    match ty {
        ValueType::Text => "text",
        ValueType::Integer => "integer",
        ValueType::Decimal => "decimal",
        ValueType::Bool => "boolean",
        ValueType::Date => "date",
        ValueType::DateTime => "datetime",
        ValueType::Id => "reference",
        ValueType::IdList => "references",
        ValueType::TextList => "text_list",
        ValueType::Choice(_) => "choice",
    }
}

fn field_schema(f: &FieldInfo) -> Json {
    let mut s = match f.ty {
        ValueType::Text => json!({ "type": ["string", "null"] }),
        ValueType::Integer => json!({ "type": ["integer", "null"] }),
        ValueType::Decimal => json!({
            "type": ["string", "number", "null"],
            "description": "Exact decimal; returned as a string.",
        }),
        ValueType::Bool => json!({ "type": "boolean" }),
        ValueType::Date => json!({ "type": ["string", "null"], "format": "date" }),
        ValueType::DateTime => json!({ "type": ["string", "null"], "format": "date-time" }),
        ValueType::Id => json!({ "type": ["string", "null"], "format": "uuid" }),
        ValueType::IdList => {
            json!({ "type": "array", "items": { "type": "string", "format": "uuid" } })
        }
        ValueType::TextList => json!({ "type": "array", "items": { "type": "string" } }),
        ValueType::Choice(options) => json!({ "type": ["string", "null"], "enum": options }),
    };
    s["description"] = json!(match s.get("description") {
        Some(extra) => format!("{} {}", f.doc, extra.as_str().unwrap_or("")),
        None => f.doc.to_owned(),
    });
    if f.read_only {
        s["readOnly"] = json!(true);
    }
    s
}

fn record_schema(kind: EntityKind, writable_only: bool) -> Json {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in kind.fields() {
        if writable_only && f.read_only {
            continue;
        }
        props.insert(f.name.to_owned(), field_schema(&f));
        if f.required && writable_only {
            required.push(f.name);
        }
    }
    props.insert(
        "custom".to_owned(),
        json!({
            "type": "object",
            "description": "Custom field values by name; see /api/v1/fields/{kind}.",
            "additionalProperties": true,
        }),
    );
    let mut s = json!({ "type": "object", "properties": props });
    if writable_only {
        s["additionalProperties"] = json!(false);
        if !required.is_empty() {
            s["required"] = json!(required);
        }
    }
    s
}

fn title(kind: EntityKind) -> String {
    let name = kind.name();
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn error_responses() -> Json {
    let err = json!({ "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    json!({
        "400": { "description": "Malformed request", "content": err["content"] },
        "401": { "description": "Not signed in: no, or a wrong, revoked or expired token or session", "content": err["content"] },
        "403": { "description": "The caller's role may not do this (forbidden), or a cookie-signed change without its x-csrf-token (csrf_failed)", "content": err["content"] },
        "404": { "description": "Unknown id, or a record the caller may not see", "content": err["content"] },
        "409": { "description": "Conflict (duplicate email)", "content": err["content"] },
        "413": { "description": "Body too large", "content": err["content"] },
        "422": { "description": "Validation failed", "content": err["content"] },
    })
}

fn with_errors(mut responses: Json) -> Json {
    if let (Some(r), Json::Object(errs)) = (responses.as_object_mut(), error_responses()) {
        for (k, v) in errs {
            r.entry(k).or_insert(v);
        }
    }
    responses
}

/// `/api/v1/reports` and `/api/v1/reports/{id}`, with every built-in report's parameters
/// (taken from the report definitions, so they cannot drift) and the table schemas.
fn report_paths(paths: &mut Map<String, Json>, schemas: &mut Map<String, Json>) {
    let defs = kith_core::report::builtin_reports();
    // One query parameter per name, saying which reports take it and what it does there.
    let mut params: Vec<(String, Vec<String>, String, Json)> = Vec::new();
    for def in &defs {
        for p in &def.parameters {
            let schema = match &p.kind {
                ParamKind::Date => json!({ "type": "string", "format": "date" }),
                ParamKind::Integer => json!({ "type": "integer" }),
                ParamKind::Number => {
                    json!({ "type": "string", "description": "An exact decimal." })
                }
                ParamKind::Boolean => json!({ "type": "boolean" }),
                ParamKind::Choice(options) => json!({ "type": "string", "enum": options }),
                ParamKind::Text => json!({ "type": "string" }),
            };
            let help = p.help.clone().unwrap_or_default();
            match params.iter_mut().find(|(name, ..)| *name == p.name) {
                Some((_, used_by, text, _)) => {
                    used_by.push(def.id.clone());
                    if !text.contains(&help) {
                        text.push_str(&format!(" ({}) {help}", def.id));
                    }
                }
                None => params.push((p.name.clone(), vec![def.id.clone()], help, schema)),
            }
        }
    }
    let mut query: Vec<Json> = params
        .into_iter()
        .map(|(name, used_by, help, schema)| {
            json!({ "name": name, "in": "query", "schema": schema,
                    "description": format!("Reports: {}. {help}", used_by.join(", ")) })
        })
        .collect();
    query.push(json!({ "name": "format", "in": "query", "schema": { "type": "string", "enum": ["json", "csv"] },
                       "description": "json (default) or csv: the same table as a download, a header row of column labels, RFC 4180 quoting." }));
    let ids: Vec<&str> = defs.iter().map(|d| d.id.as_str()).collect();
    paths.insert("/api/v1/reports".into(), json!({ "get": {
        "tags": ["reports"], "summary": "Every report: built-in ones, then those plugins provide (ids <plugin>.<report>)",
        "responses": with_errors(json!({ "200": { "description": "The report definitions", "content": { "application/json": { "schema": {
            "type": "object", "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/ReportDefinition" } } } } } } } })) } }));
    paths.insert("/api/v1/reports/{id}".into(), json!({
        "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" },
                         "description": format!("A report id: built-in {}, or <plugin>.<report>.", ids.join(", ")) }],
        "get": { "tags": ["reports"], "summary": "Run a report; an unknown parameter or a bad value is a 400 naming it, an unknown report a 404",
                 "parameters": query,
                 "responses": with_errors(json!({ "200": { "description": "The table", "content": {
                     "application/json": { "schema": { "$ref": "#/components/schemas/ReportTable" } },
                     "text/csv": { "schema": { "type": "string" } },
                 } } })) },
    }));
    schemas.insert("ReportTable".into(), json!({
        "type": "object", "required": ["id", "columns", "rows", "chart", "value_columns"],
        "properties": {
            "id": { "type": "string" },
            "columns": { "type": "array", "items": { "type": "object", "required": ["name", "label"], "properties": {
                "name": { "type": "string" }, "label": { "type": "string" } } } },
            "rows": { "type": "array", "items": { "type": "array", "items": {},
                      "description": "Values in column order; decimals are strings, missing values null." } },
            "chart": { "type": "string", "enum": ["none", "bar", "line", "pie", "funnel"] },
            "label_column": { "type": ["string", "null"], "description": "The column holding the chart's labels." },
            "value_columns": { "type": "array", "items": { "type": "string" }, "description": "The columns plotted as values." },
        },
    }));
    schemas.insert("ReportDefinition".into(), json!({
        "type": "object", "required": ["id", "name", "description", "source", "parameters"],
        "properties": {
            "id": { "type": "string" }, "name": { "type": "string" }, "description": { "type": "string" },
            "source": { "type": "string", "description": "built-in, or the id of the plugin providing it." },
            "parameters": { "type": "array", "items": { "type": "object", "required": ["name", "label", "kind"], "properties": {
                "name": { "type": "string" }, "label": { "type": "string" }, "help": { "type": ["string", "null"] },
                "kind": { "type": "object", "required": ["type"], "properties": {
                    "type": { "type": "string", "enum": ["date", "text", "integer", "number", "boolean", "choice"] },
                    "options": { "type": "array", "items": { "type": "string" }, "description": "For choice." } } } } } },
        },
    }));
}

/// The OpenAPI document.
pub fn document() -> Json {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let id_param = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } });
    let list_params = json!([
        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": kith_core::query::MAX_LIMIT }, "description": "Page size (default 50)." },
        { "name": "cursor", "in": "query", "schema": { "type": "string" }, "description": "next_cursor from the previous page." },
        { "name": "sort", "in": "query", "schema": { "type": "string" }, "description": "Field to sort by; prefix with - for descending. Default -created_at." },
        { "name": "q", "in": "query", "schema": { "type": "string" }, "description": "Free-text search over names, emails, domains and subjects." },
        { "name": "filters", "in": "query", "style": "form", "explode": true, "schema": { "type": "object", "additionalProperties": { "type": "string" } },
          "description": "Any field as field=value or field[op]=value, op one of eq, ne, gt, gte, lt, lte, contains, in; custom fields as custom.name." },
    ]);
    for kind in EntityKind::ALL {
        let t = title(kind);
        let plural = kind.plural();
        schemas.insert(t.clone(), record_schema(kind, false));
        schemas.insert(format!("{t}Input"), record_schema(kind, true));
        let record_ref = json!({ "$ref": format!("#/components/schemas/{t}") });
        let input_ref = json!({ "$ref": format!("#/components/schemas/{t}Input") });
        let one = json!({ "content": { "application/json": { "schema": record_ref } } });
        let page = json!({ "content": { "application/json": { "schema": {
            "type": "object",
            "properties": { "items": { "type": "array", "items": record_ref }, "next_cursor": { "type": ["string", "null"] } },
        } } } });
        let body =
            json!({ "required": true, "content": { "application/json": { "schema": input_ref } } });
        paths.insert(format!("/api/v1/{plural}"), json!({
            "get": { "tags": [plural], "summary": format!("List {plural}"), "parameters": list_params,
                     "responses": with_errors(json!({ "200": { "description": "A page", "content": page["content"] } })) },
            "post": { "tags": [plural], "summary": format!("Create a {}", kind.name()), "requestBody": body,
                      "responses": with_errors(json!({ "201": { "description": "Created", "content": one["content"] } })) },
        }));
        paths.insert(format!("/api/v1/{plural}/count"), json!({
            "get": { "tags": [plural], "summary": format!("Count {plural} matching filters"), "parameters": list_params,
                     "responses": with_errors(json!({ "200": { "description": "The count", "content": { "application/json": { "schema": {
                        "type": "object", "properties": { "count": { "type": "integer" } } } } } } })) },
        }));
        paths.insert(format!("/api/v1/{plural}/{{id}}"), json!({
            "parameters": [id_param],
            "get": { "tags": [plural], "summary": format!("Get a {}", kind.name()),
                     "responses": with_errors(json!({ "200": { "description": "The record", "content": one["content"] } })) },
            "patch": { "tags": [plural], "summary": format!("Change some fields of a {}; null clears a field", kind.name()),
                       "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{t}Input") } } } },
                       "responses": with_errors(json!({ "200": { "description": "The updated record", "content": one["content"] } })) },
            "delete": { "tags": [plural], "summary": format!("Delete a {}", kind.name()),
                        "responses": with_errors(json!({ "204": { "description": "Deleted" } })) },
        }));
        paths.insert(format!("/api/v1/{plural}/{{id}}/timeline"), json!({
            "parameters": [id_param],
            "get": { "tags": [plural], "summary": "Everything that touched the record, newest first",
                     "parameters": [list_params[0], list_params[1]],
                     "responses": with_errors(json!({ "200": { "description": "A page of timeline items" } })) },
        }));
        paths.insert(format!("/api/v1/{plural}/{{id}}/history"), json!({
            "parameters": [id_param],
            "get": { "tags": [plural], "summary": "The record's change history, newest first: who, when, each field before and after (also after the record was deleted)",
                     "parameters": [
                         { "name": "before", "in": "query", "schema": { "type": "integer" }, "description": "next_before of the previous page" },
                         { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } } ],
                     "responses": with_errors(json!({ "200": { "description": "Events and next_before" } })) },
        }));
    }
    let simple = |tag: &str, summary: &str| json!({ "tags": [tag], "summary": summary, "responses": with_errors(json!({ "200": { "description": "OK" } })) });
    paths.insert(
        "/api/v1/health".into(),
        json!({ "get": simple("meta", "Liveness, version and record counts") }),
    );
    paths.insert(
        "/api/v1/openapi.json".into(),
        json!({ "get": simple("meta", "This document") }),
    );
    paths.insert("/api/v1/events".into(), json!({ "get": {
        "tags": ["meta"], "summary": "The event log, oldest first",
        "parameters": [
            { "name": "after", "in": "query", "schema": { "type": "integer" }, "description": "Return events with seq above this." },
            { "name": "limit", "in": "query", "schema": { "type": "integer", "maximum": 1000 } },
        ],
        "responses": with_errors(json!({ "200": { "description": "Events and next_after" } })) } }));
    paths.insert("/api/v1/pipelines".into(), json!({
        "get": simple("pipelines", "List pipelines and their stages"),
        "post": { "tags": ["pipelines"], "summary": "Create a pipeline",
                  "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Pipeline" } } } },
                  "responses": with_errors(json!({ "201": { "description": "Created" } })) },
    }));
    paths.insert("/api/v1/pipelines/{key}".into(), json!({
        "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }],
        "get": simple("pipelines", "Get a pipeline"),
        "put": { "tags": ["pipelines"], "summary": "Replace a pipeline's name and stages",
                 "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Pipeline" } } } },
                 "responses": with_errors(json!({ "200": { "description": "Stored" } })) },
    }));
    let kind_param = json!({ "name": "kind", "in": "path", "required": true, "schema": { "type": "string", "enum": EntityKind::ALL.map(EntityKind::plural) } });
    paths.insert("/api/v1/fields/{kind}".into(), json!({
        "parameters": [kind_param],
        "get": simple("fields", "Built-in and custom fields of a record kind"),
        "post": { "tags": ["fields"], "summary": "Define a custom field",
                  "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/FieldDefinition" } } } },
                  "responses": with_errors(json!({ "201": { "description": "Defined" } })) },
    }));
    paths.insert("/api/v1/fields/{kind}/{name}".into(), json!({
        "parameters": [kind_param, { "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
        "patch": { "tags": ["fields"], "summary": "Change a custom field an admin defined: label, help, required, more options (options in use cannot be removed; a plugin's fields belong to the plugin)",
                   "requestBody": { "required": true, "content": { "application/json": { "schema": {
                       "type": "object", "additionalProperties": false,
                       "properties": {
                           "label": { "type": "string" },
                           "help": { "type": "string" },
                           "required": { "type": "boolean" },
                           "options": { "type": "array", "items": { "type": "string" }, "description": "Every current option plus any new ones" },
                       } } } } },
                   "responses": with_errors(json!({ "200": { "description": "Changed" } })) },
        "delete": { "tags": ["fields"], "summary": "Remove a custom field definition (values stay as plain data)",
                    "responses": with_errors(json!({ "204": { "description": "Removed" } })) },
    }));
    let upload = json!({ "required": true, "content": { "multipart/form-data": { "schema": {
        "type": "object", "required": ["manifest", "wasm"],
        "properties": {
            "manifest": { "type": "string", "description": "kith-plugin.toml" },
            "wasm": { "type": "string", "format": "binary", "description": "The plugin's WebAssembly component" },
            "grant": { "type": "string", "description": "Every capability the manifest requests, comma-separated (read:contact,action:create-task)" },
        } } } } });
    let plugin_id =
        json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } });
    paths.insert("/api/v1/plugins".into(), json!({
        "get": simple("plugins", "Installed plugins with status, grants, settings and metrics"),
        "post": { "tags": ["plugins"], "summary": "Install a plugin (multipart upload; its requested capabilities must be granted)",
                  "requestBody": upload,
                  "responses": with_errors(json!({ "201": { "description": "Installed" } })) },
    }));
    paths.insert("/api/v1/plugins/{id}".into(), json!({
        "parameters": [plugin_id],
        "get": simple("plugins", "One plugin"),
        "put": { "tags": ["plugins"], "summary": "Upgrade in place, without a restart (calls in flight finish on the old version)",
                 "requestBody": upload,
                 "responses": with_errors(json!({ "200": { "description": "Upgraded" } })) },
        "delete": { "tags": ["plugins"], "summary": "Uninstall (values of its custom fields stay as plain data)",
                    "responses": with_errors(json!({ "204": { "description": "Removed" } })) },
    }));
    for (action, summary) in [
        ("enable", "Let the plugin run"),
        (
            "disable",
            "Stop the plugin running; its fields and scores stay",
        ),
        ("resume", "Lift a suspension after repeated failures"),
    ] {
        paths.insert(
            format!("/api/v1/plugins/{{id}}/{action}"),
            json!({
                "parameters": [plugin_id],
                "post": simple("plugins", summary),
            }),
        );
    }
    paths.insert("/api/v1/plugins/{id}/settings".into(), json!({
        "parameters": [plugin_id],
        "patch": { "tags": ["plugins"], "summary": "Change settings: a JSON object of name to value",
                   "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
                   "responses": with_errors(json!({ "200": { "description": "The plugin with its new settings" } })) },
        "put": simple("plugins", "Same as PATCH"),
    }));
    paths.insert("/api/v1/plugins/{id}/limits".into(), json!({
        "parameters": [plugin_id],
        "patch": { "tags": ["plugins"], "summary": "Set the plugin's own limits below the server's: hook_timeout_ms, memory_mib (null: the server's)",
                   "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "properties": {
                       "hook_timeout_ms": { "type": ["integer", "null"] }, "memory_mib": { "type": ["integer", "null"] } } } } } },
                   "responses": with_errors(json!({ "200": { "description": "The plugin with its limits" } })) },
        "put": simple("plugins", "Same as PATCH"),
    }));
    paths.insert("/api/v1/audit".into(), json!({
        "get": { "tags": ["audit"], "summary": "Search the whole change history, newest first: who changed which record when, with each field's value before and after",
                 "parameters": [
                     { "name": "actor", "in": "query", "schema": { "type": "string" }, "description": "api, demo, plugin:<id>, ..." },
                     { "name": "kind", "in": "query", "schema": { "type": "string", "enum": EntityKind::ALL.map(EntityKind::name) } },
                     { "name": "record", "in": "query", "schema": { "type": "string", "format": "uuid" } },
                     { "name": "from", "in": "query", "schema": { "type": "string", "format": "date-time" } },
                     { "name": "to", "in": "query", "schema": { "type": "string", "format": "date-time" } },
                     { "name": "before", "in": "query", "schema": { "type": "integer" }, "description": "next_before of the previous page" },
                     { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } } ],
                 "responses": with_errors(json!({ "200": { "description": "Matching events and next_before (null at the start of the log; a short page may still have a next one: a search reads at most 100,000 events per page)" } })) },
    }));
    paths.insert("/api/v1/plugins/{id}/delivery".into(), json!({
        "parameters": [plugin_id],
        "get": { "tags": ["plugins"], "summary": "Workflow delivery: the plugin's cursor in the event log, its lag behind the newest event, pending timers (count and the soonest), failures in a row and recent failures",
                 "responses": with_errors(json!({ "200": { "description": "The delivery state", "content": { "application/json": { "schema": { "type": "object", "properties": {
                     "plugin": { "type": "string" }, "subscribes": { "type": "array", "items": { "type": "string" } },
                     "cursor": { "type": "integer" }, "head": { "type": "integer" }, "lag": { "type": "integer" },
                     "pending_timers": { "type": "integer" },
                     "next_timers": { "type": "array", "items": { "type": "object", "properties": { "at": { "type": "string", "format": "date-time" }, "key": { "type": ["string", "null"] }, "payload": { "type": "string" } } } },
                     "consecutive_failures": { "type": "integer" },
                     "recent_failures": { "type": "array", "items": { "type": "object", "properties": { "at": { "type": "string", "format": "date-time" }, "seq": { "type": ["integer", "null"] }, "timer": { "type": ["string", "null"] }, "message": { "type": "string" } } } } } } } } } })) },
    }));
    paths.insert("/api/v1/scores/rescore".into(), json!({
        "post": { "tags": ["plugins"], "summary": "Recompute every score (or those of ?kind=)",
                  "parameters": [{ "name": "kind", "in": "query", "schema": { "type": "string", "enum": EntityKind::ALL.map(EntityKind::name) } }],
                  "responses": with_errors(json!({ "200": { "description": "How many records were scored" } })) },
    }));
    report_paths(&mut paths, &mut schemas);
    account_paths(&mut paths, &mut schemas);
    mark_roles(&mut paths);
    schemas.insert("Error".into(), json!({
        "type": "object",
        "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
            "code": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string" } } } },
    }));
    schemas.insert("Pipeline".into(), json!({
        "type": "object", "required": ["key", "name", "stages"],
        "properties": {
            "key": { "type": "string" }, "name": { "type": "string" },
            "stages": { "type": "array", "items": { "type": "object", "required": ["key", "probability"], "properties": {
                "key": { "type": "string" }, "name": { "type": "string" },
                "probability": { "type": "integer", "minimum": 0, "maximum": 100 },
                "outcome": { "type": "string", "enum": ["open", "won", "lost"] } } } },
        },
    }));
    schemas.insert("FieldDefinition".into(), json!({
        "type": "object", "required": ["name", "type"],
        "properties": {
            "name": { "type": "string" }, "label": { "type": "string" },
            "type": { "type": "string", "enum": ["text", "long_text", "number", "integer", "money", "date", "datetime", "boolean", "choice", "multi_choice", "url", "email", "phone", "reference"] },
            "required": { "type": "boolean" }, "options": { "type": "array", "items": { "type": "string" } },
            "help": { "type": "string" }, "reference_kind": { "type": "string", "enum": EntityKind::ALL.map(EntityKind::name) },
        },
    }));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Kith CRM API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Contacts, companies, deals, tickets, interactions and tasks. Errors are {\"error\": {\"code\", \"message\", \"field\"}}.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "token": { "type": "http", "scheme": "bearer", "description": "An API token (POST /api/v1/tokens, the account page, or `kith token create`)." },
                "session": { "type": "apiKey", "in": "cookie", "name": SESSION_COOKIE, "description": "The web UI's session; changes also need the x-csrf-token header (GET /api/v1/me)." },
            },
        },
        "security": [{ "token": [] }, { "session": [] }],
    })
}

/// Sets on every operation the least role that may call it (`x-kith-role`, from the same
/// table the server enforces), and `security: []` on the public ones.
fn mark_roles(paths: &mut Map<String, Json>) {
    for route in route_table() {
        let method = route.method.as_str().to_ascii_lowercase();
        let Some(op) = paths
            .get_mut(&route.path)
            .and_then(|p| p.get_mut(&method))
            .and_then(Json::as_object_mut)
        else {
            continue;
        };
        op.insert("x-kith-role".into(), json!(route.need.name()));
        if route.need == Need::Public {
            op.insert("security".into(), json!([]));
        }
    }
}

/// `/api/v1/me`, users, teams, tokens and the organisation settings.
fn account_paths(paths: &mut Map<String, Json>, schemas: &mut Map<String, Json>) {
    let body = |schema: &str| json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
    let op = |tag: &str, summary: &str, ok: &str, what: &str| json!({ "tags": [tag], "summary": summary, "responses": with_errors(json!({ ok: { "description": what } })) });
    let with_body = |mut o: Json, schema: &str| {
        o["requestBody"] = body(schema);
        o
    };
    paths.insert("/api/v1/me".into(), json!({
        "get": op("accounts", "The caller: user, what they see (all or own_and_team), how they signed in, their audit actor, and the CSRF token of a session", "200", "The caller"),
    }));
    paths.insert("/api/v1/me/password".into(), json!({
        "post": with_body(op("accounts", "Change your password (at least 10 characters); ends your other sessions", "204", "Changed"), "PasswordChange"),
    }));
    paths.insert("/api/v1/users".into(), json!({
        "get": op("accounts", "Every user", "200", "Users"),
        "post": with_body(op("accounts", "Add a user; without a password one is generated and returned once", "201", "The user (and a generated password)"), "NewUser"),
    }));
    let user_id = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } });
    paths.insert("/api/v1/users/{id}".into(), json!({
        "parameters": [user_id],
        "get": op("accounts", "One user", "200", "The user"),
        "patch": with_body(op("accounts", "Change email, name, role, team (null: none), active or password; deactivating or a new password ends their sessions; the last active admin stays", "200", "The user"), "UserChanges"),
    }));
    paths.insert(
        "/api/v1/teams".into(),
        json!({
            "get": op("accounts", "Every team", "200", "Teams"),
            "post": with_body(op("accounts", "Add a team", "201", "The team"), "Team"),
        }),
    );
    paths.insert("/api/v1/teams/{key}".into(), json!({
        "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }],
        "put": with_body(op("accounts", "Add or rename a team (body: name)", "200", "The team"), "Team"),
        "delete": op("accounts", "Remove a team that has no members", "204", "Removed"),
    }));
    paths.insert("/api/v1/tokens".into(), json!({
        "get": { "tags": ["accounts"], "summary": "Your API tokens (admins: any user's with ?user=); never the secret",
                 "parameters": [{ "name": "user", "in": "query", "schema": { "type": "string" }, "description": "A user id or email (admins)" }],
                 "responses": with_errors(json!({ "200": { "description": "Tokens" } })) },
        "post": with_body(op("accounts", "Create an API token for yourself (admins: for anyone); the secret is in this answer only", "201", "The token and its secret"), "NewToken"),
    }));
    paths.insert("/api/v1/tokens/{id}".into(), json!({
        "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }],
        "delete": op("accounts", "Revoke a token: refused from now on", "200", "The revoked token"),
    }));
    paths.insert("/api/v1/settings".into(), json!({
        "get": op("accounts", "Organisation settings", "200", "Settings"),
        "put": with_body(op("accounts", "Change organisation settings", "200", "Settings"), "OrgSettings"),
    }));
    let role = json!({ "type": "string", "enum": ["admin", "manager", "agent", "viewer"] });
    schemas.insert("PasswordChange".into(), json!({
        "type": "object", "required": ["current_password", "new_password"],
        "properties": { "current_password": { "type": "string" }, "new_password": { "type": "string", "minLength": 10 } },
    }));
    schemas.insert("NewUser".into(), json!({
        "type": "object", "required": ["email", "role"],
        "properties": { "email": { "type": "string", "format": "email" }, "name": { "type": "string" }, "role": role,
                        "team": { "type": ["string", "null"] }, "password": { "type": "string", "minLength": 10 } },
    }));
    schemas.insert("UserChanges".into(), json!({
        "type": "object",
        "properties": { "email": { "type": "string", "format": "email" }, "name": { "type": "string" }, "role": role,
                        "team": { "type": ["string", "null"] }, "active": { "type": "boolean" }, "password": { "type": "string", "minLength": 10 } },
    }));
    schemas.insert("Team".into(), json!({
        "type": "object", "required": ["name"],
        "properties": { "key": { "type": "string", "pattern": "^[a-z0-9-]{1,64}$" }, "name": { "type": "string" } },
    }));
    schemas.insert("NewToken".into(), json!({
        "type": "object", "required": ["name"],
        "properties": { "name": { "type": "string" }, "expires_at": { "type": "string", "format": "date-time" },
                        "expires_in_days": { "type": "integer", "minimum": 1 }, "user": { "type": "string", "description": "A user id or email (admins)" } },
    }));
    schemas.insert("OrgSettings".into(), json!({
        "type": "object", "required": ["agent_scope"],
        "properties": { "agent_scope": { "type": "string", "enum": ["all", "own_and_team"], "description": "Whether agents see every record or only their own and their team's" } },
    }));
}
