//! The connection's socket writing: chunks in order, short files failing, answers in
//! request order.

use std::io::{self, Write};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::pipeline::{Replicated, ReplicationWait};
use super::write::*;
use super::*;
use crate::fetch_encode::FileRegion;
use tokio::io::AsyncWriteExt;

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (server, client)
}

fn file_with(content: &[u8]) -> Arc<std::fs::File> {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(content).unwrap();
    Arc::new(file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_go_out_in_order_through_a_full_socket() {
    let content: Vec<u8> = (0..12 << 20).map(|i: u32| (i % 251) as u8).collect();
    let file = file_with(&content);
    let (server, mut client) = pair().await;
    let (_read_half, write) = server.into_split();
    let mut writer = BufWriter::with_capacity(SOCKET_BUFFER_BYTES, write);
    let chunks = vec![
        Chunk::Bytes(Bytes::from_static(b"head")),
        Chunk::File(FileRegion {
            file: file.clone(),
            position: 5,
            len: content.len() - 9,
        }),
        Chunk::Bytes(Bytes::from_static(b"mid")),
        Chunk::File(FileRegion {
            file,
            position: 0,
            len: 3,
        }),
        Chunk::Bytes(Bytes::from_static(b"tail")),
    ];
    let sender = tokio::spawn(async move {
        write_chunks(&mut writer, chunks).await.unwrap();
        writer.flush().await.unwrap();
    });
    // Let the socket buffers fill so sendfile meets EAGAIN.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut expected = b"head".to_vec();
    expected.extend_from_slice(&content[5..content.len() - 4]);
    expected.extend_from_slice(b"mid");
    expected.extend_from_slice(&content[..3]);
    expected.extend_from_slice(b"tail");
    let mut got = vec![0; expected.len()];
    client.read_exact(&mut got).await.unwrap();
    assert!(got == expected);
    tokio::time::timeout(Duration::from_secs(10), sender)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_shorter_than_its_region_fails_instead_of_hanging() {
    // Copied (small) and sent (large) ranges.
    for (file_len, len) in [(1000, 5000), (300_000, 1_000_000)] {
        short_file(file_len, len).await;
    }
}

async fn short_file(file_len: usize, len: usize) {
    let file = file_with(&vec![7; file_len]);
    let (server, mut client) = pair().await;
    let (read_half, write) = server.into_split();
    let mut writer = BufWriter::with_capacity(SOCKET_BUFFER_BYTES, write);
    let chunks = vec![
        Chunk::Bytes(Bytes::from_static(b"head")),
        Chunk::File(FileRegion {
            file,
            position: 10,
            len,
        }),
    ];
    let err = tokio::time::timeout(Duration::from_secs(10), write_chunks(&mut writer, chunks))
        .await
        .expect("sendfile of a short file must not hang")
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    drop(writer);
    drop(read_half);
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    // A copied range fails before anything was flushed; a sent one after the
    // head and what the file still held.
    let sent = if len < SENDFILE_MIN_BYTES {
        0
    } else {
        4 + file_len - 10
    };
    assert_eq!(got.len(), sent);
}

/// An acks=all Produce's answer `bytes` once its wait of `ms` ends.
fn replicating_after(ms: u64, bytes: &'static [u8]) -> Reply {
    Reply::Replicating(ReplicationWait(tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Replicated {
            outcome: Outcome::Reply(BytesMut::from(bytes)),
            handled_ns: 0,
            remote_ns: 0,
        }
    })))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_go_out_in_request_order_when_later_waits_end_first() {
    let (server, mut client) = pair().await;
    let (_read_half, write) = server.into_split();
    let mut writer = BufWriter::with_capacity(SOCKET_BUFFER_BYTES, write);
    let slots = Semaphore::new(MAX_IN_FLIGHT_REQUESTS);
    let (queue, queued) = mpsc::channel(MAX_IN_FLIGHT_REQUESTS);
    let replies = [
        replicating_after(2000, b"1"),
        Reply::Ready(Outcome::Reply(BytesMut::from(&b"2"[..]))),
        replicating_after(10, b"3"),
        // acks=0: no answer, but its turn all the same.
        Reply::Ready(Outcome::NoReply),
        replicating_after(100, b"4"),
    ];
    let replies_len = replies.len();
    for reply in replies {
        let handled = Handled {
            reply,
            ..Handled::ready(Outcome::NoReply)
        };
        let queued = Queued {
            handled,
            received_ns: None,
            slot: slots.acquire().await.unwrap(),
        };
        queue.send(queued).await.unwrap();
    }
    drop(queue);
    // With the other slots taken too (requests still being read), every slot is
    // taken: one more request would not be read.
    let others = (MAX_IN_FLIGHT_REQUESTS - replies_len) as u32;
    let others = slots.acquire_many(others).await.unwrap();
    assert!(slots.try_acquire().is_err());
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let writing = write::write_responses(None, &mut writer, peer, Duration::from_secs(10), queued);
    let reading = async {
        // The later answers are ready long before the first: none may overtake it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut early = [0; 4];
        let ahead = client.try_read(&mut early);
        assert!(
            matches!(&ahead, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "answers written before the first one: {ahead:?}"
        );
        let mut got = [0; 4];
        client.read_exact(&mut got).await.unwrap();
        got
    };
    let ((), got) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(writing, reading)
    })
    .await
    .unwrap();
    assert_eq!(&got, b"1234");
    drop(others);
    assert_eq!(slots.available_permits(), MAX_IN_FLIGHT_REQUESTS);
}
