use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Kubernetes controller that runs AI code reviewers for pull requests.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions, or write them to a directory.
    Crds {
        /// Write one file per CRD into --dir instead of printing.
        #[arg(long)]
        write: bool,
        /// Directory for --write.
        #[arg(long, default_value = "crds")]
        dir: PathBuf,
    },
    /// Run the reconciler, with leader election, probes and metrics.
    Controller(Box<review_operator::cli::controller::ControllerArgs>),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds { write, dir } => {
            let documents = review_operator::api::crd::documents()?;
            if write {
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                for (file, yaml) in documents {
                    let path = dir.join(file);
                    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
                }
            } else {
                let yaml: Vec<String> = documents.into_iter().map(|(_, yaml)| yaml).collect();
                print!("{}", yaml.join("---\n"));
            }
        }
        Command::Controller(args) => review_operator::cli::controller::run(*args)?,
    }
    Ok(())
}
