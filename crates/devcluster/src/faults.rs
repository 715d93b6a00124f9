//! Fault injection for tests: make matching requests fail or slow down on purpose.

use crate::error::ApiError;
use std::time::Duration;

/// What an injected fault does to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    Fail(ApiError),
    Delay(Duration),
}

/// The faults armed on one server.
#[derive(Debug, Default)]
pub struct Faults {}

impl Faults {
    /// The fault to apply to a request, consuming one use of the first matching rule.
    pub fn intercept(
        &self,
        verb: &str,
        resource: &str,
        subresource: Option<&str>,
        name: Option<&str>,
    ) -> Option<FaultAction> {
        let _ = (verb, resource, subresource, name);
        None
    }
}
