//! Request bodies: a JSON-object extractor whose rejections are [`ApiError`]s (so a malformed
//! body gets the same error shape as a validation failure), and the conversion of a JSON
//! object into the core's [`Input`].

use axum::body::Bytes;
use axum::extract::{FromRequest, Query, Request};
use kith_core::{Input, Value};
use serde_json::{Map, Value as Json};

use super::error::ApiError;

/// Query-string parameters as `T`, or the reason they do not fit; see [`params`].
pub type Params<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// The parameters, or a 400 `bad_query` naming what does not fit (an unknown parameter when
/// `T` denies unknown fields, a value of the wrong type).
pub fn params<T>(q: Params<T>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
}

/// A request body that must be a JSON object.
pub struct JsonObject(pub Map<String, Json>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await?;
        parse_object(&bytes).map(JsonObject)
    }
}

/// Parses a body as a JSON object, naming what is wrong if it is not one.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Json>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "malformed_json",
            "the request body is empty; send a JSON object",
        ));
    }
    match serde_json::from_slice::<Json>(bytes) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::bad_request(
            "malformed_json",
            format!(
                "the request body must be a JSON object, not {}",
                json_type(&other)
            ),
        )),
        Err(e) => Err(ApiError::bad_request(
            "malformed_json",
            format!("the request body is not valid JSON: {e}"),
        )),
    }
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Converts a JSON object into record input: top-level keys are built-in fields, the
/// `custom` object holds custom fields. Values must be scalars or lists.
pub fn to_input(map: Map<String, Json>) -> Result<Input, ApiError> {
    let mut input = Input::default();
    for (key, v) in map {
        if key == "custom" {
            match v {
                Json::Object(custom) => {
                    for (name, v) in custom {
                        let field = format!("custom.{name}");
                        input.custom.insert(name, value(&field, v)?);
                    }
                }
                Json::Null => {}
                other => {
                    return Err(invalid(
                        "custom",
                        format!(
                            "must be an object of custom field values, not {}",
                            json_type(&other)
                        ),
                    ));
                }
            }
        } else {
            let v = value(&key, v)?;
            input.fields.insert(key, v);
        }
    }
    Ok(input)
}

/// Converts one JSON value into a core value, naming `field` if it cannot be one.
pub fn value(field: &str, v: Json) -> Result<Value, ApiError> {
    serde_json::from_value::<Value>(v).map_err(|e| invalid(field, e.to_string()))
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        format!("{field}: {message}"),
    )
    .with_field(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_must_be_json_objects() {
        for (body, message) in [
            ("", "empty"),
            ("  ", "empty"),
            ("[1]", "not an array"),
            ("\"x\"", "not a string"),
            ("{\"a\":", "not valid JSON"),
        ] {
            let err = parse_object(body.as_bytes()).unwrap_err();
            assert!(format!("{err:?}").contains(message), "{body:?}: {err:?}");
        }
    }

    #[test]
    fn objects_become_input() {
        let map =
            parse_object(br#"{"title": "Pilot", "amount": 19.99, "custom": {"tier": "gold"}}"#)
                .unwrap();
        let input = to_input(map).unwrap();
        assert_eq!(input.fields["title"], Value::Text("Pilot".to_owned()));
        assert_eq!(
            input.fields["amount"],
            Value::Number(rust_decimal::Decimal::new(1999, 2))
        );
        assert_eq!(input.custom["tier"], Value::Text("gold".to_owned()));
    }

    #[test]
    fn nested_objects_name_their_field() {
        for (body, field) in [
            (r#"{"title": {"a": 1}}"#, "title"),
            (r#"{"custom": {"tier": {"a": 1}}}"#, "custom.tier"),
            (r#"{"custom": 3}"#, "custom"),
        ] {
            let err = to_input(parse_object(body.as_bytes()).unwrap()).unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
            assert!(
                format!("{err:?}").contains(&format!("field: Some(\"{field}\")")),
                "{body}: {err:?}"
            );
        }
    }
}
