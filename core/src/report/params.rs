//! Report parameters: query-string text checked against a report's [`ParamDef`]s and turned
//! into typed [`Value`]s. Shared by built-in reports and, through the host, plugin reports,
//! so both refuse the same mistakes with the same messages.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{ParamDef, ParamKind};
use crate::error::Error;
use crate::value::Value;

/// Checks query-string parameters against `defs` and parses each value: a date becomes
/// [`Value::Date`], an integer [`Value::Integer`], a number [`Value::Number`], a boolean
/// [`Value::Bool`], text and choices [`Value::Text`] (a choice spelled as its option is).
///
/// A parameter given as empty text counts as not given. A name `defs` does not have, or a
/// value of the wrong shape, is [`Error::BadQuery`] naming the parameter.
pub fn parse_params(
    defs: &[ParamDef],
    raw: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Value>, Error> {
    let mut out = BTreeMap::new();
    for (name, text) in raw {
        let def = defs.iter().find(|d| d.name == *name).ok_or_else(|| {
            let known: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
            Error::bad_query(
                name,
                if known.is_empty() {
                    "this report takes no parameters".to_owned()
                } else {
                    format!(
                        "is not a parameter of this report (use {})",
                        known.join(", ")
                    )
                },
            )
        })?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        out.insert(name.clone(), parse_one(name, &def.kind, text)?);
    }
    Ok(out)
}

fn parse_one(name: &str, kind: &ParamKind, text: &str) -> Result<Value, Error> {
    let bad = || Error::bad_query(name, format!("'{text}' is not {}", kind.describe()));
    Ok(match kind {
        ParamKind::Date => {
            Value::Date(NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| bad())?)
        }
        ParamKind::Text => Value::Text(text.to_owned()),
        ParamKind::Integer => Value::Integer(text.parse().map_err(|_| bad())?),
        ParamKind::Number => Value::Number(text.parse::<Decimal>().map_err(|_| bad())?),
        ParamKind::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Bool(true),
            "false" | "0" | "no" => Value::Bool(false),
            _ => return Err(bad()),
        },
        ParamKind::Choice(options) => Value::Text(
            options
                .iter()
                .find(|o| o.eq_ignore_ascii_case(text))
                .ok_or_else(bad)?
                .clone(),
        ),
    })
}
