//! `review-operator dev`: the whole system on an embedded dev cluster.

pub mod timeline;
