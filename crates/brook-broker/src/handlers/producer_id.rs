//! InitProducerId for idempotent producers. Each call hands out a fresh producer id
//! with epoch 0, as Kafka does for producers without a transactional id (those with one
//! go to the transaction coordinator, `handlers::txn`).

use kafka_protocol::messages::{InitProducerIdResponse, ProducerId};

use crate::controller_client::ControllerClient;

pub async fn handle(controller: &ControllerClient) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match controller.allocate_producer_id().await {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => response.with_error_code(e.code),
    }
}
