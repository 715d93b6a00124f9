//! The element order of merged lists, as the API server's strategic merge patch computes it: items named by
//! the patch (or by `$setElementOrder`) keep the patch's order, items only on the server keep the server's
//! order, and the two are interleaved where the server's order relates them.

use serde_json::Value;

/// How list items are identified: by the value of a merge key, or by themselves (scalars).
#[derive(Debug, Clone, Copy)]
pub(super) enum Identity<'a> {
    Key(&'a str),
    Value,
}

impl Identity<'_> {
    fn of<'v>(&self, item: &'v Value) -> Option<&'v Value> {
        match self {
            Self::Key(key) => item.get(*key),
            Self::Value => Some(item),
        }
    }

    /// Whether both items have the same identity.
    pub(super) fn same(&self, a: &Value, b: &Value) -> bool {
        matches!((self.of(a), self.of(b)), (Some(x), Some(y)) if x == y)
    }

    /// Position of `item` in `list`, by identity.
    pub(super) fn position(&self, list: &[Value], item: &Value) -> Option<usize> {
        list.iter().position(|candidate| self.same(candidate, item))
    }
}

/// Splits `merged` into the items named in `named` and the others, then orders the named ones by
/// `named_order` and the others by `server_order` before interleaving them (Go `normalizeElementOrder`).
pub(super) fn normalize(
    merged: Vec<Value>,
    named: &[Value],
    named_order: &[Value],
    server_order: &[Value],
    identity: Identity<'_>,
) -> Vec<Value> {
    let (mut from_patch, mut server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|item| identity.position(named, item).is_some());
    sort_by(&mut from_patch, named_order, identity);
    sort_by(&mut server_only, server_order, identity);
    interleave(server_only, from_patch, server_order, identity)
}

/// Stable sort by position in `order`; items missing from `order` go last.
fn sort_by(items: &mut [Value], order: &[Value], identity: Identity<'_>) {
    items.sort_by_key(|item| identity.position(order, item).unwrap_or(usize::MAX));
}

/// Merges two ordered lists, taking a server-only item first only when the server's order puts it before
/// the next patch item (Go `mergeSortedSlice`).
fn interleave(left: Vec<Value>, right: Vec<Value>, server_order: &[Value], identity: Identity<'_>) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (identity.position(server_order, l), identity.position(server_order, r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter().filter_map(|v| v.get("name").and_then(Value::as_str)).collect()
    }

    #[test]
    fn new_patch_items_come_before_unrelated_server_items() {
        let original = vec![json!({"name": "a"}), json!({"name": "b"})];
        let patch = vec![json!({"name": "c"})];
        let merged = vec![json!({"name": "a"}), json!({"name": "b"}), json!({"name": "c"})];
        let out = normalize(merged, &patch, &patch, &original, Identity::Key("name"));
        assert_eq!(names(&out), ["c", "a", "b"]);
    }

    #[test]
    fn server_order_interleaves_existing_items() {
        let original = vec![json!({"name": "a"}), json!({"name": "b"}), json!({"name": "c"})];
        let patch = vec![json!({"name": "c"}), json!({"name": "a"})];
        let merged = original.clone();
        let out = normalize(merged, &patch, &patch, &original, Identity::Key("name"));
        // `b` precedes `c` on the server, so it is placed before it.
        assert_eq!(names(&out), ["b", "c", "a"]);
    }

    #[test]
    fn scalars_are_identified_by_value() {
        let original = vec![json!("x"), json!("y")];
        let patch = vec![json!("y"), json!("z")];
        let merged = vec![json!("x"), json!("y"), json!("z")];
        let out = normalize(merged, &patch, &patch, &original, Identity::Value);
        assert_eq!(out, vec![json!("x"), json!("y"), json!("z")]);
    }
}
