//! The embeddable API: start a broker in-process with `Broker::builder()`, talk to it
//! over TCP with encoded Kafka requests, shut it down.

use std::net::SocketAddr;

use brook_broker::Broker;
use brook_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use brook_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use brook_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use brook_protocol::kafka_protocol::messages::*;
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::records::{decode_batches, encode_batch, Record};
use brook_protocol::request::{decode_response, encode_request};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn call(
    stream: &mut TcpStream,
    api: ApiKey,
    version: i16,
    body: RequestKind,
) -> ResponseKind {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(9);
    stream
        .write_all(&encode_request(&header, &body).unwrap())
        .await
        .unwrap();
    let len = stream.read_i32().await.unwrap() as usize;
    let mut buf = BytesMut::zeroed(len);
    stream.read_exact(&mut buf).await.unwrap();
    let (correlation_id, response) = decode_response(api, version, buf.freeze()).unwrap();
    assert_eq!(correlation_id, 9);
    response
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_fetch_through_an_embedded_broker() {
    let broker = Broker::builder()
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .memory(true)
        .set("num.partitions", "2")
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut stream = TcpStream::connect(broker.local_addr()).await.unwrap();

    let ResponseKind::ApiVersions(versions) = call(
        &mut stream,
        ApiKey::ApiVersions,
        3,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    )
    .await
    else {
        panic!("wrong response")
    };
    assert!(versions
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16 && k.min_version == 0));

    let topic = CreatableTopic::default()
        .with_name(name("t"))
        .with_num_partitions(-1)
        .with_replication_factor(-1);
    let ResponseKind::CreateTopics(created) = call(
        &mut stream,
        ApiKey::CreateTopics,
        7,
        RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![topic])),
    )
    .await
    else {
        panic!("wrong response")
    };
    assert_eq!(
        (
            created.topics[0].error_code,
            created.topics[0].num_partitions
        ),
        (0, 2)
    );

    let records: Vec<Record> = (0..10)
        .map(|i| Record {
            value: Some(Bytes::from(format!("v{i}"))),
            timestamp_ms: 1,
            ..Record::default()
        })
        .collect();
    let batch = encode_batch(&records, brook_protocol::batch::Compression::Zstd)
        .unwrap()
        .freeze();
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("t"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(1)
                .with_records(Some(batch))])]);
    for expected_base in [0, 10] {
        let ResponseKind::Produce(produced) = call(
            &mut stream,
            ApiKey::Produce,
            9,
            RequestKind::Produce(produce.clone()),
        )
        .await
        else {
            panic!("wrong response")
        };
        let p = &produced.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, expected_base));
    }

    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name("t"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(1)
                .with_fetch_offset(13)
                .with_partition_max_bytes(1 << 20)])]);
    let ResponseKind::Fetch(fetched) =
        call(&mut stream, ApiKey::Fetch, 12, RequestKind::Fetch(fetch)).await
    else {
        panic!("wrong response")
    };
    let p = &fetched.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 20));
    let got = decode_batches(p.records.clone().unwrap()).unwrap();
    // The whole batch holding offset 13 comes back; the client skips what it did not ask for.
    assert_eq!(got.first().map(|r| r.offset), Some(10));
    assert_eq!(
        got.last().map(|r| r.value.clone()),
        Some(Some(Bytes::from("v9")))
    );

    broker.shutdown().await;
}

/// Metadata by topic id (v12+): with a null name, and with the empty name the Java
/// client leaves in the field when it asks by id (for the topics of a KIP-848 regex
/// assignment); an unknown id answers UNKNOWN_TOPIC_ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_by_topic_id() {
    use brook_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let broker = Broker::builder()
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .memory(true)
        .start()
        .await
        .unwrap();
    let mut stream = TcpStream::connect(broker.local_addr()).await.unwrap();
    let topic = CreatableTopic::default()
        .with_name(name("by-id"))
        .with_num_partitions(3)
        .with_replication_factor(-1);
    let ResponseKind::CreateTopics(created) = call(
        &mut stream,
        ApiKey::CreateTopics,
        7,
        RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![topic])),
    )
    .await
    else {
        panic!("wrong response")
    };
    let id = created.topics[0].topic_id;
    assert!(!id.is_nil());
    let unknown = uuid::Uuid::from_u64_pair(1, 2);
    let ask = vec![
        MetadataRequestTopic::default()
            .with_topic_id(id)
            .with_name(None),
        MetadataRequestTopic::default()
            .with_topic_id(id)
            .with_name(Some(name(""))),
        MetadataRequestTopic::default()
            .with_topic_id(unknown)
            .with_name(Some(name(""))),
    ];
    let ResponseKind::Metadata(meta) = call(
        &mut stream,
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(MetadataRequest::default().with_topics(Some(ask))),
    )
    .await
    else {
        panic!("wrong response")
    };
    for t in &meta.topics[..2] {
        assert_eq!(t.error_code, 0);
        assert_eq!(t.name.as_ref().map(|n| n.0.as_str()), Some("by-id"));
        assert_eq!((t.topic_id, t.partitions.len()), (id, 3));
    }
    assert_eq!(meta.topics[2].error_code, 100, "UNKNOWN_TOPIC_ID");
    broker.shutdown().await;
}

/// Requests sent back to back on one connection, acks=all Produce (on this single
/// broker answered at once: the leader is its whole ISR), acks=0 Produce (no answer)
/// and others mixed: answered in request order, the records appended in request order.
/// (`connection::tests` and `test_cluster.py` cover answers held for replication.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_request_order() {
    let broker = Broker::builder()
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .memory(true)
        .start()
        .await
        .unwrap();
    let mut stream = TcpStream::connect(broker.local_addr()).await.unwrap();
    let topic = CreatableTopic::default()
        .with_name(name("p"))
        .with_num_partitions(1)
        .with_replication_factor(-1);
    let ResponseKind::CreateTopics(created) = call(
        &mut stream,
        ApiKey::CreateTopics,
        7,
        RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![topic])),
    )
    .await
    else {
        panic!("wrong response")
    };
    assert_eq!(created.topics[0].error_code, 0);

    let produce = |acks: i16, i: usize| {
        let records = [Record {
            value: Some(Bytes::from(format!("v{i}"))),
            timestamp_ms: 1,
            ..Record::default()
        }];
        let batch = encode_batch(&records, brook_protocol::batch::Compression::None)
            .unwrap()
            .freeze();
        RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name("p"))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch))])]),
        )
    };
    // (correlation id, api, version, request); every fourth Produce is acks=0.
    let mut requests = Vec::new();
    for i in 0..40 {
        let id = i as i32;
        requests.push(match i % 5 {
            4 => (
                id,
                ApiKey::ApiVersions,
                3,
                RequestKind::ApiVersions(ApiVersionsRequest::default()),
            ),
            3 => (id, ApiKey::Produce, 9, produce(0, i)),
            _ => (id, ApiKey::Produce, 9, produce(-1, i)),
        });
    }
    let mut wire = BytesMut::new();
    for (id, api, version, body) in &requests {
        let header = RequestHeader::default()
            .with_request_api_key(*api as i16)
            .with_request_api_version(*version)
            .with_correlation_id(*id);
        wire.extend_from_slice(&encode_request(&header, body).unwrap());
    }
    stream.write_all(&wire).await.unwrap();

    let mut offsets = Vec::new();
    for (id, api, version, _) in requests
        .iter()
        .filter(|r| !matches!(&r.3, RequestKind::Produce(p) if p.acks == 0))
    {
        let len = stream.read_i32().await.unwrap() as usize;
        let mut buf = BytesMut::zeroed(len);
        stream.read_exact(&mut buf).await.unwrap();
        let (correlation_id, response) = decode_response(*api, *version, buf.freeze()).unwrap();
        assert_eq!(correlation_id, *id, "answers out of request order");
        if let ResponseKind::Produce(produced) = response {
            let p = &produced.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0);
            offsets.push((*id, p.base_offset));
        }
    }
    // Every Produce (acks=0 ones too) appended one record, in request order.
    let produces: Vec<i32> = requests
        .iter()
        .filter(|r| r.1 == ApiKey::Produce)
        .map(|r| r.0)
        .collect();
    for (id, offset) in offsets {
        let position = produces.iter().position(|p| *p == id).unwrap() as i64;
        assert_eq!(offset, position, "request {id} appended out of order");
    }
    broker.shutdown().await;
}
