//! The subset of Avro the contract uses, parsed from a self-contained schema (its named types
//! defined before they are referred to, as Avro requires) and checked as it is read: names
//! resolved against their namespace, defaults matching their types, unions the generator can
//! express. Anything else is refused with the reason, never skipped.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// A type as a field (or an array, or a union) uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    Null,
    Boolean,
    Int,
    Long,
    String,
    /// `string` with logical type `uuid`.
    Uuid,
    /// `long` with logical type `timestamp-millis`.
    TimestampMillis,
    Array(Box<Type>),
    /// `["null", T]`: absent or a `T`.
    Nullable(Box<Type>),
    /// A union of records, each a branch.
    Records(Vec<String>),
    /// A record or an enum defined in the schema, by full name.
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub doc: Option<String>,
    pub ty: Type,
    /// What a reader uses when the writer's schema lacks the field.
    pub default: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub full_name: String,
    pub doc: Option<String>,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enum {
    pub full_name: String,
    pub doc: Option<String>,
    pub symbols: Vec<String>,
    /// The symbol a reader uses for a symbol it does not know.
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Definition {
    Record(Record),
    Enum(Enum),
}

impl Definition {
    pub fn full_name(&self) -> &str {
        match self {
            Self::Record(r) => &r.full_name,
            Self::Enum(e) => &e.full_name,
        }
    }

    /// Whether both mean the same to a reader: equal but for their documentation.
    pub fn same_meaning(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Record(a), Self::Record(b)) => {
                a.full_name == b.full_name
                    && a.fields.len() == b.fields.len()
                    && a.fields
                        .iter()
                        .zip(&b.fields)
                        .all(|(x, y)| (&x.name, &x.ty, &x.default) == (&y.name, &y.ty, &y.default))
            }
            (Self::Enum(a), Self::Enum(b)) => {
                (&a.full_name, &a.symbols, &a.default) == (&b.full_name, &b.symbols, &b.default)
            }
            _ => false,
        }
    }
}

/// A parsed schema: its root record and every named type, in the order they are defined.
#[derive(Debug, Clone)]
pub struct Schema {
    pub root: String,
    pub definitions: Vec<Definition>,
}

impl Schema {
    /// Parses a self-contained schema whose root is a record.
    pub fn parse(json: &Value) -> Result<Self, String> {
        let mut parser = Parser::default();
        match parser.parse_type(json, None)? {
            Type::Named(root) if matches!(parser.get(&root), Some(Definition::Record(_))) => {
                Ok(Self { root, definitions: parser.definitions })
            }
            other => Err(format!("the schema must be a record, not {other:?}")),
        }
    }

    pub fn definition(&self, full_name: &str) -> Option<&Definition> {
        self.definitions.iter().find(|d| d.full_name() == full_name)
    }
}

/// The namespace part of a full name (`a.b.C` -> `a.b`).
pub fn namespace_of(full_name: &str) -> Option<&str> {
    full_name.rsplit_once('.').map(|(ns, _)| ns)
}

/// The simple name of a full name (`a.b.C` -> `C`).
pub fn simple_name(full_name: &str) -> &str {
    full_name.rsplit_once('.').map_or(full_name, |(_, name)| name)
}

/// The full name a reference or a definition's `name` stands for in `namespace`.
pub fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
}

/// The full name a definition object declares (`name`, with `namespace` or the enclosing one).
pub fn declared_name(map: &Map<String, Value>, enclosing: Option<&str>) -> Result<String, String> {
    let name = map.get("name").and_then(Value::as_str).ok_or("a named type needs a \"name\"")?;
    let namespace = map.get("namespace").and_then(Value::as_str).or(enclosing);
    let full = full_name(name, namespace);
    if !full.split('.').all(is_avro_name) {
        return Err(format!("{full:?} is not a valid Avro name"));
    }
    Ok(full)
}

/// Avro names: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_avro_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

#[derive(Default)]
struct Parser {
    definitions: Vec<Definition>,
    index: HashMap<String, usize>,
}

impl Parser {
    fn get(&self, full_name: &str) -> Option<&Definition> {
        self.index.get(full_name).map(|&i| &self.definitions[i])
    }

    fn define(&mut self, definition: Definition) -> Result<(), String> {
        let name = definition.full_name().to_owned();
        if self.index.contains_key(&name) {
            return Err(format!("{name} is defined twice"));
        }
        self.index.insert(name, self.definitions.len());
        self.definitions.push(definition);
        Ok(())
    }

    fn parse_type(&mut self, json: &Value, namespace: Option<&str>) -> Result<Type, String> {
        match json {
            Value::String(name) => self.named_or_primitive(name, None, namespace),
            Value::Array(branches) => self.union(branches, namespace),
            Value::Object(map) => self.object(map, namespace),
            other => Err(format!("{other} is not a schema")),
        }
    }

    fn named_or_primitive(&self, name: &str, logical: Option<&str>, namespace: Option<&str>) -> Result<Type, String> {
        Ok(match (name, logical) {
            ("null", _) => Type::Null,
            ("boolean", _) => Type::Boolean,
            ("int", _) => Type::Int,
            ("long", Some("timestamp-millis")) => Type::TimestampMillis,
            ("long", _) => Type::Long,
            ("string", Some("uuid")) => Type::Uuid,
            ("string", _) => Type::String,
            ("float" | "double" | "bytes", _) => {
                return Err(format!("type {name} is not supported by the generator yet (crates/codegen)"));
            }
            _ => {
                let full = full_name(name, namespace);
                if self.get(&full).is_none() {
                    return Err(format!(
                        "unknown type {full}: define it before its first use, or in schemas/types/ and refer to it by its full name"
                    ));
                }
                Type::Named(full)
            }
        })
    }

    fn object(&mut self, map: &Map<String, Value>, namespace: Option<&str>) -> Result<Type, String> {
        let logical = map.get("logicalType").and_then(Value::as_str);
        match map.get("type") {
            Some(Value::String(kind)) => match kind.as_str() {
                "record" | "error" => self.record(map, namespace),
                "enum" => self.enumeration(map, namespace),
                "array" => {
                    let items = map.get("items").ok_or("an array needs \"items\"")?;
                    Ok(Type::Array(Box::new(self.parse_type(items, namespace)?)))
                }
                "map" | "fixed" => Err(format!("type {kind} is not supported by the generator yet (crates/codegen)")),
                primitive => self.named_or_primitive(primitive, logical, namespace),
            },
            Some(nested) => self.parse_type(nested, namespace),
            None => Err("a schema object needs a \"type\"".into()),
        }
    }

    fn record(&mut self, map: &Map<String, Value>, namespace: Option<&str>) -> Result<Type, String> {
        let full = declared_name(map, namespace)?;
        let own_namespace = namespace_of(&full).map(str::to_owned);
        // Defined before its fields are read, as Avro says (a field may refer to it).
        self.define(Definition::Record(Record { full_name: full.clone(), doc: doc(map), fields: vec![] }))?;
        let raw_fields =
            map.get("fields").and_then(Value::as_array).ok_or_else(|| format!("{full} needs \"fields\""))?;
        let mut fields: Vec<Field> = Vec::with_capacity(raw_fields.len());
        for raw in raw_fields {
            let raw = raw.as_object().ok_or_else(|| format!("{full}: a field must be an object"))?;
            let name =
                raw.get("name").and_then(Value::as_str).ok_or_else(|| format!("{full}: a field needs a name"))?;
            if !is_avro_name(name) || fields.iter().any(|f| f.name == name) {
                return Err(format!("{full}: field name {name:?} is invalid or repeated"));
            }
            let ty = self
                .parse_type(
                    raw.get("type").ok_or_else(|| format!("{full}.{name} needs a type"))?,
                    own_namespace.as_deref(),
                )
                .map_err(|e| format!("{full}.{name}: {e}"))?;
            let default = raw.get("default").cloned();
            if let Some(default) = &default {
                self.check_default(&ty, default).map_err(|e| format!("{full}.{name}: default {default}: {e}"))?;
            }
            fields.push(Field { name: name.to_owned(), doc: doc(raw), ty, default });
        }
        let i = self.index[&full];
        if let Definition::Record(record) = &mut self.definitions[i] {
            record.fields = fields;
        }
        Ok(Type::Named(full))
    }

    fn enumeration(&mut self, map: &Map<String, Value>, namespace: Option<&str>) -> Result<Type, String> {
        let full = declared_name(map, namespace)?;
        let symbols: Vec<String> = map
            .get("symbols")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{full} needs \"symbols\""))?
            .iter()
            .map(|s| s.as_str().map(str::to_owned).ok_or_else(|| format!("{full}: symbols are strings")))
            .collect::<Result<_, _>>()?;
        if symbols.is_empty() || symbols.iter().enumerate().any(|(i, s)| !is_avro_name(s) || symbols[..i].contains(s)) {
            return Err(format!("{full}: symbols must be valid, distinct names"));
        }
        let default = match map.get("default") {
            None => None,
            Some(Value::String(s)) if symbols.contains(s) => Some(s.clone()),
            Some(other) => return Err(format!("{full}: default {other} is not one of its symbols")),
        };
        self.define(Definition::Enum(Enum { full_name: full.clone(), doc: doc(map), symbols, default }))?;
        Ok(Type::Named(full))
    }

    /// The unions the generator expresses: `["null", T]`, and unions of records.
    fn union(&mut self, branches: &[Value], namespace: Option<&str>) -> Result<Type, String> {
        let types: Vec<Type> = branches.iter().map(|b| self.parse_type(b, namespace)).collect::<Result<_, _>>()?;
        let record_names: Option<Vec<String>> = types
            .iter()
            .map(|t| match t {
                Type::Named(name) if matches!(self.get(name), Some(Definition::Record(_))) => Some(name.clone()),
                _ => None,
            })
            .collect();
        match (types.as_slice(), record_names) {
            ([Type::Null, other], _) if !matches!(other, Type::Null | Type::Nullable(_)) => {
                Ok(Type::Nullable(Box::new(other.clone())))
            }
            (_, Some(names)) if !names.is_empty() => {
                if (1..names.len()).any(|i| names[..i].contains(&names[i])) {
                    return Err("a union names the same record twice".into());
                }
                Ok(Type::Records(names))
            }
            _ => Err(format!(
                "unsupported union {}: use [\"null\", T] (null first) or a union of records",
                Value::Array(branches.to_vec())
            )),
        }
    }

    /// A default must be a value of the field's type (of a union's first branch).
    fn check_default(&self, ty: &Type, default: &Value) -> Result<(), String> {
        let ok = match (ty, default) {
            (Type::Null | Type::Nullable(_), Value::Null) | (Type::Boolean, Value::Bool(_)) => true,
            (Type::Int, Value::Number(n)) => n.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            (Type::Long | Type::TimestampMillis, Value::Number(n)) => n.as_i64().is_some(),
            (Type::String, Value::String(_)) => true,
            (Type::Uuid, Value::String(s)) => s.len() == 36,
            (Type::Array(_), Value::Array(items)) => items.is_empty(),
            (Type::Named(name), Value::String(symbol)) => {
                matches!(self.get(name), Some(Definition::Enum(e)) if e.symbols.contains(symbol))
            }
            _ => false,
        };
        if ok { Ok(()) } else { Err("does not match the type (a union's default matches its first branch)".into()) }
    }
}

fn doc(map: &Map<String, Value>) -> Option<String> {
    map.get("doc").and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(json: Value) -> Result<Schema, String> {
        Schema::parse(&json)
    }

    #[test]
    fn names_resolve_against_the_enclosing_namespace() {
        let schema = parse(json!({"type": "record", "name": "Outer", "namespace": "a.b", "fields": [
            {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "int"}]}},
            {"name": "again", "type": "Inner"},
            {"name": "elsewhere", "type": {"type": "enum", "name": "c.State", "symbols": ["ON"]}},
            {"name": "by_full_name", "type": "c.State"}
        ]}))
        .unwrap();
        assert_eq!(schema.root, "a.b.Outer");
        let names: Vec<&str> = schema.definitions.iter().map(Definition::full_name).collect();
        assert_eq!(names, ["a.b.Outer", "a.b.Inner", "c.State"]);
        let Some(Definition::Record(outer)) = schema.definition("a.b.Outer") else { panic!() };
        assert_eq!(outer.fields[1].ty, Type::Named("a.b.Inner".into()));
        assert_eq!(outer.fields[3].ty, Type::Named("c.State".into()));
    }

    #[test]
    fn logical_types_and_supported_unions_are_recognised() {
        let schema = parse(json!({"type": "record", "name": "R", "fields": [
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "other", "type": {"type": "long", "logicalType": "something-new"}},
            {"name": "maybe", "type": ["null", "int"], "default": null},
            {"name": "list", "type": {"type": "array", "items": "string"}, "default": []}
        ]}))
        .unwrap();
        let Some(Definition::Record(r)) = schema.definition("R") else { panic!() };
        let types: Vec<&Type> = r.fields.iter().map(|f| &f.ty).collect();
        assert_eq!(
            types,
            [
                &Type::Uuid,
                &Type::TimestampMillis,
                &Type::Long,
                &Type::Nullable(Box::new(Type::Int)),
                &Type::Array(Box::new(Type::String))
            ]
        );
    }

    #[test]
    fn what_avro_or_the_generator_refuses_is_an_error_with_the_reason() {
        let field = |ty: Value, default: Option<Value>| {
            let mut f = json!({"name": "f", "type": ty});
            if let Some(d) = default {
                f["default"] = d;
            }
            parse(json!({"type": "record", "name": "R", "fields": [f]})).unwrap_err()
        };
        assert!(field(json!("Nope"), None).contains("unknown type Nope"));
        assert!(field(json!(["int", "null"]), None).contains("unsupported union"));
        assert!(field(json!(["null", "int"]), Some(json!(3))).contains("first branch"));
        assert!(field(json!("int"), Some(json!(1u64 << 40))).contains("does not match"));
        assert!(field(json!("double"), None).contains("not supported"));
        let e = json!({"type": "enum", "name": "E", "symbols": ["A"], "default": "B"});
        assert!(field(e, None).contains("not one of its symbols"));
        let twice = json!({"type": "record", "name": "R", "fields": [
            {"name": "a", "type": {"type": "enum", "name": "E", "symbols": ["A"]}},
            {"name": "b", "type": {"type": "enum", "name": "E", "symbols": ["A"]}}]});
        assert!(parse(twice).unwrap_err().contains("defined twice"));
        assert!(parse(json!("string")).unwrap_err().contains("must be a record"));
    }
}
