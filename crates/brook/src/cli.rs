//! Command-line interface.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "brook",
    version,
    about = "A Kafka-compatible event-streaming broker in one binary"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    pub fn is_serve(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (defaults: 127.0.0.1:9092, data in ./brook-data).
    Serve(ServeArgs),
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Produce lines from stdin as records.
    Produce(ProduceArgs),
    /// Print records of a topic (kcat-like `--format`, or `--json`).
    Consume(ConsumeArgs),
    /// Cluster id, controller and brokers.
    #[command(subcommand)]
    Cluster(crate::cluster::ClusterCommand),
    /// Print a shell completion script: `brook completions bash > /etc/bash_completion.d/brook`.
    Completions { shell: clap_complete::Shell },
    /// List, describe, delete consumer groups; reset their offsets.
    #[command(subcommand)]
    Group(crate::groups::GroupCommand),
    /// List, add and remove ACLs (as kafka-acls).
    #[command(subcommand)]
    Acl(crate::access::AclCommand),
    /// List, set and delete users' SCRAM credentials (as kafka-configs --entity-type users).
    #[command(subcommand)]
    User(crate::access::UserCommand),
    /// Verify segments, CRCs and indexes of a data directory offline (broker stopped).
    CheckLog {
        /// A data directory, or one partition's directory.
        dir: PathBuf,
        /// Print every partition, not only those with problems.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Load generators: produce, consume, end-to-end latency.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Development helpers: `brook dev cluster` runs a local multi-node cluster.
    #[command(subcommand)]
    Dev(crate::dev::DevCommand),
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (Kafka: `listeners`).
    #[arg(long, env = "BROOK_LISTEN")]
    pub listen: Option<String>,
    /// host:port clients are told to connect to (Kafka: `advertised.listeners`).
    #[arg(long, env = "BROOK_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,
    /// Directory for topic data and metadata (Kafka: `log.dirs`).
    #[arg(long, env = "BROOK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// This broker's id (Kafka: `node.id`).
    #[arg(long, env = "BROOK_NODE_ID")]
    pub node_id: Option<i32>,
    /// A TOML file of Kafka config names and values, e.g. `"num.partitions" = 3`.
    #[arg(long, env = "BROOK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Set a config by its Kafka name; repeatable: `--set log.retention.ms=60000`.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub settings: Vec<String>,
    /// Create a SCRAM credential at start unless the user already has one for that
    /// mechanism (as `kafka-storage format --add-scram`); repeatable:
    /// `--add-scram 'SCRAM-SHA-512=[name=admin,password=admin-secret]'`.
    #[arg(
        long = "add-scram",
        value_name = "MECHANISM=[name=USER,password=PASSWORD]"
    )]
    pub add_scram: Vec<String>,
    /// Keep data in a temporary directory deleted at exit (no durability).
    #[arg(long)]
    pub memory: bool,
    /// Where the other nodes of a cluster reach this one (raft, controller and
    /// replication traffic; Kafka: the CONTROLLER listener). Needed with --voters.
    #[arg(long, env = "BROOK_CONTROLLER_LISTEN")]
    pub controller_listen: Option<String>,
    /// Every node of the cluster's metadata quorum, this one included:
    /// `1@host:port,2@host:port,3@host:port` (Kafka: `controller.quorum.voters`).
    /// Without it, Brook runs as a single broker.
    #[arg(long, env = "BROOK_VOTERS")]
    pub voters: Option<String>,
}

#[derive(Args, Clone)]
pub struct Connect {
    /// Brokers to connect to, tried in order: `host[:port][,host[:port]...]` (port 9092
    /// when left out).
    #[arg(
        long,
        short = 'b',
        env = "BROOK_BOOTSTRAP_SERVER",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_server: String,
    /// Give up on connecting, or on a broker that does not answer a request, after this
    /// many seconds.
    #[arg(long, env = "BROOK_TIMEOUT", default_value_t = 30.0)]
    pub timeout: f64,
    /// A client setting by its Kafka name, repeatable (kcat's -X):
    /// `-X security.protocol=SASL_SSL -X sasl.mechanism=SCRAM-SHA-512 -X sasl.username=...`.
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub client_settings: Vec<String>,
    /// Client settings from a Java properties file, as Kafka's tools take them
    /// (security.protocol, ssl.truststore.location, sasl.jaas.config, ...).
    #[arg(long, value_name = "FILE", env = "BROOK_COMMAND_CONFIG")]
    pub command_config: Option<std::path::PathBuf>,
}

impl Connect {
    /// The bootstrap list as `host:port` addresses, in order.
    pub fn addresses(&self) -> Vec<String> {
        self.bootstrap_server
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                let has_port = match a.rsplit_once(':') {
                    // `[::1]:9092`, `host:9092`; a bare IPv6 address has no port.
                    Some((host, port)) => {
                        port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
                    }
                    None => false,
                };
                if has_port {
                    a.to_string()
                } else if a.contains(':') && !a.starts_with('[') {
                    format!("[{a}]:9092")
                } else {
                    format!("{a}:9092")
                }
            })
            .collect()
    }

    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.timeout.clamp(0.001, 86_400.0))
    }

    /// How to connect: the timeout and the security settings (`--command-config`, then
    /// `-X` on top).
    pub fn options(&self) -> anyhow::Result<crate::client::ConnectOptions> {
        let mut settings = match &self.command_config {
            Some(path) => crate::security::read_properties(path)?,
            None => Default::default(),
        };
        for setting in &self.client_settings {
            let (name, value) = setting
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("-X {setting}: expected NAME=VALUE"))?;
            settings.insert(name.trim().to_string(), value.to_string());
        }
        Ok(crate::client::ConnectOptions {
            timeout: self.timeout(),
            security: std::sync::Arc::new(crate::security::Security::from_settings(&settings)?),
        })
    }
}

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions; -1: the broker's `num.partitions`.
        #[arg(long, short = 'p', default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Copies of each partition; -1: the broker's `default.replication.factor`.
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// Topic config, repeatable: `--config retention.ms=60000`.
        #[arg(long = "config", value_name = "NAME=VALUE")]
        configs: Vec<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// List topics.
    List {
        #[command(flatten)]
        connect: Connect,
    },
    /// Show a topic's partitions (leader, replicas, ISR, offsets) and all its configs.
    Describe {
        name: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Set or delete topic configs (IncrementalAlterConfigs).
    AlterConfig {
        name: String,
        /// Set a config, repeatable: `--set retention.ms=60000`.
        #[arg(long, value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Remove an override (back to the broker's default), repeatable.
        #[arg(long, value_name = "NAME")]
        delete: Vec<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Grow a topic to this many partitions in total (CreatePartitions).
    AddPartitions {
        name: String,
        #[arg(long)]
        total: i32,
        #[command(flatten)]
        connect: Connect,
    },
    /// Delete a partition's records before an offset (DeleteRecords).
    Trim {
        name: String,
        #[arg(long, short = 'p')]
        partition: i32,
        /// The new log start offset; -1: the high watermark (delete everything).
        #[arg(long, allow_negative_numbers = true)]
        before: i64,
        #[command(flatten)]
        connect: Connect,
    },
    /// Delete a topic.
    Delete {
        name: String,
        #[command(flatten)]
        connect: Connect,
    },
}

#[derive(Args)]
pub struct ProduceArgs {
    pub topic: String,
    /// Split each line into key and value at the first occurrence of this string.
    #[arg(long, short = 'K')]
    pub key_separator: Option<String>,
    /// Send every record to this partition (default: by key hash, else round-robin batches).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// A header on every record, repeatable: `-H source=cli` (`-H name` alone: null value).
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// Send an empty value as null (a tombstone) and an empty key as null, as kcat's -Z.
    #[arg(long, short = 'Z')]
    pub null_empty: bool,
    /// The records' timestamp in ms since the epoch (default: now).
    #[arg(long)]
    pub timestamp: Option<i64>,
    /// 0, 1 or -1 (all).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub acks: i16,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Records per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    #[command(flatten)]
    pub connect: Connect,
}

#[derive(Args)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Start at the earliest offset (default: only new records); `--offset beginning`.
    #[arg(long)]
    pub from_beginning: bool,
    /// Where to start: `beginning`, `end`, an offset `N`, `-N` (N before the end) or
    /// `@TIMESTAMP_MS`. With --group, only where the group has committed nothing.
    #[arg(
        long,
        short = 'o',
        allow_hyphen_values = true,
        conflicts_with = "from_beginning"
    )]
    pub offset: Option<crate::consume::StartAt>,
    /// Read only this partition.
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// Join this consumer group (classic protocol, range assignor), start at its
    /// committed offsets and commit as records are printed; with --partition, read
    /// that partition and commit as a standalone consumer instead.
    #[arg(long, short = 'G')]
    pub group: Option<String>,
    /// Stop after this many records.
    #[arg(long, short = 'c', visible_alias = "max-messages")]
    pub count: Option<u64>,
    /// Stop at the end of every partition (its end when the command started).
    #[arg(long, short = 'e')]
    pub exit: bool,
    /// kcat's format: %t topic, %p partition, %o offset, %k key, %K key length, %v
    /// (or %s) value, %S value length, %h headers (k=v,...), %T timestamp, \n \t.
    #[arg(long, short = 'f', conflicts_with = "json")]
    pub format: Option<String>,
    /// One JSON object per record: topic, partition, offset, timestamp, key, value
    /// (null when absent), headers.
    #[arg(long, short = 'J')]
    pub json: bool,
    /// Stop when no record arrives for this long (default: wait forever).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Print `key<TAB>value`.
    #[arg(long)]
    pub print_key: bool,
    /// Print `partition<TAB>offset<TAB>` before each record.
    #[arg(long)]
    pub print_offset: bool,
    #[command(flatten)]
    pub connect: Connect,
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => crate::serve::run(args).await,
        Command::Topic(cmd) => crate::tools::topic(cmd).await,
        Command::Produce(args) => crate::tools::produce(args).await,
        Command::Consume(args) => crate::consume::consume(args).await,
        Command::Cluster(cmd) => crate::cluster::run(cmd).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "brook", &mut std::io::stdout());
            Ok(())
        }
        Command::Bench(cmd) => crate::bench::run(cmd).await,
        Command::Group(cmd) => crate::groups::run(cmd).await,
        Command::Acl(cmd) => crate::access::acl(cmd).await,
        Command::User(cmd) => crate::access::user(cmd).await,
        Command::CheckLog { dir, verbose } => crate::check_log::run(&dir, verbose),
        Command::Dev(cmd) => crate::dev::run(cmd).await,
    }
}

#[cfg(test)]
mod tests {
    use super::Connect;

    fn addresses(list: &str) -> Vec<String> {
        Connect {
            bootstrap_server: list.into(),
            timeout: 1.0,
            client_settings: Vec::new(),
            command_config: None,
        }
        .addresses()
    }

    #[test]
    fn bootstrap_lists_take_several_brokers_and_default_the_port() {
        assert_eq!(
            addresses("h1:9093, h2 ,,10.0.0.1"),
            ["h1:9093", "h2:9092", "10.0.0.1:9092"]
        );
        assert_eq!(addresses("[::1]:9095,::1"), ["[::1]:9095", "[::1]:9092"]);
        assert!(addresses(" , ").is_empty());
    }
}
