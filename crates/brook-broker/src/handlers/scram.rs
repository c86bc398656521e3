//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): SCRAM users
//! kept in the metadata log, as `kafka-configs --entity-type users` manages them.

use std::sync::Arc;

use brook_meta::{MetadataImage, ScramMechanism, ScramUpsertion};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::controller_client::ControllerClient;
use crate::metadata::MetadataView;
use crate::sasl::scram::{credential_from_salted, ScramBootstrap};

/// Most users one request may name (each is a result; Kafka has no limit, but the
/// request size already bounds it: this keeps one request from holding the controller).
const MAX_USERS_PER_REQUEST: usize = 10_000;

pub fn describe(
    meta: &MetadataView,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let image = meta.image();
    let results = match req.users.filter(|u| !u.is_empty()) {
        // Everyone with a credential.
        None => image
            .scram
            .users
            .keys()
            .map(|user| describe_user(&image, user, false))
            .collect(),
        Some(users) => {
            let mut seen: Vec<(&str, bool)> = Vec::new();
            for u in &users {
                match seen.iter_mut().find(|(n, _)| *n == u.name.as_str()) {
                    Some((_, twice)) => *twice = true,
                    None => seen.push((u.name.as_str(), false)),
                }
            }
            seen.into_iter()
                .map(|(user, twice)| describe_user(&image, user, twice))
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn describe_user(
    image: &MetadataImage,
    user: &str,
    twice: bool,
) -> DescribeUserScramCredentialsResult {
    let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
    if twice {
        return result
            .with_error_code(ResponseError::DuplicateResource.code())
            .with_error_message(Some(str_bytes(format!(
                "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
            ))));
    }
    let infos: Vec<CredentialInfo> = image
        .scram
        .users
        .get(user)
        .into_iter()
        .flatten()
        .map(|(m, c)| {
            CredentialInfo::default()
                .with_mechanism(m.type_code())
                .with_iterations(c.iterations)
        })
        .collect();
    if infos.is_empty() {
        return result
            .with_error_code(ResponseError::ResourceNotFound.code())
            .with_error_message(Some(str_bytes(format!(
                "Attempt to describe a user credential that does not exist: {user}"
            ))));
    }
    result.with_credential_infos(infos)
}

pub async fn alter(
    controller: &ControllerClient,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let users = req.deletions.len() + req.upsertions.len();
    if users > MAX_USERS_PER_REQUEST {
        let results = req
            .deletions
            .iter()
            .map(|d| &d.name)
            .chain(req.upsertions.iter().map(|u| &u.name))
            .map(|name| {
                failed(
                    name.clone(),
                    ResponseError::InvalidRequest.code(),
                    &format!("more than {MAX_USERS_PER_REQUEST} users in one request"),
                )
            })
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    let deletions: Vec<(String, i8)> = req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .collect();
    // Only the derived keys leave this broker; the salted password is dropped here.
    let upsertions: Vec<ScramUpsertion> = req
        .upsertions
        .iter()
        .map(|u| ScramUpsertion {
            user: u.name.to_string(),
            mechanism: u.mechanism,
            credential: match ScramMechanism::from_type(u.mechanism) {
                Some(m) => credential_from_salted(m, &u.salt, &u.salted_password, u.iterations),
                // Refused by the controller as an unknown mechanism.
                None => brook_meta::ScramCredential {
                    salt: Vec::new(),
                    stored_key: Vec::new(),
                    server_key: Vec::new(),
                    iterations: u.iterations,
                },
            },
        })
        .collect();
    let results = match controller
        .alter_scram_credentials(deletions.clone(), upsertions.clone(), false)
        .await
    {
        Ok(results) => results
            .into_iter()
            .map(|(user, code, message)| {
                AlterUserScramCredentialsResult::default()
                    .with_user(str_bytes(user))
                    .with_error_code(code)
                    .with_error_message(message.map(str_bytes))
            })
            .collect(),
        Err(e) => {
            let mut names: Vec<&str> = Vec::new();
            for user in deletions
                .iter()
                .map(|(u, _)| u)
                .chain(upsertions.iter().map(|u| &u.user))
            {
                if !names.contains(&user.as_str()) {
                    names.push(user);
                }
            }
            names
                .into_iter()
                .map(|user| failed(str_bytes(user), e.code, &e.message))
                .collect()
        }
    };
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn failed(user: StrBytes, code: i16, message: &str) -> AlterUserScramCredentialsResult {
    AlterUserScramCredentialsResult::default()
        .with_user(user)
        .with_error_code(code)
        .with_error_message(Some(str_bytes(message)))
}

/// Creates the bootstrap credentials (`brook serve --add-scram`) whose users have none
/// for the mechanism yet; an existing credential, perhaps changed since with
/// kafka-configs, is left alone. A single broker writes them now (a failure is a start
/// error); a cluster node returns a task that retries until its quorum takes them.
pub async fn bootstrap(
    controller: Arc<ControllerClient>,
    cluster: bool,
    credentials: Vec<ScramBootstrap>,
) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    if credentials.is_empty() {
        return Ok(None);
    }
    if !cluster {
        return write_bootstrap(&controller, &credentials)
            .await
            .map(|()| None);
    }
    Ok(Some(tokio::spawn(async move {
        for attempt in 1u32.. {
            match write_bootstrap(&controller, &credentials).await {
                Ok(()) => return,
                Err(e) if attempt % 10 == 1 => {
                    tracing::warn!("--add-scram: not written yet ({e}); retrying");
                }
                Err(_) => {}
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    })))
}

async fn write_bootstrap(
    controller: &ControllerClient,
    credentials: &[ScramBootstrap],
) -> Result<(), String> {
    let upsertions: Vec<ScramUpsertion> = credentials.iter().map(|c| c.upsertion()).collect();
    let results = controller
        .alter_scram_credentials(Vec::new(), upsertions, true)
        .await
        .map_err(|e| e.message)?;
    match results.into_iter().find(|(_, code, _)| *code != 0) {
        Some((user, _, message)) => Err(format!("user {user}: {}", message.unwrap_or_default())),
        None => Ok(()),
    }
}
