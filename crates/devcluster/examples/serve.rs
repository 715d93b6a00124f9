//! Serves a dev cluster until Ctrl-C: `cargo run -p devcluster --example serve -- [ADDR:PORT] [KUBECONFIG]`.

use devcluster::{Config, DevCluster};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:0".into()).parse()?;
    let kubeconfig_path = args.next().map(Into::into);
    let cluster = DevCluster::start(Config { listen, kubeconfig_path, ..Config::default() }).await?;
    println!("export KUBECONFIG={}", cluster.kubeconfig_path().display());
    tokio::signal::ctrl_c().await?;
    cluster.shutdown().await?;
    Ok(())
}
