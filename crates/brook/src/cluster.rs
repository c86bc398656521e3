//! `brook cluster info`: the cluster id, the active controller and the brokers.

use anyhow::Result;
use brook_protocol::kafka_protocol::messages::*;
use clap::Subcommand;

use crate::cli::Connect;
use crate::client::Client;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Cluster id, controller, and every broker with its endpoint and rack.
    Info {
        #[command(flatten)]
        connect: Connect,
    },
}

pub async fn run(cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Info { connect } => info(&connect).await,
    }
}

async fn info(connect: &Connect) -> Result<()> {
    let mut client = Client::connect(connect).await?;
    let req = MetadataRequest::default().with_topics(Some(Vec::new()));
    let meta: MetadataResponse = client.request(12, req).await?;
    let cluster_id = meta.cluster_id.as_ref().map_or("-", |c| c.as_str());
    println!("Cluster id: {cluster_id}");
    println!("Controller: {}", meta.controller_id.0);
    println!();
    let mut brokers: Vec<_> = meta.brokers.iter().collect();
    brokers.sort_by_key(|b| b.node_id.0);
    let width = brokers
        .iter()
        .map(|b| b.host.len() + 6)
        .max()
        .unwrap_or(0)
        .max("ENDPOINT".len());
    println!(
        "{:>6}  {:<width$}  {:<10} CONTROLLER",
        "ID", "ENDPOINT", "RACK"
    );
    for b in brokers {
        let endpoint = format!("{}:{}", b.host.as_str(), b.port);
        let rack = b.rack.as_ref().map_or("-", |r| r.as_str());
        let controller = if b.node_id == meta.controller_id {
            "*"
        } else {
            ""
        };
        println!(
            "{:>6}  {endpoint:<width$}  {rack:<10} {controller}",
            b.node_id.0
        );
    }
    Ok(())
}
