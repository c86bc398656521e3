//! DescribeClientQuotas and AlterClientQuotas (KIP-546): client quotas kept in the
//! metadata log (`brook_meta::quota`), as `kafka-configs --entity-type
//! users/clients/ips` manages them. The broker enforces them in `crate::quotas`.

use brook_meta::quota::FilterComponent;
use brook_meta::{MetadataImage, QuotaAlteration, QuotaError};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, AlterClientQuotasRequest,
    AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};

use super::str_bytes;
use crate::controller_client::ControllerClient;

pub fn describe(
    image: &MetadataImage,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let filter: Vec<FilterComponent> = req
        .components
        .into_iter()
        .map(|c| FilterComponent {
            entity_type: c.entity_type.to_string(),
            match_type: c.match_type,
            name: c._match.map(|m| m.to_string()),
        })
        .collect();
    match image.client_quotas.describe(&filter, req.strict) {
        Ok(entries) => DescribeClientQuotasResponse::default().with_entries(Some(
            entries
                .into_iter()
                .map(|(entity, values)| {
                    describe_client_quotas_response::EntryData::default()
                        .with_entity(
                            entity
                                .0
                                .iter()
                                .map(|(t, n)| {
                                    describe_client_quotas_response::EntityData::default()
                                        .with_entity_type(str_bytes(t.as_str()))
                                        .with_entity_name(n.as_deref().map(str_bytes))
                                })
                                .collect(),
                        )
                        .with_values(
                            values
                                .iter()
                                .map(|(k, v)| {
                                    describe_client_quotas_response::ValueData::default()
                                        .with_key(str_bytes(k.as_str()))
                                        .with_value(v.0)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )),
        Err(e) => DescribeClientQuotasResponse::default()
            .with_error_code(match e {
                QuotaError::Invalid(_) => ResponseError::InvalidRequest.code(),
                QuotaError::Unsupported(_) => ResponseError::UnsupportedVersion.code(),
            })
            .with_error_message(Some(str_bytes(e.to_string())))
            .with_entries(None),
    }
}

/// Every entry answered with the same error (the principal may not alter quotas, or
/// the controller could not be reached).
pub fn refuse_all(
    req: &AlterClientQuotasRequest,
    code: i16,
    message: Option<&str>,
) -> AlterClientQuotasResponse {
    AlterClientQuotasResponse::default().with_entries(
        req.entries
            .iter()
            .map(|e| entry(&e.entity, code, message.map(str::to_string)))
            .collect(),
    )
}

pub async fn alter(
    controller: &ControllerClient,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let alterations: Vec<QuotaAlteration> = req
        .entries
        .iter()
        .map(|e| QuotaAlteration {
            entity: e
                .entity
                .iter()
                .map(|p| {
                    (
                        p.entity_type.to_string(),
                        p.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect(),
            ops: e
                .ops
                .iter()
                .map(|op| (op.key.to_string(), (!op.remove).then_some(op.value)))
                .collect(),
        })
        .collect();
    match controller
        .alter_client_quotas(alterations, req.validate_only)
        .await
    {
        Ok(results) => AlterClientQuotasResponse::default().with_entries(
            req.entries
                .iter()
                .zip(results)
                .map(|(e, (code, message))| entry(&e.entity, code, message))
                .collect(),
        ),
        Err(e) => refuse_all(&req, e.code, Some(&e.message)),
    }
}

fn entry(
    entity: &[kafka_protocol::messages::alter_client_quotas_request::EntityData],
    code: i16,
    message: Option<String>,
) -> alter_client_quotas_response::EntryData {
    alter_client_quotas_response::EntryData::default()
        .with_error_code(code)
        .with_error_message(message.map(str_bytes))
        .with_entity(
            entity
                .iter()
                .map(|p| {
                    alter_client_quotas_response::EntityData::default()
                        .with_entity_type(p.entity_type.clone())
                        .with_entity_name(p.entity_name.clone())
                })
                .collect(),
        )
}
