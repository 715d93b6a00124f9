//! Process-wide logging: human-readable text or one JSON object per line.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for terminals.
    Text,
    /// One JSON object per line with structured fields, for log collectors.
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("invalid log filter {filter:?}: {source}")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global logger is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Parses a filter in `RUST_LOG` syntax (`info`, `review_operator=debug,kube=warn`).
pub fn parse_filter(filter: &str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::try_new(filter).map_err(|source| LoggingError::Filter { filter: filter.to_owned(), source })
}

/// Installs the global logger, writing to stderr.
pub fn init(format: LogFormat, filter: &str) -> Result<(), LoggingError> {
    let filter = parse_filter(filter)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    installed.map_err(|error| LoggingError::AlreadyInstalled(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rust_log_syntax() {
        for filter in ["info", "review_operator=debug,kube=warn", "warn,kube_lease_manager=trace"] {
            assert!(parse_filter(filter).is_ok(), "{filter}");
        }
    }

    #[test]
    fn rejects_malformed_filters_naming_them() {
        let error = parse_filter("review_operator=loud").expect_err("unknown level");
        assert!(error.to_string().contains("review_operator=loud"), "{error}");
    }
}
