//! The JSONPath subset CRD `additionalPrinterColumns` use: `.a.b`, `['a.b']`, `[n]`, `[*]` and
//! filters such as `[?(@.type=="Ready")]`, evaluated over JSON like client-go's `jsonpath`.

use serde_json::Value;

/// A comparison inside a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    /// `[?(@.path OP literal)]`, or `[?(@.path)]` (the field exists) when `test` is `None`.
    Filter {
        path: Vec<String>,
        test: Option<(Cmp, Value)>,
    },
}

/// A parsed JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses `.spec.x`, `{.spec.x}` or `spec.x`; the error names what could not be read.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let inner = trimmed.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap_or(trimmed).trim();
        let inner = inner.strip_prefix('$').unwrap_or(inner);
        let chars: Vec<char> = inner.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    let (name, next) = read_name(&chars, i);
                    if name.is_empty() {
                        if i < chars.len() && chars[i] == '.' {
                            return Err(format!("recursive descent is not supported in {raw:?}"));
                        }
                        if i < chars.len() && chars[i] != '[' {
                            return Err(format!("unexpected {:?} in {raw:?}", chars[i]));
                        }
                    } else {
                        steps.push(if name == "*" { Step::Wildcard } else { Step::Field(name) });
                    }
                    i = next;
                }
                '[' => {
                    let close = find_close(&chars, i).ok_or_else(|| format!("unclosed '[' in {raw:?}"))?;
                    let body: String = chars[i + 1..close].iter().collect();
                    steps.push(parse_bracket(body.trim()).ok_or_else(|| format!("cannot parse [{body}] in {raw:?}"))?);
                    i = close + 1;
                }
                _ if i == 0 => {
                    let (name, next) = read_name(&chars, i);
                    steps.push(Step::Field(name));
                    i = next;
                }
                c => return Err(format!("unexpected {c:?} in {raw:?}")),
            }
        }
        Ok(Self { steps })
    }

    /// Every value the path selects, in document order.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for step in &self.steps {
            let mut next = Vec::new();
            for value in current {
                apply(step, value, &mut next);
            }
            current = next;
        }
        current
    }
}

/// Reads a dotted name up to the next unescaped `.` or `[`; `\.` keeps a literal dot.
fn read_name(chars: &[char], mut i: usize) -> (String, usize) {
    let mut name = String::new();
    while i < chars.len() && !matches!(chars[i], '.' | '[' | ']') {
        if chars[i] == '\\' && i + 1 < chars.len() {
            i += 1;
        }
        name.push(chars[i]);
        i += 1;
    }
    (name, i)
}

/// The `]` closing the `[` at `open`, skipping quoted text and nested brackets.
fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, &c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    let q = s.chars().next()?;
    if (q == '"' || q == '\'') && s.len() >= 2 && s.ends_with(q) { Some(s[1..s.len() - 1].to_string()) } else { None }
}

fn parse_bracket(body: &str) -> Option<Step> {
    if body == "*" {
        return Some(Step::Wildcard);
    }
    if let Some(name) = unquote(body) {
        return Some(Step::Field(name));
    }
    if let Ok(n) = body.parse::<i64>() {
        return Some(Step::Index(n));
    }
    let expr = body.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let ops = [("==", Cmp::Eq), ("!=", Cmp::Ne), ("<=", Cmp::Le), (">=", Cmp::Ge), ("<", Cmp::Lt), (">", Cmp::Gt)];
    let found = ops
        .iter()
        .filter_map(|(s, op)| expr.find(s).map(|at| (at, *s, *op)))
        .min_by_key(|(at, s, _)| (*at, usize::MAX - s.len()));
    let (lhs, test) = match found {
        Some((at, s, op)) => (expr[..at].trim(), Some((op, literal(expr[at + s.len()..].trim())?))),
        None => (expr, None),
    };
    let rel = lhs.strip_prefix('@')?;
    let path: Vec<String> = rel.split('.').filter(|p| !p.is_empty()).map(str::to_string).collect();
    Some(Step::Filter { path, test })
}

fn literal(s: &str) -> Option<Value> {
    if let Some(text) = unquote(s) {
        return Some(Value::String(text));
    }
    serde_json::from_str::<Value>(s).ok().filter(|v| v.is_number() || v.is_boolean() || v.is_null())
}

fn apply<'a>(step: &Step, value: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Field(name) => out.extend(value.get(name.as_str())),
        Step::Index(n) => {
            if let Some(items) = value.as_array() {
                let len = items.len() as i64;
                let at = if *n < 0 { len + n } else { *n };
                if (0..len).contains(&at) {
                    out.extend(items.get(at as usize));
                }
            }
        }
        Step::Wildcard => match value {
            Value::Array(items) => out.extend(items.iter()),
            Value::Object(map) => out.extend(map.values()),
            _ => {}
        },
        Step::Filter { path, test } => {
            let items: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for item in items {
                let field = path.iter().try_fold(item, |v, p| v.get(p.as_str()));
                let keep = match (field, test) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(actual), Some((op, expected))) => compare(actual, *op, expected),
                };
                if keep {
                    out.push(item);
                }
            }
        }
    }
}

fn compare(actual: &Value, op: Cmp, expected: &Value) -> bool {
    if let (Some(a), Some(b)) = (actual.as_f64(), expected.as_f64()) {
        return match op {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        };
    }
    match op {
        Cmp::Eq => actual == expected,
        Cmp::Ne => actual != expected,
        _ => match (actual.as_str(), expected.as_str()) {
            (Some(a), Some(b)) => match op {
                Cmp::Lt => a < b,
                Cmp::Le => a <= b,
                Cmp::Gt => a > b,
                _ => a >= b,
            },
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}},
            "spec": {"reviewer": "bob", "n": 3, "items": [{"k": 1}, {"k": 2}]},
            "status": {"conditions": [
                {"type": "Synced", "status": "False"},
                {"type": "Ready", "status": "True", "reason": "Done"}
            ]}
        })
    }

    fn find(path: &str) -> Vec<Value> {
        JsonPath::parse(path).unwrap().find(&doc()).into_iter().cloned().collect()
    }

    #[test]
    fn fields() {
        assert_eq!(find(".spec.reviewer"), vec![json!("bob")]);
        assert_eq!(find("{.spec.n}"), vec![json!(3)]);
        assert_eq!(find("spec.reviewer"), vec![json!("bob")]);
        assert_eq!(find("$.spec.reviewer"), vec![json!("bob")]);
        assert_eq!(find(".spec.missing"), Vec::<Value>::new());
        assert_eq!(find(".metadata.labels.app\\.kubernetes\\.io/name"), vec![json!("x")]);
        assert_eq!(find(".metadata.labels['app.kubernetes.io/name']"), vec![json!("x")]);
    }

    #[test]
    fn indexes_and_wildcards() {
        assert_eq!(find(".spec.items[1].k"), vec![json!(2)]);
        assert_eq!(find(".spec.items[-1].k"), vec![json!(2)]);
        assert_eq!(find(".spec.items[5].k"), Vec::<Value>::new());
        assert_eq!(find(".spec.items[*].k"), vec![json!(1), json!(2)]);
        assert_eq!(find(".spec.items.*.k"), vec![json!(1), json!(2)]);
    }

    #[test]
    fn filters() {
        assert_eq!(find(".status.conditions[?(@.type==\"Ready\")].status"), vec![json!("True")]);
        assert_eq!(find(".status.conditions[?(@.type == 'Synced')].status"), vec![json!("False")]);
        assert_eq!(find(".status.conditions[?(@.type!=\"Ready\")].type"), vec![json!("Synced")]);
        assert_eq!(find(".status.conditions[?(@.reason)].type"), vec![json!("Ready")]);
        assert_eq!(find(".spec.items[?(@.k>1)].k"), vec![json!(2)]);
        assert_eq!(find(".spec.items[?(@.k<=1)].k"), vec![json!(1)]);
        assert_eq!(find(".status.conditions[?(@.type==\"Gone\")].status"), Vec::<Value>::new());
    }

    #[test]
    fn parse_errors() {
        assert!(JsonPath::parse(".a[").is_err());
        assert!(JsonPath::parse(".a[?(@.b==)]").is_err());
        assert!(JsonPath::parse(".a[foo]").is_err());
        assert!(JsonPath::parse("..a").is_err());
        assert!(JsonPath::parse(".a]").is_err());
    }
}
