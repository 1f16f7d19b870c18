//! Reading request bodies and query strings field by field, so every bad field is named in one
//! 422 answer instead of failing at the first.

use axum::http::HeaderValue;
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

/// A JSON number that is a whole number (`56` or `56.0`: JSON Schema's `integer`).
fn whole(n: &serde_json::Number) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: every whole f64 below is exact
    n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < EXACT).map(|f| f as i64))
}

/// The age: absent (`None`), null (`Some(None)`) or a whole number (`Some(Some(n))`).
fn age(map: &Map<String, Value>) -> Result<Option<Option<i64>>, FieldError> {
    match map.get("age") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Number(n)) => match whole(n) {
            Some(n) => Age::parse(n).map(|_| Some(Some(n))),
            None if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                Err(FieldError::new("age", "out_of_range", "must be between 0 and 150"))
            }
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

/// `PATCH /users/{id}`: any of email, name, age, locale (null clears the age or the locale). A
/// precondition that can never hold is a 412 only for a body that is otherwise valid; `current`
/// is the version this gateway reads (see [`Precondition::expected_version`]).
pub(crate) fn update(
    user_id: Uuid,
    precondition: Precondition,
    current: impl FnOnce() -> Option<u64>,
    body: &Value,
) -> Result<UpdateUser, ApiError> {
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
    let expected_version = precondition.expected_version(current)?;
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
        Some(Value::Number(n)) if whole(n).is_some() => whole(n),
        Some(_) => {
            errors.push(FieldError::new(name, "invalid_type", format!("{name} must be a whole number")));
            None
        }
    };
    let (min_age, max_age) = (number("min_age"), number("max_age"));
    let columns = match map.get("columns") {
        None | Some(Value::Null) => None,
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

/// What an `If-Match` header asks for (RFC 9110 13.1.1): `*`, or a list of entity tags of which
/// one must be the user's current version. Our tags are strong and quoted (`"3"`); a bare `3` is
/// taken too. A weak tag never matches (strong comparison), nor does a tag that is no version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// No header, or `*`.
    Any,
    /// The versions the header names (sorted, none twice; none at all: it can never hold), and
    /// the header as sent, for the answer.
    OneOf(Vec<u64>, String),
}

impl Precondition {
    /// The version the command may expect, or 412 when none can hold. When the header names
    /// several, the one this gateway reads as current (`current`) if it is among them, else the
    /// newest: user-service decides against the real current version either way.
    pub(crate) fn expected_version(self, current: impl FnOnce() -> Option<u64>) -> Result<Option<u64>, ApiError> {
        match self {
            Self::Any => Ok(None),
            Self::OneOf(versions, raw) => match versions.as_slice() {
                [] => Err(ApiError::PreconditionFailed(format!("If-Match {raw} matches no version"))),
                [only] => Ok(Some(*only)),
                [.., newest] => Ok(Some(current().filter(|c| versions.contains(c)).unwrap_or(*newest))),
            },
        }
    }
}

/// Reads an `If-Match` header; 400 when it is neither `*` nor a list of entity tags.
pub(crate) fn if_match(header: Option<&HeaderValue>) -> Result<Precondition, ApiError> {
    let Some(value) = header else {
        return Ok(Precondition::Any);
    };
    let raw = value.as_bytes().trim_ascii();
    let shown = String::from_utf8_lossy(raw).into_owned();
    if raw == b"*" {
        return Ok(Precondition::Any);
    }
    let malformed = || ApiError::BadRequest("If-Match must be * or entity tags such as \"3\"".into());
    let digits = |text: &[u8]| !text.is_empty() && text.iter().all(u8::is_ascii_digit);
    // Digits only, and small enough to be a version.
    let version = |text: &[u8]| digits(text).then(|| std::str::from_utf8(text).ok()?.parse::<u64>().ok()).flatten();
    if digits(raw) {
        return Ok(Precondition::OneOf(version(raw).into_iter().collect(), shown));
    }
    // #entity-tag: tags separated by commas (and optional whitespace); a comma may also be part
    // of a tag, so the list is read tag by tag rather than split.
    let (mut versions, mut tags, mut rest) = (Vec::new(), 0, raw);
    loop {
        rest = rest.trim_ascii_start();
        if let Some(after) = rest.strip_prefix(b",") {
            rest = after;
            continue;
        }
        if rest.is_empty() {
            break;
        }
        let (weak, quoted) = match rest.strip_prefix(b"W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let opaque = quoted.strip_prefix(b"\"").ok_or_else(malformed)?;
        let end = opaque.iter().position(|&b| b == b'"').ok_or_else(malformed)?;
        let (opaque, after) = (&opaque[..end], opaque[end + 1..].trim_ascii_start());
        // etagc = %x21 / %x23-7E / obs-text
        if !opaque.iter().all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80) {
            return Err(malformed());
        }
        if !(after.is_empty() || after.starts_with(b",")) {
            return Err(malformed());
        }
        tags += 1;
        versions.extend(version(opaque).filter(|_| !weak));
        rest = after;
    }
    if tags == 0 {
        return Err(malformed());
    }
    versions.sort_unstable();
    versions.dedup();
    Ok(Precondition::OneOf(versions, shown))
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
    fn a_whole_number_is_a_whole_number_however_it_is_written() {
        let age = |value: Value| create(&json!({"email": "a@b.co", "name": "A", "age": value}));
        assert_eq!(age(json!(56.0)).unwrap().age, Some(56));
        assert_eq!(fields(age(json!(1e300)).unwrap_err()), ["age:out_of_range"]);
        assert_eq!(fields(age(json!(u64::MAX)).unwrap_err()), ["age:out_of_range"]);
        assert_eq!(fields(age(json!(56.5)).unwrap_err()), ["age:invalid_type"]);
        let spec = export(&json!({"min_age": 18.0, "max_age": 65})).unwrap();
        assert_eq!((spec.min_age, spec.max_age), (Some(18), Some(65)));
    }

    #[test]
    fn a_valid_create_keeps_the_raw_values_for_user_service() {
        let create = create(&json!({"email": " a@b.co ", "name": "A", "age": null})).unwrap();
        assert_eq!((create.email.as_str(), create.age), (" a@b.co ", None));
    }

    #[test]
    fn an_update_distinguishes_absent_null_and_set() {
        let id = Uuid::nil();
        assert_eq!(update(id, Precondition::Any, || None, &json!({})).unwrap().age, None);
        assert_eq!(update(id, Precondition::Any, || None, &json!({"age": null})).unwrap().age, Some(None));
        assert_eq!(
            update(id, Precondition::OneOf(vec![2], "2".into()), || None, &json!({"age": 3})).unwrap().age,
            Some(Some(3))
        );
        // A precondition that can never hold is answered only for a valid body.
        let never = || Precondition::OneOf(Vec::new(), "\"x\"".into());
        assert!(matches!(update(id, never(), || None, &json!({"age": "old"})), Err(ApiError::Invalid(_))));
        assert!(matches!(update(id, never(), || None, &json!({"age": 3})), Err(ApiError::PreconditionFailed(_))));
        assert_eq!(
            fields(update(id, Precondition::Any, || None, &json!({"email": null, "name": "  "})).unwrap_err()),
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
        assert_eq!(update(id, Precondition::Any, || None, &json!({})).unwrap().locale, None);
        assert_eq!(update(id, Precondition::Any, || None, &json!({"locale": null})).unwrap().locale, Some(None));
        assert_eq!(
            update(id, Precondition::Any, || None, &json!({"locale": "fr"})).unwrap().locale,
            Some(Some("fr".into()))
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_a_bad_request() {
        assert!(matches!(create(&json!([1])), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn an_export_spec_takes_columns_as_a_list() {
        let spec = export(&json!({"columns": ["email", "name"], "min_age": 18, "q": null})).unwrap();
        assert_eq!((spec.columns.unwrap().len(), spec.min_age, spec.q), (2, Some(18), None));
        let errors = fields(export(&json!({"columns": "email,name"})).unwrap_err());
        assert_eq!(errors, ["columns:invalid_type"]);
        let spec = export(&json!({"columns": ["id"]})).unwrap();
        assert_eq!(spec.columns.unwrap(), ["id"]);
        let errors = fields(export(&json!({"min_age": "18", "columns": [1], "sort": "x", "q": 3})).unwrap_err());
        assert_eq!(errors, ["sort:unknown", "q:invalid_type", "min_age:invalid_type", "columns:invalid_type"]);
    }

    #[test]
    fn if_match_takes_star_or_entity_tags_and_only_strong_versions_can_match() {
        let read = |raw: &[u8]| if_match(Some(&HeaderValue::from_bytes(raw).unwrap()));
        let versions = |raw: &[u8]| match read(raw) {
            Ok(Precondition::OneOf(versions, _)) => versions,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
        };
        assert_eq!(if_match(None).unwrap(), Precondition::Any);
        assert_eq!(read(b"*").unwrap(), Precondition::Any);
        assert_eq!(versions(b" \"3\" "), [3]);
        assert_eq!(versions(b"3"), [3]);
        assert!(versions(b"08665027737790122749540").is_empty(), "no version is that large");
        assert_eq!(versions(b"\"5\", W/\"6\",\"x\" , \"2\",\"5\""), [2, 5]);
        assert_eq!(versions(b"W/\"a,b\",\"7\", \",\""), [7]);
        for never in [&b"W/\"4\""[..], b"\"abc\"", b"\"\"", b"\"+5\"", b"\"99999999999999999999\"", b"\"\xe9\""] {
            assert!(versions(never).is_empty(), "{:?}", String::from_utf8_lossy(never));
        }
        for malformed in [
            &b""[..],
            b"+5",
            b"\"a\"b\"",
            b"W/5",
            b"\"3",
            b"**",
            b"0.5",
            b"null",
            b"{}",
            b",",
            b"\"1\" \"2\"",
            b"\"1\"x",
            b"\"\t\"",
        ] {
            assert!(
                matches!(read(malformed), Err(ApiError::BadRequest(_))),
                "{:?}",
                String::from_utf8_lossy(malformed)
            );
        }
    }

    #[test]
    fn a_precondition_naming_several_versions_expects_the_current_one_if_named() {
        let one_of = |versions: &[u64]| Precondition::OneOf(versions.to_vec(), "tags".into());
        assert_eq!(Precondition::Any.expected_version(|| Some(4)).unwrap(), None);
        assert_eq!(one_of(&[7]).expected_version(|| Some(4)).unwrap(), Some(7));
        assert_eq!(one_of(&[2, 4, 6]).expected_version(|| Some(4)).unwrap(), Some(4));
        assert_eq!(one_of(&[2, 6]).expected_version(|| Some(4)).unwrap(), Some(6));
        assert_eq!(one_of(&[2, 6]).expected_version(|| None).unwrap(), Some(6));
        assert!(matches!(one_of(&[]).expected_version(|| Some(4)), Err(ApiError::PreconditionFailed(_))));
    }
}
