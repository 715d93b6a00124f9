//! `labelSelector` and `fieldSelector` query parameters, parsed and validated like
//! `k8s.io/apimachinery/pkg/labels` and `pkg/fields`, so malformed selectors get the real 400 wording.

// `ApiError` is the crate-wide error and is returned by value, as in the other modules.
#![allow(clippy::result_large_err)]

use crate::error::ApiError;
use crate::server::strategy::Strategy;
use serde_json::Value;

/// A label selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One `key op values` requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let value = labels.and_then(|l| l.get(&self.key)).and_then(Value::as_str);
        match self.op {
            Op::Equals | Op::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotEquals | Op::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(actual), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Op::GreaterThan { actual > bound } else { actual < bound }
            }
        }
    }
}

/// A parsed label selector: equality- and set-based requirements, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`. A malformed selector is a 400 naming it.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let tokens = lex(raw).map_err(ApiError::bad_request)?;
        Parser { tokens, pos: 0 }.parse().map(|requirements| Self { requirements }).map_err(ApiError::bad_request)
    }

    /// Whether the object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// A label selector token, with its literal text for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Identifier(String),
    In,
    NotIn,
    Bang,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
    Comma,
    Open,
    Close,
    End,
}

impl Token {
    fn literal(&self) -> &str {
        match self {
            Token::Identifier(s) => s,
            Token::In => "in",
            Token::NotIn => "notin",
            Token::Bang => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::Greater => ">",
            Token::Less => "<",
            Token::Comma => ",",
            Token::Open => "(",
            Token::Close => ")",
            Token::End => "",
        }
    }

    /// In value position `in` and `notin` are plain identifiers (a label may be called `in`).
    fn as_value(&self) -> Token {
        match self {
            Token::In | Token::NotIn => Token::Identifier(self.literal().to_string()),
            other => other.clone(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn lex(raw: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = raw.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_space(c) {
            i += 1;
        } else if is_special(c) {
            let start = i;
            while i < chars.len() && is_special(chars[i]) {
                let candidate: String = chars[start..=i].iter().collect();
                if symbol(&candidate).is_none() {
                    break;
                }
                i += 1;
            }
            let literal: String = chars[start..i.max(start + 1)].iter().collect();
            i = i.max(start + 1);
            tokens.push(symbol(&literal).ok_or_else(|| format!("error expected: keyword found '{literal}'"))?);
        } else {
            let start = i;
            while i < chars.len() && !is_space(chars[i]) && !is_special(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(match word.as_str() {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier(word),
            });
        }
    }
    tokens.push(Token::End);
    Ok(tokens)
}

fn symbol(s: &str) -> Option<Token> {
    Some(match s {
        "!" => Token::Bang,
        "=" => Token::Equals,
        "==" => Token::DoubleEquals,
        "!=" => Token::NotEquals,
        ">" => Token::Greater,
        "<" => Token::Less,
        "," => Token::Comma,
        "(" => Token::Open,
        ")" => Token::Close,
        _ => return None,
    })
}

/// The recursive-descent parser of `labels.Parse`, with the same error texts.
struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Token {
        self.tokens.get(self.pos).cloned().unwrap_or(Token::End).as_value()
    }

    fn next(&mut self) -> Token {
        let t = self.tokens.get(self.pos).cloned().unwrap_or(Token::End);
        self.pos += 1;
        t
    }

    fn next_value(&mut self) -> Token {
        self.next().as_value()
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.peek() {
                Token::Identifier(_) | Token::Bang => {
                    let r = self.requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    match self.next_value() {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let t = self.peek();
                            if !matches!(t, Token::Identifier(_) | Token::Bang) {
                                return Err(format!("found '{}', expected: identifier after ','", t.literal()));
                            }
                        }
                        t => return Err(format!("found '{}', expected: ',' or 'end of string'", t.literal())),
                    }
                }
                Token::End => return Ok(requirements),
                t => return Err(format!("found '{}', expected: !, identifier, or 'end of string'", t.literal())),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut token = self.next_value();
        let negated = token == Token::Bang;
        if negated {
            token = self.next_value();
        }
        let Token::Identifier(key) = token else {
            return Err(format!("found '{}', expected: identifier", token.literal()));
        };
        validate_key(&key)?;
        if negated {
            return Ok(Requirement { key, op: Op::DoesNotExist, values: Vec::new() });
        }
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Ok(Requirement { key, op: Op::Exists, values: Vec::new() });
        }
        let op = match self.next() {
            Token::Equals | Token::DoubleEquals => Op::Equals,
            Token::NotEquals => Op::NotEquals,
            Token::In => Op::In,
            Token::NotIn => Op::NotIn,
            Token::Greater => Op::GreaterThan,
            Token::Less => Op::LessThan,
            t => return Err(format!("found '{}', expected: in, notin, =, ==, !=, gt, lt", t.literal())),
        };
        let values = match op {
            Op::In | Op::NotIn => self.set_values()?,
            _ => vec![self.exact_value()?],
        };
        match op {
            Op::In | Op::NotIn if values.is_empty() => {
                return Err("for 'in', 'notin' operators, values set can't be empty".into());
            }
            Op::GreaterThan | Op::LessThan if values[0].parse::<i64>().is_err() => {
                return Err(format!(
                    "values[0]: Invalid value: \"{}\": for 'Gt', 'Lt' operators, the value must be an integer",
                    values[0]
                ));
            }
            _ => {}
        }
        if !matches!(op, Op::GreaterThan | Op::LessThan) {
            let errors: Vec<String> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    label_value_error(v).map(|e| format!("values[{i}][{key}]: Invalid value: \"{v}\": {e}"))
                })
                .collect();
            if !errors.is_empty() {
                return Err(if errors.len() == 1 { errors[0].clone() } else { format!("[{}]", errors.join(", ")) });
            }
        }
        Ok(Requirement { key, op, values })
    }

    fn exact_value(&mut self) -> Result<String, String> {
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Ok(String::new());
        }
        match self.next_value() {
            Token::Identifier(v) => Ok(v),
            t => Err(format!("found '{}', expected: identifier", t.literal())),
        }
    }

    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let t = self.next_value();
        if t != Token::Open {
            return Err(format!("found '{}' expected: '('", t.literal()));
        }
        let mut values = Vec::new();
        match self.peek() {
            Token::Close => {
                self.next();
                return Ok(vec![String::new()]);
            }
            Token::Identifier(_) | Token::Comma => {}
            t => return Err(format!("found '{}', expected: ',', ')' or identifier", t.literal())),
        }
        let mut expect_value = true;
        loop {
            match self.next_value() {
                Token::Identifier(v) if expect_value => {
                    values.push(v);
                    expect_value = false;
                }
                Token::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Token::Close => {
                    if expect_value {
                        values.push(String::new());
                    }
                    values.sort();
                    values.dedup();
                    return Ok(values);
                }
                t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
            }
        }
    }
}

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`: a label name part or a non-empty label value.
fn is_qualified_name_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.starts_with(alnum) && s.ends_with(alnum) && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        label.starts_with(ok) && label.ends_with(ok) && label.chars().all(|c| ok(c) || c == '-')
    })
}

/// `validation.IsQualifiedName`: the key of a label.
fn validate_key(key: &str) -> Result<(), String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errors.push("prefix part must be no more than 253 bytes".to_string());
                }
                if !is_dns1123_subdomain(prefix) {
                    errors.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
                }
            }
            *name
        }
        _ => {
            return Err(format!(
                "<nil>: Invalid value: \"{key}\": a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            errors.push("name part must be no more than 63 bytes".to_string());
        }
        if !is_qualified_name_part(name) {
            errors.push(format!("name part {QUALIFIED_NAME_MSG}"));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(format!("<nil>: Invalid value: \"{key}\": {}", errors.join("; "))) }
}

/// `validation.IsValidLabelValue`, as the message after `Invalid value: "v": `.
fn label_value_error(value: &str) -> Option<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 bytes".to_string());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errors.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string());
    }
    if errors.is_empty() { None } else { Some(errors.join("; ")) }
}

/// One `field=value` or `field!=value` term of a field selector.
#[derive(Debug, Clone, PartialEq)]
struct FieldTerm {
    field: String,
    value: String,
    negated: bool,
    /// What the field reads as when the object lacks it: the Go zero value of its type.
    unset: &'static str,
}

/// A parsed field selector (`=`, `==`, `!=` on the fields the resource supports).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses a field selector for `resource` (plural, with `group`); an unsupported field is a 400
    /// `field label not supported: FIELD` (or, for built-ins without their own field labels, the
    /// generic `"F" is not a known field selector: ...` message).
    pub fn parse(group: &str, resource: &str, raw: &str) -> Result<Self, ApiError> {
        Self::parse_scoped(group, resource, true, raw)
    }

    /// As [`FieldSelector::parse`], knowing whether the resource is namespaced: a cluster-scoped
    /// custom resource rejects `metadata.namespace` as the real server does.
    pub fn parse_scoped(group: &str, resource: &str, namespaced: bool, raw: &str) -> Result<Self, ApiError> {
        let labels = field_labels(group, resource);
        let mut terms = Vec::new();
        for term in split_unescaped(raw, ',') {
            if term.is_empty() {
                continue;
            }
            let (field, value, negated) = split_term(&term).ok_or_else(|| {
                ApiError::bad_request(format!("invalid selector: '{raw}'; can't understand '{term}'"))
            })?;
            let value = unescape(&value).map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
            check_field(labels, group, namespaced, &field).map_err(ApiError::bad_request)?;
            let renamed = labels.and_then(|l| l.renamed.iter().find(|(old, _)| *old == field));
            let field = renamed.map_or(field, |(_, current)| current.to_string());
            let boolean = labels.is_some_and(|l| l.booleans.contains(&field.as_str()));
            let unset = if boolean { "false" } else { "" };
            terms.push(FieldTerm { field, value, negated, unset });
        }
        Ok(Self { terms })
    }

    /// Whether the object's fields satisfy every term (a missing field reads as its Go zero value:
    /// `false` for the boolean fields, `""` otherwise).
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|t| {
            let value = field_value(object, &t.field).unwrap_or_else(|| t.unset.to_string());
            (value == t.value) != t.negated
        })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// Splits on `sep` not preceded by a backslash, keeping escapes for [`unescape`].
fn split_unescaped(raw: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(last) = parts.last_mut() {
                last.push(c);
                if let Some(n) = chars.next() {
                    last.push(n);
                }
            }
        } else if c == sep {
            parts.push(String::new());
        } else if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

/// Finds the first unescaped `!=`, `==` or `=` and splits the term there.
fn split_term(term: &str) -> Option<(String, String, bool)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'!' if bytes.get(i + 1) == Some(&b'=') => return Some((term[..i].into(), term[i + 2..].into(), true)),
            b'=' if bytes.get(i + 1) == Some(&b'=') => return Some((term[..i].into(), term[i + 2..].into(), false)),
            b'=' => return Some((term[..i].into(), term[i + 1..].into(), false)),
            _ => i += 1,
        }
    }
    None
}

fn unescape(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('\\' | ',' | '=')) => out.push(n),
                Some(n) => return Err(format!("invalid escape sequence: \\{n}")),
                None => return Err("unterminated escape sequence".into()),
            },
            ',' | '=' => return Err(format!("invalid unescaped character: {c}")),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// The field labels a built-in kind registers (`AddFieldLabelConversionFunc`), kept in its
/// strategy; kinds without them use the generic name/namespace conversion.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FieldLabels {
    /// The fields a selector may name.
    pub fields: &'static [&'static str],
    /// Those of Go type `bool`: the real server builds its field set from the typed object,
    /// where an unset boolean is `false` (`strconv.FormatBool`), so `spec.unschedulable=false`
    /// selects the nodes that never set it.
    pub booleans: &'static [&'static str],
    /// Labels the conversion reads from another path: old names (`spec.host`) and labels that
    /// name a struct by one of its fields (an event's `source` is `source.component`).
    pub renamed: &'static [(&'static str, &'static str)],
}

impl FieldLabels {
    /// Labels with no boolean and no old name.
    pub const fn only(fields: &'static [&'static str]) -> Self {
        Self { fields, booleans: &[], renamed: &[] }
    }
}

fn field_labels(group: &str, resource: &str) -> Option<FieldLabels> {
    Strategy::builtin(group, resource).field_labels
}

fn check_field(labels: Option<FieldLabels>, group: &str, namespaced: bool, field: &str) -> Result<(), String> {
    let supported = match labels {
        Some(labels) => labels.fields.contains(&field),
        None if crate::builtin::is_builtin_group(group) => {
            return if matches!(field, "metadata.name" | "metadata.namespace") {
                Ok(())
            } else {
                Err(format!(
                    "\"{field}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                ))
            };
        }
        None => field == "metadata.name" || (namespaced && field == "metadata.namespace"),
    };
    if supported { Ok(()) } else { Err(format!("field label not supported: {field}")) }
}

/// The selectable value of `field` as the server's field set renders it; `None` when the object
/// lacks it (or holds `null`).
fn field_value(object: &Value, field: &str) -> Option<String> {
    let mut current = object;
    for part in field.split('.') {
        current = current.get(part)?;
    }
    match current {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        _ => Some(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "labels": labels}})
    }

    fn label_err(raw: &str) -> String {
        let e = LabelSelector::parse(raw).expect_err(raw);
        assert_eq!(e.code, 400);
        assert_eq!(e.reason, "BadRequest");
        e.message
    }

    #[test]
    fn empty_label_selector_matches_everything() {
        let s = LabelSelector::parse("").unwrap();
        assert!(s.is_empty());
        assert!(s.matches(&json!({"metadata": {}})));
        assert!(LabelSelector::parse("  ").unwrap().is_empty());
    }

    #[test]
    fn equality_requirements() {
        let obj = labelled(json!({"app": "web", "tier": "front"}));
        assert!(LabelSelector::parse("app=web").unwrap().matches(&obj));
        assert!(LabelSelector::parse("app==web").unwrap().matches(&obj));
        assert!(LabelSelector::parse("app = web , tier=front").unwrap().matches(&obj));
        assert!(!LabelSelector::parse("app=db").unwrap().matches(&obj));
        assert!(LabelSelector::parse("app!=db").unwrap().matches(&obj));
        assert!(!LabelSelector::parse("app!=web").unwrap().matches(&obj));
        assert!(LabelSelector::parse("missing!=x").unwrap().matches(&obj));
        assert!(!LabelSelector::parse("app=web,tier=back").unwrap().matches(&obj));
    }

    #[test]
    fn empty_exact_value_matches_empty_label() {
        let s = LabelSelector::parse("a=").unwrap();
        assert!(s.matches(&labelled(json!({"a": ""}))));
        assert!(!s.matches(&labelled(json!({"a": "b"}))));
        assert!(!s.matches(&labelled(json!({}))));
    }

    #[test]
    fn set_requirements() {
        let obj = labelled(json!({"env": "prod", "app.kubernetes.io/name": "x"}));
        assert!(LabelSelector::parse("env in (prod, dev)").unwrap().matches(&obj));
        assert!(!LabelSelector::parse("env in (dev)").unwrap().matches(&obj));
        assert!(LabelSelector::parse("env notin (dev,qa)").unwrap().matches(&obj));
        assert!(!LabelSelector::parse("env notin (prod)").unwrap().matches(&obj));
        assert!(LabelSelector::parse("nope notin (prod)").unwrap().matches(&obj));
        assert!(!LabelSelector::parse("nope in (prod)").unwrap().matches(&obj));
        assert!(LabelSelector::parse("app.kubernetes.io/name in (x)").unwrap().matches(&obj));
        assert!(LabelSelector::parse("env in ()").unwrap().matches(&labelled(json!({"env": ""}))));
    }

    #[test]
    fn existence_requirements() {
        let obj = labelled(json!({"env": "prod"}));
        assert!(LabelSelector::parse("env").unwrap().matches(&obj));
        assert!(!LabelSelector::parse("!env").unwrap().matches(&obj));
        assert!(LabelSelector::parse("!other,env").unwrap().matches(&obj));
        assert!(!LabelSelector::parse("other").unwrap().matches(&obj));
        assert!(!LabelSelector::parse("env").unwrap().matches(&json!({"metadata": {}})));
    }

    #[test]
    fn keywords_are_keys_in_key_position() {
        let obj = labelled(json!({"in": "notin"}));
        assert!(LabelSelector::parse("in=notin").unwrap().matches(&obj));
    }

    #[test]
    fn numeric_comparisons() {
        let obj = labelled(json!({"n": "5"}));
        assert!(LabelSelector::parse("n>3").unwrap().matches(&obj));
        assert!(!LabelSelector::parse("n<3").unwrap().matches(&obj));
        assert!(!LabelSelector::parse("m>3").unwrap().matches(&obj));
        assert_eq!(
            label_err("n>x"),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn syntax_errors_use_parser_wording() {
        assert_eq!(label_err("a b"), "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt");
        assert_eq!(label_err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(label_err(",a"), "found ',', expected: !, identifier, or 'end of string'");
        assert_eq!(label_err("a=b=c"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(label_err("a in b"), "unable to parse requirement: found 'b' expected: '('");
        assert_eq!(label_err("a in (b c)"), "unable to parse requirement: found 'c', expected: ',' or ')'");
        assert_eq!(label_err("a in (b"), "unable to parse requirement: found '', expected: ',' or ')'");
        assert_eq!(label_err("a in ="), "unable to parse requirement: found '=' expected: '('");
        assert_eq!(label_err("a in (="), "unable to parse requirement: found '=', expected: ',', ')' or identifier");
        assert_eq!(label_err("!=a"), "found '!=', expected: !, identifier, or 'end of string'");
        assert_eq!(label_err("!="), "found '!=', expected: !, identifier, or 'end of string'");
        assert_eq!(label_err("!("), "unable to parse requirement: found '(', expected: identifier");
        assert_eq!(
            label_err("a (b)"),
            "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(label_err("a=(b)"), "unable to parse requirement: found '(', expected: identifier");
        assert_eq!(label_err("a=!"), "unable to parse requirement: found '!', expected: identifier");
    }

    #[test]
    fn invalid_keys_and_values_are_rejected() {
        assert_eq!(
            label_err("a=b*c"),
            "unable to parse requirement: values[0][a]: Invalid value: \"b*c\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert!(label_err("-a=b").starts_with(
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric"
        ));
        assert!(label_err("a/b/c").contains("a qualified name must consist of"));
        assert!(label_err("/a").contains("prefix part must be non-empty"));
        assert!(label_err("a/").contains("name part must be non-empty"));
        assert!(label_err("Ex.com/a").contains("prefix part a lowercase RFC 1123 subdomain"));
        assert!(label_err(&"k".repeat(64)).contains("name part must be no more than 63 bytes"));
        assert!(label_err(&format!("a={}", "v".repeat(64))).contains("must be no more than 63 bytes"));
        assert!(label_err("a in (x, y*)").contains("values[1][a]: Invalid value: \"y*\""));
    }

    #[test]
    fn field_selector_on_metadata() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}});
        let s = FieldSelector::parse("apps", "deployments", "metadata.name=a,metadata.namespace==ns").unwrap();
        assert!(s.matches(&obj));
        assert!(!FieldSelector::parse("apps", "deployments", "metadata.name!=a").unwrap().matches(&obj));
        assert!(FieldSelector::parse("", "configmaps", "metadata.name!=b").unwrap().matches(&obj));
        assert!(FieldSelector::parse("", "pods", "").unwrap().is_empty());
        assert!(FieldSelector::parse("", "pods", "").unwrap().matches(&obj));
    }

    #[test]
    fn pod_fields() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "serviceAccountName": "sa", "hostNetwork": true},
            "status": {"phase": "Running", "podIP": "10.0.0.1"}});
        for (sel, want) in [
            ("spec.nodeName=n1", true),
            ("spec.host=n1", true),
            ("spec.serviceAccountName=sa", true),
            ("status.phase!=Running", false),
            ("status.podIP=10.0.0.1", true),
            ("spec.hostNetwork=true", true),
            ("status.nominatedNodeName=", true),
        ] {
            assert_eq!(FieldSelector::parse("", "pods", sel).unwrap().matches(&pod), want, "{sel}");
        }
    }

    #[test]
    fn unset_boolean_fields_read_as_false() {
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        let cordoned = json!({"metadata": {"name": "c"}, "spec": {"unschedulable": true}});
        let schedulable = FieldSelector::parse("", "nodes", "spec.unschedulable=false").unwrap();
        assert!(schedulable.matches(&node));
        assert!(schedulable.matches(&json!({"metadata": {"name": "bare"}})));
        assert!(!schedulable.matches(&cordoned));
        assert!(FieldSelector::parse("", "nodes", "spec.unschedulable!=true").unwrap().matches(&node));
        assert!(!FieldSelector::parse("", "nodes", "spec.unschedulable=").unwrap().matches(&node));
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        assert!(FieldSelector::parse("", "pods", "spec.hostNetwork=false").unwrap().matches(&pod));
        // String fields stay empty when unset.
        assert!(FieldSelector::parse("", "pods", "spec.nodeName=").unwrap().matches(&pod));
    }

    #[test]
    fn event_and_secret_fields() {
        let ev = json!({"involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns", "uid": "u"}, "reason": "Started",
            "type": "Normal", "source": {"component": "kubelet"}});
        let s = FieldSelector::parse(
            "",
            "events",
            "involvedObject.kind=Pod,involvedObject.name=p,involvedObject.namespace=ns,involvedObject.uid=u,reason=Started,type=Normal,source=kubelet",
        )
        .unwrap();
        assert!(s.matches(&ev));
        let secret = json!({"type": "kubernetes.io/tls"});
        assert!(FieldSelector::parse("", "secrets", "type=kubernetes.io/tls").unwrap().matches(&secret));
        assert!(!FieldSelector::parse("", "secrets", "type=Opaque").unwrap().matches(&secret));
    }

    #[test]
    fn escaped_values() {
        let obj = json!({"metadata": {"name": "a,b=c\\"}});
        assert!(FieldSelector::parse("", "pods", "metadata.name=a\\,b\\=c\\\\").unwrap().matches(&obj));
    }

    #[test]
    fn unsupported_fields_are_bad_requests() {
        let e = FieldSelector::parse("", "pods", "spec.foo=x").unwrap_err();
        assert_eq!(
            (e.code, e.reason.as_str(), e.message.as_str()),
            (400, "BadRequest", "field label not supported: spec.foo")
        );
        let e = FieldSelector::parse("review.ao.dev", "reviewruns", "spec.reviewer=x").unwrap_err();
        assert_eq!(e.message, "field label not supported: spec.reviewer");
        let e =
            FieldSelector::parse_scoped("review.ao.dev", "clusterthings", false, "metadata.namespace=x").unwrap_err();
        assert_eq!(e.message, "field label not supported: metadata.namespace");
        assert!(FieldSelector::parse("review.ao.dev", "reviewruns", "metadata.namespace=x").is_ok());
        let e = FieldSelector::parse("apps", "deployments", "spec.replicas=1").unwrap_err();
        assert_eq!(
            e.message,
            "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
    }

    #[test]
    fn malformed_field_selectors_are_bad_requests() {
        let e = FieldSelector::parse("", "pods", "metadata.name").unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(e.message, "invalid selector: 'metadata.name'; can't understand 'metadata.name'");
        let e = FieldSelector::parse("", "pods", "metadata.name=a\\b").unwrap_err();
        assert_eq!(e.message, "invalid field selector: invalid escape sequence: \\b");
        let e = FieldSelector::parse("", "pods", "metadata.name=a=b").unwrap_err();
        assert_eq!(e.message, "invalid field selector: invalid unescaped character: =");
        let e = FieldSelector::parse("", "pods", "metadata.name=a\\").unwrap_err();
        assert_eq!(e.message, "invalid field selector: unterminated escape sequence");
    }
}
