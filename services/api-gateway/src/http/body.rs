//! Reading request bodies and query strings field by field, so every bad field is named in one
//! 422 answer instead of failing at the first.

use domain::command::{CreateUser, UpdateUser};
use domain::export::ExportSpec;
use domain::user::{Age, Email, FieldError, Locale, Name, NewUser};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::ApiError;

fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| ApiError::BadRequest("the body must be a JSON object".into()))
}

fn unknown_fields(map: &Map<String, Value>, allowed: &[&str], errors: &mut Vec<FieldError>) {
    for name in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errors.push(FieldError::new(name, "unknown", "unknown field"));
    }
}

/// A string field; `Ok(None)` when absent.
fn string<'a>(map: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, FieldError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Null) => Err(FieldError::new(name, "required", format!("{name} cannot be null"))),
        Some(_) => Err(FieldError::new(name, "invalid_type", format!("{name} must be a string"))),
    }
}

/// The age: absent (`None`), null (`Some(None)`) or a whole number (`Some(Some(n))`).
fn age(map: &Map<String, Value>) -> Result<Option<Option<i64>>, FieldError> {
    match map.get("age") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(n) => Age::parse(n).map(|_| Some(Some(n))),
            None if n.as_u64().is_some() => Err(FieldError::new("age", "out_of_range", "must be between 0 and 150")),
            None => Err(FieldError::new("age", "invalid_type", "age must be a whole number")),
        },
        Some(_) => Err(FieldError::new("age", "invalid_type", "age must be a whole number or null")),
    }
}

/// The locale: absent (`None`), null (`Some(None)`) or a tag (`Some(Some(tag))`), checked.
fn locale(map: &Map<String, Value>) -> Result<Option<Option<String>>, FieldError> {
    match map.get("locale") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(tag)) => Locale::parse(tag).map(|_| Some(Some(tag.clone()))),
        Some(_) => Err(FieldError::new("locale", "invalid_type", "locale must be a string or null")),
    }
}

/// `POST /users`: email and name required, age and locale optional.
pub(crate) fn create(body: &Value) -> Result<CreateUser, ApiError> {
    let map = object(body)?;
    let mut errors = Vec::new();
    unknown_fields(map, &["email", "name", "age", "locale"], &mut errors);
    let email = string(map, "email").map_err(|e| errors.push(e)).ok().flatten();
    let name = string(map, "name").map_err(|e| errors.push(e)).ok().flatten();
    let age = age(map).map_err(|e| errors.push(e)).ok().flatten().flatten();
    let locale = locale(map).map_err(|e| errors.push(e)).ok().flatten().flatten();
    let raw = CreateUser {
        email: email.unwrap_or_default().to_owned(),
        name: name.unwrap_or_default().to_owned(),
        age,
        locale,
    };
    // Missing fields are reported like empty ones, by the domain's own rules.
    if let Err(domain_errors) = NewUser::parse(&raw) {
        for error in domain_errors {
            if !errors.iter().any(|e| e.field == error.field) {
                errors.push(error);
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Ok(raw)
}

/// `PATCH /users/{id}`: any of email, name, age, locale (null clears the age or the locale).
pub(crate) fn update(user_id: Uuid, expected_version: Option<u64>, body: &Value) -> Result<UpdateUser, ApiError> {
    let map = object(body)?;
    let mut errors = Vec::new();
    unknown_fields(map, &["email", "name", "age", "locale"], &mut errors);
    let mut checked = |result: Result<Option<&str>, FieldError>, parse: fn(&str) -> Option<FieldError>| match result {
        Ok(Some(value)) => match parse(value) {
            Some(error) => {
                errors.push(error);
                None
            }
            None => Some(value.to_owned()),
        },
        Ok(None) => None,
        Err(error) => {
            errors.push(error);
            None
        }
    };
    let email = checked(string(map, "email"), |v| Email::parse(v).err());
    let name = checked(string(map, "name"), |v| Name::parse(v).err());
    let age = age(map).map_err(|e| errors.push(e)).ok().flatten();
    let locale = locale(map).map_err(|e| errors.push(e)).ok().flatten();
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Ok(UpdateUser { user_id, email, name, age, locale, expected_version })
}

/// `POST /exports`: every filter and the column list are optional; the domain checks values.
pub(crate) fn export(body: &Value) -> Result<ExportSpec, ApiError> {
    let map = object(body)?;
    let mut errors = Vec::new();
    let fields = ["q", "email_domain", "min_age", "max_age", "created_after", "created_before", "columns"];
    unknown_fields(map, &fields, &mut errors);
    let mut text = |name: &str| match map.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(name, "invalid_type", format!("{name} must be a string")));
            None
        }
    };
    let (q, email_domain) = (text("q"), text("email_domain"));
    let (created_after, created_before) = (text("created_after"), text("created_before"));
    let mut number = |name: &str| match map.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
        Some(_) => {
            errors.push(FieldError::new(name, "invalid_type", format!("{name} must be a whole number")));
            None
        }
    };
    let (min_age, max_age) = (number("min_age"), number("max_age"));
    let columns = match map.get("columns") {
        None | Some(Value::Null) => None,
        Some(Value::String(list)) => Some(list.split(',').map(str::to_owned).collect()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Some(items.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
        }
        Some(_) => {
            errors.push(FieldError::new("columns", "invalid_type", "columns must be a list of column names"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Ok(ExportSpec { q, email_domain, min_age, max_age, created_after, created_before, columns })
}

/// The version an `If-Match` header asks for: `"3"`, `W/"3"` or `3`; `*` asks for none.
/// Anything else can never match.
pub(crate) fn if_match(header: Option<&str>) -> Result<Option<u64>, ApiError> {
    let Some(raw) = header.map(str::trim) else {
        return Ok(None);
    };
    if raw == "*" {
        return Ok(None);
    }
    let tag = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
    tag.parse().map(Some).map_err(|_| ApiError::PreconditionFailed(format!("If-Match {raw} matches no version")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Invalid(errors) => errors.into_iter().map(|e| format!("{}:{}", e.field, e.code)).collect(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn a_create_names_every_bad_field() {
        let errors = fields(create(&json!({"email": 5, "age": 1.5, "nick": "x"})).unwrap_err());
        assert_eq!(errors, ["nick:unknown", "email:invalid_type", "age:invalid_type", "name:required"]);
        let errors = fields(create(&json!({"email": "nope", "name": "", "age": 151})).unwrap_err());
        assert_eq!(errors, ["age:out_of_range", "email:invalid", "name:required"]);
    }

    #[test]
    fn a_valid_create_keeps_the_raw_values_for_user_service() {
        let create = create(&json!({"email": " a@b.co ", "name": "A", "age": null})).unwrap();
        assert_eq!((create.email.as_str(), create.age), (" a@b.co ", None));
    }

    #[test]
    fn an_update_distinguishes_absent_null_and_set() {
        let id = Uuid::nil();
        assert_eq!(update(id, None, &json!({})).unwrap().age, None);
        assert_eq!(update(id, None, &json!({"age": null})).unwrap().age, Some(None));
        assert_eq!(update(id, Some(2), &json!({"age": 3})).unwrap().age, Some(Some(3)));
        assert_eq!(
            fields(update(id, None, &json!({"email": null, "name": "  "})).unwrap_err()),
            ["email:required", "name:required"]
        );
    }

    #[test]
    fn a_locale_is_checked_and_an_update_can_set_or_clear_it() {
        assert_eq!(
            create(&json!({"email": "a@b.co", "name": "A", "locale": "pt-BR"})).unwrap().locale.as_deref(),
            Some("pt-BR")
        );
        assert_eq!(create(&json!({"email": "a@b.co", "name": "A", "locale": null})).unwrap().locale, None);
        assert_eq!(
            fields(create(&json!({"email": "a@b.co", "name": "A", "locale": "xx-yy-zz"})).unwrap_err()),
            ["locale:invalid"]
        );
        assert_eq!(
            fields(create(&json!({"email": "a@b.co", "name": "A", "locale": 7})).unwrap_err()),
            ["locale:invalid_type"]
        );
        let id = Uuid::nil();
        assert_eq!(update(id, None, &json!({})).unwrap().locale, None);
        assert_eq!(update(id, None, &json!({"locale": null})).unwrap().locale, Some(None));
        assert_eq!(update(id, None, &json!({"locale": "fr"})).unwrap().locale, Some(Some("fr".into())));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_a_bad_request() {
        assert!(matches!(create(&json!([1])), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn an_export_spec_takes_columns_as_a_list_or_a_comma_string() {
        let spec = export(&json!({"columns": "email, name", "min_age": 18, "q": null})).unwrap();
        assert_eq!((spec.columns.unwrap().len(), spec.min_age, spec.q), (2, Some(18), None));
        let spec = export(&json!({"columns": ["id"]})).unwrap();
        assert_eq!(spec.columns.unwrap(), ["id"]);
        let errors = fields(export(&json!({"min_age": "18", "columns": [1], "sort": "x", "q": 3})).unwrap_err());
        assert_eq!(errors, ["sort:unknown", "q:invalid_type", "min_age:invalid_type", "columns:invalid_type"]);
    }

    #[test]
    fn if_match_accepts_strong_weak_and_bare_tags() {
        assert_eq!(if_match(Some("\"3\"")).unwrap(), Some(3));
        assert_eq!(if_match(Some("W/\"4\"")).unwrap(), Some(4));
        assert_eq!(if_match(Some("5")).unwrap(), Some(5));
        assert_eq!(if_match(Some("*")).unwrap(), None);
        assert!(matches!(if_match(Some("\"abc\"")), Err(ApiError::PreconditionFailed(_))));
    }
}
