//! The allocator of the bench processes, which hold the dev cluster.
//!
//! The dev cluster stands in for kube-apiserver, which a real cluster runs on machines of its own.
//! It gets the allocator the operator ships with, which spends a tenth less CPU on its churn of
//! short-lived JSON than mimalloc did, so that the figures are the operator's more than the stand-in's.

#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
