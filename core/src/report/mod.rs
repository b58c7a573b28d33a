//! Reports: the plain table every report produces ([`ReportTable`]), report and parameter
//! definitions, the CSV form of a table, and [`Reports`], the engine that answers the built-in
//! reports over deals, tickets, interactions and contacts.
//!
//! The built-in reports must stay interactive at a million deals. Decoding every record from
//! redb on each request takes seconds at that size, so [`Reports`] keeps a compact in-memory
//! projection per record kind (only the fields reports read, with repeated text interned),
//! built by one full scan the first time a report of that kind runs and then brought up to
//! date from the event log before every answer. A report computed from a projection equals
//! the same report computed from a fresh scan of the store; the tests hold it to that.
//!
//! Reports obey the same access rule as every other read ([`Access`]): run for a caller
//! limited to their own and their team's records ([`Reports::run_as`]), a report is computed
//! over exactly the records that caller may see, as if the others did not exist. Each
//! projection row keeps its record's owner and team (interned like the rest), and the
//! caller's user id and team are resolved to those numbers once per report, so the check is
//! two integer comparisons per row; the unrestricted path has no check at all.

mod builtin;
mod params;
mod projection;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use self::projection::{ContactRow, DealRow, InteractionRow, Projection, Row, TicketRow};
use crate::account::Access;
use crate::error::Error;
use crate::store::Store;
use crate::value::Value;

pub use self::params::parse_params;

/// What the `source` of a built-in report says.
pub const BUILT_IN: &str = "built-in";

/// A report's result: a table, and a hint for how to chart it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportTable {
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// One list of values per row, in column order.
    pub rows: Vec<Vec<Value>>,
    /// The chart that suits the table.
    pub chart: ChartKind,
    /// The column (by name) holding the chart's labels: the x axis, or the slices.
    pub label_column: Option<String>,
    /// The columns (by name) plotted as values.
    pub value_columns: Vec<String>,
}

/// One column of a [`ReportTable`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// A stable key (`weighted_amount`), used by `label_column` and `value_columns`.
    pub name: String,
    /// The header shown to people (`Weighted amount`).
    pub label: String,
}

/// How a report is best drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// A table only.
    #[default]
    None,
    /// Bars, one per label.
    Bar,
    /// A line over the labels (usually time).
    Line,
    /// Slices of a whole.
    Pie,
    /// Narrowing stages.
    Funnel,
}

/// What a report is and which parameters it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDef {
    /// The id used in URLs: a slug for built-in reports (`win-rate`), `<plugin>.<report>`
    /// for a plugin's.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it shows, in a sentence or two.
    pub description: String,
    /// [`BUILT_IN`] or the id of the plugin that provides it.
    pub source: String,
    /// The parameters it accepts; any other parameter is refused.
    pub parameters: Vec<ParamDef>,
}

/// One parameter a report accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamDef {
    /// Its name in the query string (`from`).
    pub name: String,
    /// Label for a form (`From`).
    pub label: String,
    /// What values it takes.
    pub kind: ParamKind,
    /// Help text: what it filters and its default.
    pub help: Option<String>,
}

/// The values a report parameter takes. In JSON: `{"type": "date"}`, or
/// `{"type": "choice", "options": ["owner", "source"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "options", rename_all = "snake_case")]
pub enum ParamKind {
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// Any text.
    Text,
    /// A whole number.
    Integer,
    /// An exact decimal number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// One of these options (matched case-insensitively).
    Choice(Vec<String>),
}

impl ParamKind {
    /// A short name for messages and documentation (`date`, `one of owner, source`).
    pub fn describe(&self) -> String {
        match self {
            ParamKind::Date => "a date (YYYY-MM-DD)".to_owned(),
            ParamKind::Text => "text".to_owned(),
            ParamKind::Integer => "a whole number".to_owned(),
            ParamKind::Number => "a number".to_owned(),
            ParamKind::Boolean => "true or false".to_owned(),
            ParamKind::Choice(options) => format!("one of {}", options.join(", ")),
        }
    }
}

/// The definitions of the built-in reports, in the order they are listed.
pub fn builtin_reports() -> Vec<ReportDef> {
    builtin::definitions()
}

/// The table as CSV (RFC 4180): a header row of column *labels*, then one line per row, lines
/// ending in CRLF. A field is quoted when it holds a comma, a quote, CR or LF, with quotes
/// doubled. Null is an empty field; decimals are written exactly; dates as `YYYY-MM-DD`.
///
/// A text cell that starts with `=`, `+`, `-`, `@`, a tab or CR gets a leading `'`, so a
/// spreadsheet opening the file shows it as text instead of running it as a formula (a
/// contact named `=HYPERLINK(...)` must not become a live link). Numbers are never changed.
pub fn to_csv(table: &ReportTable) -> String {
    let mut out = String::new();
    let header: Vec<String> = table.columns.iter().map(|c| c.label.clone()).collect();
    push_line(&mut out, header.iter().map(String::as_str));
    for row in &table.rows {
        let cells: Vec<String> = row.iter().map(csv_cell).collect();
        push_line(&mut out, cells.iter().map(String::as_str));
    }
    out
}

fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Text(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{s}"),
        other => other.to_string(),
    }
}

fn push_line<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if cell.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(cell);
        }
    }
    out.push_str("\r\n");
}

/// The report engine: answers the built-in reports from in-memory projections of the
/// records they read, kept current from the event log.
///
/// Cheap to clone (one `Arc` inside), `Send` and `Sync`. Each record kind's projection is
/// built by one full scan the first time a report needs it ([`Reports::warm`] builds them all
/// up front); before every answer it reads the events committed since, re-reads only the
/// records they name, and then computes the report while holding that kind's lock, so two
/// reports over the same kind take turns and reports over different kinds run in parallel.
#[derive(Clone)]
pub struct Reports {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    deals: Mutex<Option<Projection<DealRow>>>,
    tickets: Mutex<Option<Projection<TicketRow>>>,
    interactions: Mutex<Option<Projection<InteractionRow>>>,
    contacts: Mutex<Option<Projection<ContactRow>>>,
}

impl Reports {
    /// An engine over `store`. Nothing is read until the first report (or [`Reports::warm`]).
    pub fn new(store: Store) -> Reports {
        Reports {
            inner: Arc::new(Inner {
                store,
                deals: Mutex::new(None),
                tickets: Mutex::new(None),
                interactions: Mutex::new(None),
                contacts: Mutex::new(None),
            }),
        }
    }

    /// The built-in reports this engine answers.
    pub fn definitions(&self) -> Vec<ReportDef> {
        builtin_reports()
    }

    /// Runs the built-in report `id` with query-string parameters `raw` over every record, as
    /// the system: [`Reports::run_as`] with no access restriction.
    ///
    /// An unknown id is [`Error::NoSuch`]; an unknown parameter or a bad value is
    /// [`Error::BadQuery`] naming the parameter. Storage failures pass through.
    pub fn run(&self, id: &str, raw: &BTreeMap<String, String>) -> Result<ReportTable, Error> {
        self.run_as(id, raw, None)
    }

    /// Runs the built-in report `id` with query-string parameters `raw` for a caller with
    /// `access`: every figure is computed only over the records [`Access::sees`] lets them
    /// see, exactly as if the store held nothing else. `None`, or an access that sees
    /// everything, means every record.
    ///
    /// Errors as for [`Reports::run`].
    pub fn run_as(
        &self,
        id: &str,
        raw: &BTreeMap<String, String>,
        access: Option<&Access>,
    ) -> Result<ReportTable, Error> {
        let def = builtin::definitions()
            .into_iter()
            .find(|d| d.id == id)
            .ok_or_else(|| Error::NoSuch {
                what: "report",
                name: id.to_owned(),
            })?;
        // Records store their owner as a user id; people think of colleagues by email, so
        // an owner filter naming a known user's email means that user's id.
        let mut raw = raw.clone();
        if let Some(owner) = raw.get_mut("owner")
            && owner.contains('@')
            && let Some(user) = self.store().directory().user_by_email(owner)
        {
            *owner = user.id.to_string();
        }
        let args = builtin::Args::new(parse_params(&def.parameters, &raw)?)?;
        let access = access.filter(|a| !a.sees_all);
        builtin::run(self, id, &args, access)
    }

    /// Builds (or brings up to date) every projection now, so no report pays for the first
    /// full scan. Blocks for as long as the scans take.
    pub fn warm(&self) -> Result<(), Error> {
        let i = &self.inner;
        self.with(&i.deals, |_| Ok(()))?;
        self.with(&i.tickets, |_| Ok(()))?;
        self.with(&i.interactions, |_| Ok(()))?;
        self.with(&i.contacts, |_| Ok(()))
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Brings the projection behind `slot` up to date (building it on first use) and runs
    /// `f` on it under the lock, so the answer matches exactly the snapshot caught up to.
    fn with<R: Row, T>(
        &self,
        slot: &Mutex<Option<Projection<R>>>,
        f: impl FnOnce(&Projection<R>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut guard = lock(slot);
        let projection = match guard.take() {
            Some(mut p) => match p.refresh(&self.inner.store) {
                Ok(()) => p,
                // `refresh` reads everything it needs before it changes anything, so after
                // a storage error the projection is still whole at its old position.
                Err(e) => {
                    *guard = Some(p);
                    return Err(e);
                }
            },
            None => Projection::build(&self.inner.store)?,
        };
        f(guard.insert(projection))
    }
}

/// Locks a projection. A thread that panicked while holding the lock may have left the
/// projection half-changed, so a poisoned one is dropped and rebuilt from the store.
fn lock<R>(slot: &Mutex<Option<Projection<R>>>) -> MutexGuard<'_, Option<Projection<R>>> {
    slot.lock().unwrap_or_else(|poisoned| {
        let mut guard = poisoned.into_inner();
        *guard = None;
        guard
    })
}

impl fmt::Debug for Reports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reports")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}
