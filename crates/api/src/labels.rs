//! Label keys the controller sets, and how their values are derived.

/// Set on ReviewRuns (value: the Reviewer's name) and on reviewer pods.
pub const REVIEWER: &str = "review.ao.dev/reviewer";
/// Set on ReviewRuns; value: [`pr_label_value`] of the pull request URL.
pub const PULL_REQUEST: &str = "review.ao.dev/pr";
/// Set on reviewer pods; value: the pod's incarnation number.
pub const INCARNATION: &str = "review.ao.dev/incarnation";

/// A short, stable, label-safe key for a pull request URL.
///
/// URLs are not valid label values, so runs are labelled with the 64-bit
/// FNV-1a hash of the URL in lowercase hex (16 characters). FNV-1a is fixed
/// forever, so the label never changes across controller versions.
pub fn pr_label_value(url: &str) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = url.bytes().fold(OFFSET, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME));
    format!("{hash:016x}")
}

/// The labels of a run for the Reviewer `reviewer` and the pull request
/// `url`: the controller sets them, and clients that set them at creation
/// (`kubectl review trigger`) save it a write.
pub fn run_labels(reviewer: &str, url: &str) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        (REVIEWER.to_owned(), reviewer.to_owned()),
        (PULL_REQUEST.to_owned(), pr_label_value(url)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pr_label_value_is_stable_and_label_safe() {
        // Reference value of FNV-1a 64 for the empty string.
        assert_eq!(pr_label_value(""), "cbf29ce484222325");
        let value = pr_label_value("https://github.com/acme/widgets/pull/42");
        assert_eq!(value.len(), 16);
        assert!(value.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(value, pr_label_value("https://github.com/acme/widgets/pull/43"));
    }
}
