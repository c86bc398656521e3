//! `brook acl list|add|remove` (DescribeAcls, CreateAcls, DeleteAcls) and
//! `brook user list|set|delete` (SCRAM credentials: DescribeUserScramCredentials,
//! AlterUserScramCredentials), the jobs of Kafka's `kafka-acls` and
//! `kafka-configs --entity-type users`. On a secured listener, log in with `-X` or
//! `--command-config` (see `crate::security`).

use anyhow::{anyhow, bail, Result};
use brook_meta::acl::CLUSTER_NAME;
use brook_meta::{AclOperation, AclPermission, PatternType, ResourceType};
use brook_protocol::kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use brook_protocol::kafka_protocol::messages::create_acls_request::AclCreation;
use brook_protocol::kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use brook_protocol::kafka_protocol::messages::*;
use bytes::Bytes;
use clap::{Args, Subcommand};

use crate::cli::Connect;
use crate::client::Client;
use crate::tools::{check, s};

#[derive(Subcommand)]
pub enum AclCommand {
    /// List ACLs (all, or those of one resource or principal).
    List {
        #[command(flatten)]
        filter: ResourceArgs,
        /// Only this principal's (`User:alice`).
        #[arg(long)]
        principal: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Allow (or with --deny, deny) a principal an operation on a resource.
    Add {
        #[command(flatten)]
        acl: AclArgs,
        #[command(flatten)]
        connect: Connect,
    },
    /// Remove the ACLs matching exactly these settings.
    Remove {
        #[command(flatten)]
        acl: AclArgs,
        #[command(flatten)]
        connect: Connect,
    },
}

/// Which resource: one of --topic, --group, --transactional-id, --cluster.
#[derive(Args, Clone)]
pub struct ResourceArgs {
    #[arg(long, group = "resource")]
    topic: Option<String>,
    #[arg(long, group = "resource")]
    group: Option<String>,
    #[arg(long, group = "resource")]
    transactional_id: Option<String>,
    #[arg(long, group = "resource")]
    cluster: bool,
    /// The name is a prefix (Kafka's PREFIXED pattern), not a literal name.
    #[arg(long)]
    prefixed: bool,
}

impl ResourceArgs {
    /// The resource type and name given, if any.
    fn resource(&self) -> Option<(ResourceType, String)> {
        match (
            &self.topic,
            &self.group,
            &self.transactional_id,
            self.cluster,
        ) {
            (Some(t), ..) => Some((ResourceType::Topic, t.clone())),
            (_, Some(g), ..) => Some((ResourceType::Group, g.clone())),
            (_, _, Some(x), _) => Some((ResourceType::TransactionalId, x.clone())),
            (.., true) => Some((ResourceType::Cluster, CLUSTER_NAME.to_string())),
            _ => None,
        }
    }

    fn pattern(&self) -> PatternType {
        if self.prefixed {
            PatternType::Prefixed
        } else {
            PatternType::Literal
        }
    }
}

#[derive(Args, Clone)]
pub struct AclArgs {
    #[command(flatten)]
    resource: ResourceArgs,
    /// Who: `User:alice` (`User:*` for everyone).
    #[arg(long)]
    principal: String,
    /// What: read, write, create, delete, alter, describe, cluster-action,
    /// describe-configs, alter-configs, idempotent-write, all.
    #[arg(long)]
    operation: String,
    /// From which host (`*`: any).
    #[arg(long, default_value = "*")]
    host: String,
    /// A DENY ACL (DENY beats ALLOW).
    #[arg(long)]
    deny: bool,
}

impl AclArgs {
    fn parts(&self) -> Result<(ResourceType, String, AclOperation, AclPermission)> {
        let (resource_type, name) = self.resource.resource().ok_or_else(|| {
            anyhow!("name a resource: --topic, --group, --transactional-id or --cluster")
        })?;
        let operation = operation(&self.operation)?;
        let permission = if self.deny {
            AclPermission::Deny
        } else {
            AclPermission::Allow
        };
        Ok((resource_type, name, operation, permission))
    }
}

/// An operation by Kafka's name, any case, `-` or `_`.
fn operation(name: &str) -> Result<AclOperation> {
    let wanted = name.trim().replace('-', "_").to_ascii_uppercase();
    (2..=15)
        .map(AclOperation::from_code)
        .find(|op| op.name() == wanted)
        .ok_or_else(|| anyhow!("unknown operation '{name}'"))
}

pub async fn acl(cmd: AclCommand) -> Result<()> {
    match cmd {
        AclCommand::List {
            filter,
            principal,
            connect,
        } => {
            let mut client = Client::connect(&connect).await?;
            let (resource_type, name) = filter
                .resource()
                .map_or((ResourceType::Any, None), |(t, n)| (t, Some(n)));
            let pattern = if name.is_none() {
                PatternType::Any
            } else {
                filter.pattern()
            };
            let req = DescribeAclsRequest::default()
                .with_resource_type_filter(resource_type.code())
                .with_resource_name_filter(name.as_deref().map(s))
                .with_pattern_type_filter(pattern.code())
                .with_principal_filter(principal.as_deref().map(s))
                .with_host_filter(None)
                .with_operation(AclOperation::Any.code())
                .with_permission_type(AclPermission::Any.code());
            let resp: DescribeAclsResponse = client.request(3, req).await?;
            check(resp.error_code, "DescribeAcls", resp.error_message.as_ref())?;
            println!(
                "{:<16} {:<24} {:<9} {:<20} {:<10} {:<17} PERMISSION",
                "RESOURCE", "NAME", "PATTERN", "PRINCIPAL", "HOST", "OPERATION"
            );
            for r in &resp.resources {
                for a in &r.acls {
                    println!(
                        "{:<16} {:<24} {:<9} {:<20} {:<10} {:<17} {}",
                        ResourceType::from_code(r.resource_type).name(),
                        r.resource_name.as_str(),
                        PatternType::from_code(r.pattern_type).name(),
                        a.principal.as_str(),
                        a.host.as_str(),
                        AclOperation::from_code(a.operation).name(),
                        AclPermission::from_code(a.permission_type).name(),
                    );
                }
            }
            Ok(())
        }
        AclCommand::Add { acl, connect } => {
            let (resource_type, name, operation, permission) = acl.parts()?;
            let mut client = Client::connect(&connect).await?;
            let creation = AclCreation::default()
                .with_resource_type(resource_type.code())
                .with_resource_name(s(&name))
                .with_resource_pattern_type(acl.resource.pattern().code())
                .with_principal(s(&acl.principal))
                .with_host(s(&acl.host))
                .with_operation(operation.code())
                .with_permission_type(permission.code());
            let resp: CreateAclsResponse = client
                .request(
                    3,
                    CreateAclsRequest::default().with_creations(vec![creation]),
                )
                .await?;
            for r in &resp.results {
                check(r.error_code, "CreateAcls", r.error_message.as_ref())?;
            }
            println!(
                "Added: {} {} {} on {} {}",
                permission.name(),
                acl.principal,
                operation.name(),
                resource_type.name(),
                name
            );
            Ok(())
        }
        AclCommand::Remove { acl, connect } => {
            let (resource_type, name, operation, permission) = acl.parts()?;
            let mut client = Client::connect(&connect).await?;
            let filter = DeleteAclsFilter::default()
                .with_resource_type_filter(resource_type.code())
                .with_resource_name_filter(Some(s(&name)))
                .with_pattern_type_filter(acl.resource.pattern().code())
                .with_principal_filter(Some(s(&acl.principal)))
                .with_host_filter(Some(s(&acl.host)))
                .with_operation(operation.code())
                .with_permission_type(permission.code());
            let resp: DeleteAclsResponse = client
                .request(3, DeleteAclsRequest::default().with_filters(vec![filter]))
                .await?;
            let mut removed = 0;
            for r in &resp.filter_results {
                check(r.error_code, "DeleteAcls", r.error_message.as_ref())?;
                removed += r.matching_acls.len();
            }
            println!("Removed {removed} ACL(s)");
            Ok(())
        }
    }
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// List the users with SCRAM credentials, with their mechanisms and iterations.
    List {
        #[command(flatten)]
        connect: Connect,
    },
    /// Set a user's SCRAM password (the salted password is computed here; the
    /// password never leaves this process).
    Set {
        name: String,
        /// The password (prefer --password-file or BROOK_USER_PASSWORD: a command line
        /// is visible to other users of the machine).
        #[arg(long, env = "BROOK_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Read the password from the first line of this file.
        #[arg(long, conflicts_with = "password")]
        password_file: Option<std::path::PathBuf>,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        #[arg(long, default_value_t = 8192)]
        iterations: i32,
        #[command(flatten)]
        connect: Connect,
    },
    /// Delete a user's SCRAM credential for one mechanism.
    Delete {
        name: String,
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        #[command(flatten)]
        connect: Connect,
    },
}

fn mechanism(name: &str) -> Result<brook_meta::ScramMechanism> {
    brook_meta::ScramMechanism::from_name(&name.trim().to_ascii_uppercase())
        .ok_or_else(|| anyhow!("unknown mechanism '{name}' (SCRAM-SHA-256 or SCRAM-SHA-512)"))
}

pub async fn user(cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::List { connect } => {
            let mut client = Client::connect(&connect).await?;
            let resp: DescribeUserScramCredentialsResponse = client
                .request(
                    0,
                    DescribeUserScramCredentialsRequest::default().with_users(None),
                )
                .await?;
            check(
                resp.error_code,
                "DescribeUserScramCredentials",
                resp.error_message.as_ref(),
            )?;
            println!("{:<24} CREDENTIALS", "USER");
            for r in &resp.results {
                check(r.error_code, r.user.as_str(), r.error_message.as_ref())?;
                let creds: Vec<String> = r
                    .credential_infos
                    .iter()
                    .map(|c| {
                        let m = brook_meta::ScramMechanism::from_type(c.mechanism)
                            .map_or("UNKNOWN", |m| m.name());
                        format!("{m} (iterations {})", c.iterations)
                    })
                    .collect();
                println!("{:<24} {}", r.user.as_str(), creds.join(", "));
            }
            Ok(())
        }
        UserCommand::Set {
            name,
            password,
            password_file,
            mechanism: m,
            iterations,
            connect,
        } => {
            let m = mechanism(&m)?;
            let password = match (password, password_file) {
                (Some(p), _) => p,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                (None, None) => {
                    bail!("give the password: --password-file, --password or BROOK_USER_PASSWORD")
                }
            };
            if password.is_empty() {
                bail!("the password is empty");
            }
            let salt = brook_broker::sasl::scram::random_salt();
            let salted = brook_broker::sasl::scram::salted_password(
                m,
                &password,
                &salt,
                iterations.max(1) as u32,
            );
            let upsertion = ScramCredentialUpsertion::default()
                .with_name(s(&name))
                .with_mechanism(m.type_code())
                .with_iterations(iterations)
                .with_salt(Bytes::from(salt))
                .with_salted_password(Bytes::from(salted));
            let request =
                AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]);
            alter_scram(&connect, request).await?;
            println!("Set {} credential of user {name}", m.name());
            Ok(())
        }
        UserCommand::Delete {
            name,
            mechanism: m,
            connect,
        } => {
            let m = mechanism(&m)?;
            let deletion = ScramCredentialDeletion::default()
                .with_name(s(&name))
                .with_mechanism(m.type_code());
            let request =
                AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]);
            alter_scram(&connect, request).await?;
            println!("Deleted {} credential of user {name}", m.name());
            Ok(())
        }
    }
}

/// Sends an AlterUserScramCredentials request; fails on any user's error.
async fn alter_scram(connect: &Connect, request: AlterUserScramCredentialsRequest) -> Result<()> {
    let mut client = Client::connect(connect).await?;
    let resp: AlterUserScramCredentialsResponse = client.request(0, request).await?;
    for r in &resp.results {
        check(r.error_code, r.user.as_str(), r.error_message.as_ref())?;
    }
    Ok(())
}
