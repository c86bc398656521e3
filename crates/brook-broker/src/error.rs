//! The error every handler answers with: a Kafka error code and a message for the client.

use kafka_protocol::error::ResponseError;
use thiserror::Error;

use crate::config::ConfigError;

/// An error with a Kafka error code and a message for the client.
#[derive(Debug, Error, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[error("{message}")]
pub struct ApiError {
    pub code: i16,
    pub message: String,
}

impl ApiError {
    pub fn new(error: ResponseError, message: impl Into<String>) -> Self {
        ApiError {
            code: error.code(),
            message: message.into(),
        }
    }

    pub fn is(&self, error: ResponseError) -> bool {
        self.code == error.code()
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError::new(ResponseError::InvalidConfig, e.to_string())
    }
}

impl From<brook_meta::MetaError> for ApiError {
    fn from(e: brook_meta::MetaError) -> Self {
        tracing::error!(error = %e, "metadata log write failed");
        ApiError::new(ResponseError::KafkaStorageError, e.to_string())
    }
}

/// A log error as the client sees it.
pub fn storage(e: brook_log::LogError) -> ApiError {
    ApiError::new(ResponseError::KafkaStorageError, e.to_string())
}

pub fn unknown_topic(name: &str) -> ApiError {
    ApiError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("topic '{name}' does not exist"),
    )
}
