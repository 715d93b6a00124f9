//! `kubectl-review`: the `kubectl review` plugin. See [`review_operator::plugin`].

use std::process::ExitCode;

use clap::Parser;
use review_operator::plugin::{self, PluginCli};

#[tokio::main]
async fn main() -> ExitCode {
    match plugin::run(PluginCli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
