//! Serves a dev cluster until Ctrl-C or SIGTERM:
//! `cargo run -p devcluster --bin devcluster-serve -- [ADDR:PORT] [KUBECONFIG] [--data-dir DIR]`.
//!
//! Prints `export KUBECONFIG=...` once it serves. With `--data-dir`, objects survive restarts (even
//! `kill -9`): every acknowledged write is on disk.

use devcluster::{Config, DevCluster};
use std::path::PathBuf;

const USAGE: &str = "usage: devcluster-serve [ADDR:PORT] [KUBECONFIG] [--data-dir DIR]";

fn parse_args(args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut config = Config::default();
    let mut positional = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data-dir" => {
                let dir = args.next().ok_or_else(|| format!("--data-dir needs a directory\n{USAGE}"))?;
                config.data_dir = Some(PathBuf::from(dir));
            }
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}\n{USAGE}")),
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    if let Some(listen) = positional.next() {
        config.listen = listen.parse().map_err(|e| format!("ADDR:PORT {listen:?}: {e}\n{USAGE}"))?;
    }
    config.kubeconfig_path = positional.next().map(PathBuf::from);
    if let Some(extra) = positional.next() {
        return Err(format!("unexpected argument {extra:?}\n{USAGE}"));
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = parse_args(std::env::args().skip(1))?;
    let cluster = DevCluster::start(config).await?;
    println!("export KUBECONFIG={}", cluster.kubeconfig_path().display());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    cluster.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments_in_any_order() {
        let config = parse(&["127.0.0.1:7000", "--data-dir", "/tmp/d", "/tmp/kc"]).unwrap();
        assert_eq!(config.listen.port(), 7000);
        assert_eq!(config.data_dir, Some(PathBuf::from("/tmp/d")));
        assert_eq!(config.kubeconfig_path, Some(PathBuf::from("/tmp/kc")));
        assert_eq!(parse(&[]).unwrap().data_dir, None);
    }

    #[test]
    fn bad_arguments_are_named() {
        assert!(parse(&["--data-dir"]).unwrap_err().starts_with("--data-dir needs a directory"));
        assert!(parse(&["--verbose"]).unwrap_err().starts_with("unknown flag --verbose"));
        assert!(parse(&["nonsense"]).unwrap_err().starts_with("ADDR:PORT \"nonsense\""));
        assert!(parse(&["127.0.0.1:0", "kc", "more"]).unwrap_err().starts_with("unexpected argument \"more\""));
    }
}
