use std::sync::Arc;

use brook_meta::{Acl, AclPermission, MetadataRecord, PatternType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    FindCoordinatorRequest, MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::*;
use crate::listeners::SecurityProtocol;
use crate::session::{KafkaPrincipal, ListenerInfo, Session};

fn ctx(user: &str) -> RequestContext {
    let listener = Arc::new(ListenerInfo {
        name: "PLAINTEXT".into(),
        protocol: SecurityProtocol::Plaintext,
        controller: false,
    });
    RequestContext {
        client_id: None,
        peer: "10.0.0.1:5000".parse().unwrap(),
        session: Arc::new(Session::new(listener, KafkaPrincipal::user(user))),
        fetch_sessions: Arc::default(),
    }
}

fn access() -> Access {
    Access {
        authorizer: Some(Authorizer::new("User:admin", false)),
    }
}

fn allow(image: &mut MetadataImage, topic: &str, user: &str, op: Op) {
    let id = uuid::Uuid::new_v4();
    image.apply(&MetadataRecord::AclCreated {
        id,
        acl: Acl {
            resource_type: ResourceType::Topic,
            resource_name: topic.into(),
            pattern_type: PatternType::Literal,
            principal: format!("User:{user}"),
            host: "*".into(),
            operation: op,
            permission: AclPermission::Allow,
        },
    });
}

fn topic(name: &str) -> TopicProduceData {
    TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(name.into())))
        .with_partition_data(vec![PartitionProduceData::default().with_index(0)])
}

#[test]
fn produce_keeps_what_may_be_written_and_refuses_the_rest_per_partition() {
    let (a, mut image) = (access(), MetadataImage::new(1));
    allow(&mut image, "ok", "alice", Op::Write);
    let alice = ctx("alice");
    let c = a.check(&image, &alice).unwrap();
    let mut req = ProduceRequest::default().with_topic_data(vec![topic("ok"), topic("no")]);
    let refused = produce(&c, &image, &mut req).unwrap();
    assert_eq!(req.topic_data.len(), 1);
    assert_eq!(&*req.topic_data[0].name, "ok");
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].partition_responses[0].error_code,
        ResponseError::TopicAuthorizationFailed.code()
    );
    // A transactional produce without WRITE on the id is refused whole.
    let mut txn = ProduceRequest::default()
        .with_transactional_id(Some(StrBytes::from_static_str("t").into()))
        .with_topic_data(vec![topic("ok")]);
    assert!(produce(&c, &image, &mut txn).is_err());
    // The super user may do anything.
    let admin = ctx("admin");
    let c = a.check(&image, &admin).unwrap();
    let mut req = ProduceRequest::default().with_topic_data(vec![topic("no")]);
    assert!(produce(&c, &image, &mut req).unwrap().is_empty());
}

#[test]
fn metadata_refuses_named_topics_that_may_not_be_described_or_created() {
    let (a, mut image) = (access(), MetadataImage::new(1));
    allow(&mut image, "seen", "alice", Op::Read);
    allow(&mut image, "new", "alice", Op::Describe);
    image.apply(&MetadataRecord::TopicCreated {
        name: "seen".into(),
        topic_id: uuid::Uuid::new_v4(),
        partitions: 1,
        replication_factor: 1,
        configs: Default::default(),
        internal: false,
        assignment: Vec::new(),
    });
    let alice = ctx("alice");
    let c = a.check(&image, &alice).unwrap();
    let named = |n: &str| {
        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(n.into()))))
    };
    let mut req = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![named("seen"), named("hidden"), named("new")]));
    let refused = metadata(&c, &image, true, &mut req);
    let kept: Vec<_> = req
        .topics
        .unwrap()
        .iter()
        .map(|t| t.name.clone().unwrap().to_string())
        .collect();
    assert_eq!(kept, ["seen"]);
    let refused: Vec<_> = refused
        .iter()
        .map(|t| t.name.clone().unwrap().to_string())
        .collect();
    // "new" would be created: DESCRIBE is not CREATE.
    assert_eq!(refused, ["hidden", "new"]);
}

#[test]
fn a_change_of_the_acls_ends_the_cached_decisions() {
    let (a, mut image) = (access(), MetadataImage::new(1));
    let alice = ctx("alice");
    assert!(!a.check(&image, &alice).unwrap().topic(Op::Read, "t"));
    allow(&mut image, "t", "alice", Op::Read);
    assert!(a.check(&image, &alice).unwrap().topic(Op::Read, "t"));
    assert!(a.check(&image, &alice).unwrap().topic(Op::Describe, "t"));
    assert!(Access::default().check(&image, &alice).is_none());
}

#[test]
fn a_refused_find_coordinator_says_why_as_kafka_does() {
    let (a, image) = (access(), MetadataImage::new(1));
    let alice = ctx("alice");
    let c = a.check(&image, &alice).unwrap();
    // Before v4: the whole answer, with Kafka's message (librdkafka prints it).
    let mut req = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
    let whole = find_coordinator(&c, &mut req, 3).unwrap_err();
    assert_eq!(
        whole.error_code,
        ResponseError::GroupAuthorizationFailed.code()
    );
    assert_eq!(
        whole.error_message.as_deref(),
        Some("Group authorization failed.")
    );
    // From v4: per key.
    let mut req = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![StrBytes::from_static_str("tx")]);
    let refused = find_coordinator(&c, &mut req, 4).unwrap();
    assert_eq!(
        refused[0].error_message.as_deref(),
        Some("Transactional Id authorization failed.")
    );
    assert!(req.coordinator_keys.is_empty());
}
