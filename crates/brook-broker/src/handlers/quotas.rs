//! DescribeClientQuotas. Brook enforces no client quotas yet (issue 15), so none are
//! set: it answers with no entries, after Kafka's checks of the filter. `kafka-configs
//! --describe --entity-type users` asks for quotas before SCRAM credentials.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

use super::str_bytes;

const MATCH_EXACT: i8 = 0;
const MATCH_SPECIFIED: i8 = 2;
const ENTITY_TYPES: &[&str] = &["user", "client-id", "ip"];

pub fn describe(req: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let invalid = |message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes(message)))
            .with_entries(None)
    };
    let mut seen: Vec<&str> = Vec::new();
    for c in &req.components {
        let entity = c.entity_type.as_str();
        if !ENTITY_TYPES.contains(&entity) {
            return invalid(format!("Custom entity type '{entity}' not supported"));
        }
        if seen.contains(&entity) {
            return invalid(format!("Duplicate {entity} filter component entity type"));
        }
        seen.push(entity);
        if !(MATCH_EXACT..=MATCH_SPECIFIED).contains(&c.match_type) {
            return invalid(format!("Unexpected match type: {}", c.match_type));
        }
        if c.match_type == MATCH_EXACT && c._match.is_none() {
            return invalid("Exact match requires a name".into());
        }
    }
    DescribeClientQuotasResponse::default().with_entries(Some(Vec::new()))
}
