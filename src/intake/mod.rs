//! GitHub intake: `review-operator webhook` turns signed `pull_request`
//! deliveries into ReviewRuns for the Reviewers whose `spec.match` accepts
//! the pull request, with the push's lineage (`synchronize`'s `before`), and
//! cancels a pull request's unfinished runs when it is closed.

pub mod payload;
pub mod plan;
pub mod server;
pub mod signature;
