//! Criterion benches of the protocol framers: bytes framed per second, on typical messages
//! (a pipeline of commands, a big bulk reply, an HTTP request with a chunked body, memcache
//! values, an SMTP message, a MySQL result set). Run with `cargo bench --bench parsers`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use vaurien::protocol::framing::Framer;
use vaurien::protocol::{http, memcache, mysql, redis, smtp};

/// Frames every message of `input` with fresh framers from `make`; returns the bytes framed.
fn frame_all<F: Framer>(make: impl Fn() -> F, input: &[u8]) -> usize {
    let mut at = 0;
    while at < input.len() {
        let mut f = make();
        match f.advance(&input[at..]) {
            Ok(p) if p.done && p.consumed > 0 => at += p.consumed,
            _ => break,
        }
    }
    at
}

fn mysql_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut v = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq];
    v.extend_from_slice(payload);
    v
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("framers");

    let pipeline: Vec<u8> = (0..1000)
        .flat_map(|i| {
            format!("*3\r\n$3\r\nSET\r\n$8\r\nkey:{i:04}\r\n$16\r\nvalue-{i:010}\r\n").into_bytes()
        })
        .collect();
    g.throughput(Throughput::Bytes(pipeline.len() as u64));
    g.bench_function("redis commands", |b| {
        b.iter(|| frame_all(redis::RequestFramer::new, black_box(&pipeline)))
    });

    let mut reply = b"*1000\r\n".to_vec();
    for i in 0..1000 {
        reply.extend_from_slice(format!("$32\r\n{i:032}\r\n").as_bytes());
    }
    g.throughput(Throughput::Bytes(reply.len() as u64));
    g.bench_function("redis array reply", |b| {
        b.iter(|| frame_all(redis::RespFramer::new, black_box(&reply)))
    });

    let mut req = b"POST /upload HTTP/1.1\r\nHost: example\r\nUser-Agent: bench\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..64 {
        req.extend_from_slice(b"400\r\n");
        req.extend_from_slice(&[b'x'; 0x400]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    g.throughput(Throughput::Bytes(req.len() as u64));
    g.bench_function("http chunked request", |b| {
        b.iter(|| frame_all(http::MessageFramer::request, black_box(&req)))
    });

    let mut values = Vec::new();
    for i in 0..100 {
        values.extend_from_slice(format!("VALUE key{i} 0 100\r\n").as_bytes());
        values.extend_from_slice(&[b'v'; 100]);
        values.extend_from_slice(b"\r\n");
    }
    values.extend_from_slice(b"END\r\n");
    g.throughput(Throughput::Bytes(values.len() as u64));
    g.bench_function("memcache values", |b| {
        b.iter(|| {
            frame_all(
                || memcache::ReplyFramer::new(memcache::Reply::Values),
                black_box(&values),
            )
        })
    });

    let mut mail = Vec::new();
    for i in 0..2000 {
        mail.extend_from_slice(
            format!("line {i} of a message body, long enough to matter\r\n").as_bytes(),
        );
    }
    mail.extend_from_slice(b".\r\n");
    g.throughput(Throughput::Bytes(mail.len() as u64));
    g.bench_function("smtp data", |b| {
        b.iter(|| frame_all(smtp::DataFramer::new, black_box(&mail)))
    });

    let mut rs = mysql_packet(1, &[2]);
    rs.extend(mysql_packet(2, b"\x03def\x00\x00\x00\x01a\x00\x0c"));
    rs.extend(mysql_packet(3, b"\x03def\x00\x00\x00\x01b\x00\x0c"));
    rs.extend(mysql_packet(4, &[0xfe, 0, 0, 2, 0]));
    for i in 0..1000u32 {
        rs.extend(mysql_packet(
            (5 + i) as u8,
            format!("\x04{i:04}\x0bvalue {i:05}").as_bytes(),
        ));
    }
    rs.extend(mysql_packet(0, &[0xfe, 0, 0, 2, 0]));
    g.throughput(Throughput::Bytes(rs.len() as u64));
    g.bench_function("mysql result set", |b| {
        b.iter(|| frame_all(|| mysql::ResponseFramer::new(0x03), black_box(&rs)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
