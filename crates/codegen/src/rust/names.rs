//! Avro names as Rust names, and text as Rust literals.

/// A Rust string literal for `text`.
pub(super) fn lit(text: &str) -> String {
    format!("{text:?}")
}

const KEYWORDS: [&str; 38] = [
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
    "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "Self",
    "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while",
];

pub(super) fn rust_ident(name: &str) -> String {
    if KEYWORDS.contains(&name) { format!("r#{name}") } else { name.to_owned() }
}

/// `CREATED_AT` -> `CreatedAt`, `event` -> `Event`.
pub(super) fn variant_name(symbol: &str) -> String {
    pascal_case(&symbol.to_ascii_lowercase())
}

pub(super) fn pascal_case(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// `UserEvent` -> `user_event`.
pub(super) fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_rust_names() {
        assert_eq!(variant_name("CREATED_AT"), "CreatedAt");
        assert_eq!(variant_name("ID"), "Id");
        assert_eq!(pascal_case("outcome"), "Outcome");
        assert_eq!(snake_case("UserCommandReply"), "user_command_reply");
        assert_eq!(rust_ident("type"), "r#type");
        assert_eq!(rust_ident("email"), "email");
    }

    #[test]
    fn literals_are_valid_rust_for_any_text() {
        assert_eq!(lit("a \"b\" \\ c\n"), r#""a \"b\" \\ c\n""#);
    }
}
