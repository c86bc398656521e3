//! The connection's socket writing: chunks in order, short files failing.

use std::io::Write;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::*;

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
