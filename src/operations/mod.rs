//! Running the controller as a service: leader election, the HTTP endpoints
//! for probes and metrics, logging and graceful shutdown.
//!
//! Nothing here knows the reconciler: [`leader::run_with_leadership`] runs any
//! future-returning closure while this replica holds the Lease.

pub mod http;
pub mod leader;
pub mod logging;
pub mod shutdown;
