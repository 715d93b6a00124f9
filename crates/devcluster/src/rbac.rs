//! Authorization: decides whether a user may perform a request, from RBAC objects in the store.

use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::store::Store;

/// What a request asks to do, in RBAC's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAttributes {
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete` or `deletecollection`.
    pub verb: String,
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// Allows or denies a request. A denial is a 403 `Forbidden` worded like the real server's.
pub fn authorize(store: &Store, attributes: &RequestAttributes) -> Result<(), ApiError> {
    let _ = (store, attributes);
    Ok(())
}
