//! Kafka framing: every request and response is a big-endian `i32` length followed by
//! that many bytes.

use thiserror::Error;

/// Kafka's `socket.request.max.bytes` default: 100 MiB.
pub const DEFAULT_MAX_REQUEST_SIZE_BYTES: usize = 100 * 1024 * 1024;

/// Length of the size prefix in front of every frame.
pub const FRAME_PREFIX_LEN: usize = 4;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame size {size} is negative or zero")]
    Invalid { size: i32 },
    #[error(
        "frame size {size} bytes exceeds the limit of {limit} bytes (socket.request.max.bytes)"
    )]
    TooLarge { size: usize, limit: usize },
}

/// Reads the frame length from its 4-byte prefix and checks it against `limit_bytes`.
pub fn frame_len(prefix: [u8; FRAME_PREFIX_LEN], limit_bytes: usize) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    if size <= 0 {
        return Err(FrameError::Invalid { size });
    }
    let size = size as usize;
    if size > limit_bytes {
        return Err(FrameError::TooLarge {
            size,
            limit: limit_bytes,
        });
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(frame_len(10i32.to_be_bytes(), 100), Ok(10));
        assert_eq!(
            frame_len(0i32.to_be_bytes(), 100),
            Err(FrameError::Invalid { size: 0 })
        );
        assert_eq!(
            frame_len((-5i32).to_be_bytes(), 100),
            Err(FrameError::Invalid { size: -5 })
        );
        assert_eq!(
            frame_len(101i32.to_be_bytes(), 100),
            Err(FrameError::TooLarge {
                size: 101,
                limit: 100
            })
        );
    }
}
