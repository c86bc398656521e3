//! A small Kafka client for Brook's own CLI tools: one connection (plain or TLS, with
//! a SASL login if asked: `crate::security`), typed requests, optional pipelining
//! (send several, then receive in order).

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use brook_protocol::kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::kafka_protocol::protocol::{Decodable, Request};
use brook_protocol::request::{decode_response, encode_request};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use crate::cli::Connect;
use crate::security::{SaslLogin, Security};

/// How the tools connect: how long a connect or an answer may take, and the security
/// settings.
#[derive(Clone)]
pub struct ConnectOptions {
    pub timeout: Duration,
    pub security: std::sync::Arc<Security>,
}

type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// Largest response the tools accept.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

pub struct Client {
    /// How long a connect or an answer may take.
    timeout: Duration,
    reader: BufReader<ReadHalf>,
    writer: BufWriter<WriteHalf>,
    next_correlation_id: i32,
    in_flight: VecDeque<(i32, ApiKey, i16)>,
}

impl Client {
    /// Connects to the first broker of the bootstrap list that accepts in time.
    pub async fn connect(connect: &Connect) -> Result<Self> {
        let options = connect.options()?;
        let addresses = connect.addresses();
        if addresses.is_empty() {
            bail!("no broker address in --bootstrap-server");
        }
        let mut failures = Vec::new();
        for address in &addresses {
            match Self::connect_to(address, &options).await {
                Ok(client) => return Ok(client),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        bail!("cannot connect to {}", failures.join("; "))
    }

    /// Connects to one broker (`host:port`), giving up after the options' timeout; then
    /// the TLS handshake and the SASL login, if the options ask for them.
    pub async fn connect_to(address: &str, options: &ConnectOptions) -> Result<Self> {
        let timeout = options.timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => bail!("{address}: {e}"),
            Err(_) => bail!("{address}: no answer in {timeout:?}"),
        };
        stream.set_nodelay(true)?;
        let (r, w): (ReadHalf, WriteHalf) = match &options.security.tls {
            None => {
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w))
            }
            Some(config) => {
                let host = address
                    .rsplit_once(':')
                    .map_or(address, |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = rustls_pki_types::ServerName::try_from(host.to_string())
                    .with_context(|| format!("{address}: not a host name for TLS"))?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let tls = tokio::time::timeout(timeout, connector.connect(name, stream))
                    .await
                    .map_err(|_| anyhow!("{address}: no TLS handshake in {timeout:?}"))?
                    .with_context(|| format!("{address}: TLS handshake"))?;
                let (r, w) = tokio::io::split(tls);
                (Box::new(r), Box::new(w))
            }
        };
        let mut client = Client {
            timeout,
            reader: BufReader::with_capacity(256 * 1024, r),
            writer: BufWriter::with_capacity(256 * 1024, w),
            next_correlation_id: 1,
            in_flight: VecDeque::new(),
        };
        if let Some(login) = &options.security.sasl {
            client.sasl_login(login).await.with_context(|| {
                format!(
                    "{address}: SASL {} login as {}",
                    login.mechanism, login.username
                )
            })?;
        }
        Ok(client)
    }

    /// SaslHandshake, then SaslAuthenticate until the mechanism is done (rsasl plays
    /// the client's side).
    async fn sasl_login(&mut self, login: &SaslLogin) -> Result<()> {
        use brook_protocol::kafka_protocol::messages::{
            SaslAuthenticateRequest, SaslHandshakeRequest,
        };
        use rsasl::prelude::{Mechname, SASLClient, SASLConfig};
        let handshake = self
            .request(
                1,
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_string(login.mechanism.clone())),
            )
            .await?;
        if handshake.error_code != 0 {
            let enabled: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            bail!(
                "the listener does not take {} (it takes: {})",
                login.mechanism,
                enabled.join(", ")
            );
        }
        let config =
            SASLConfig::with_credentials(None, login.username.clone(), login.password.clone())
                .map_err(|e| anyhow!("{e}"))?;
        let mechanism = Mechname::parse(login.mechanism.as_bytes()).map_err(|e| anyhow!("{e}"))?;
        let mut session = SASLClient::new(config)
            .start_suggested(&[mechanism])
            .map_err(|e| anyhow!("{e}"))?;
        let mut input: Option<Vec<u8>> = None;
        loop {
            let mut out = Vec::new();
            let state = session
                .step(input.as_deref(), &mut out)
                .map_err(|e| anyhow!("{e}"))?;
            if input.is_none() || !out.is_empty() {
                let answer = self
                    .request(
                        2,
                        SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(out)),
                    )
                    .await?;
                if answer.error_code != 0 {
                    bail!(
                        "{}",
                        answer
                            .error_message
                            .as_deref()
                            .unwrap_or("authentication failed")
                    );
                }
                input = Some(answer.auth_bytes.to_vec());
            }
            if state.is_finished() {
                return Ok(());
            }
        }
    }

    /// Changes how long an answer may take (JoinGroup waits for a whole rebalance).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Queues a request; call [`Client::flush`] then [`Client::receive`] for its answer.
    pub async fn send(
        &mut self,
        api: ApiKey,
        version: i16,
        body: RequestKind,
        expect_response: bool,
    ) -> Result<()> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("brook-cli")));
        let frame = encode_request(&header, &body)?;
        self.writer.write_all(&frame).await?;
        if expect_response {
            self.in_flight.push_back((correlation_id, api, version));
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<()> {
        tokio::time::timeout(self.timeout, self.writer.flush())
            .await
            .map_err(|_| {
                anyhow!(
                    "the broker took more than {:?} to take a request",
                    self.timeout
                )
            })??;
        Ok(())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Reads the frame answering the oldest request in flight, checking its correlation
    /// id; gives up after the timeout.
    async fn receive_frame(&mut self) -> Result<(ApiKey, i16, Bytes)> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.receive_frame_now())
            .await
            .map_err(|_| anyhow!("the broker did not answer within {timeout:?}"))?
    }

    async fn receive_frame_now(&mut self) -> Result<(ApiKey, i16, Bytes)> {
        let Some((expected, api, version)) = self.in_flight.pop_front() else {
            bail!("no request in flight")
        };
        let len = self
            .reader
            .read_i32()
            .await
            .context("connection closed by the broker")?;
        if len < 4 || len as usize > MAX_RESPONSE_BYTES {
            bail!("invalid response size {len}");
        }
        let mut buf = BytesMut::zeroed(len as usize);
        self.reader.read_exact(&mut buf).await?;
        let correlation_id = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if correlation_id != expected {
            bail!(
                "response out of order: expected correlation id {expected}, got {correlation_id}"
            );
        }
        Ok((api, version, buf.freeze()))
    }

    /// Receives the response to the oldest request in flight.
    pub async fn receive(&mut self) -> Result<ResponseKind> {
        let (api, version, frame) = self.receive_frame().await?;
        Ok(decode_response(api, version, frame)?.1)
    }

    /// Sends one typed request and waits for its typed response.
    pub async fn request<R>(&mut self, version: i16, body: R) -> Result<R::Response>
    where
        R: Request + Into<RequestKind>,
    {
        let api = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown API key {}", R::KEY))?;
        self.send(api, version, body.into(), true).await?;
        self.flush().await?;
        let (_, _, mut frame) = self.receive_frame().await?;
        ResponseHeader::decode(&mut frame, api.response_header_version(version))?;
        R::Response::decode(&mut frame, version)
    }
}

/// Kafka's default partitioner hash (murmur2), so keys land where Java clients put them.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h = SEED ^ len as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition Kafka's default partitioner picks for a key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's own partitioner tests.
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"") as i32, 275646681);
    }
}
