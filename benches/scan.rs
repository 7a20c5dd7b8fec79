//! Scanner cost per message next to rsip's full parse, on the messages a proxy sees most:
//! an INVITE with SDP (~900 bytes, Route and Record-Route), its 200 OK, and a BYE.
//!
//! `cargo bench --bench scan`; medians are in target/criterion/<group>/<parser>/new/estimates.json.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use junction::sip::scan::{peek_call_id, scan, Message};

const INVITE: &str = "INVITE sip:+14155550123@gw2.carrier.example.net;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6;rport\r\n\
Max-Forwards: 69\r\n\
Route: <sip:edge1.carrier.example.net;lr>, <sip:core7.carrier.example.net;lr>\r\n\
Record-Route: <sip:sbc.pbx.example.com;lr;ftag=as5f3e1a2b>\r\n\
From: \"Front Desk\" <sip:+12125550100@pbx.example.com;user=phone>;tag=as5f3e1a2b\r\n\
To: <sip:+14155550123@carrier.example.net;user=phone>\r\n\
Call-ID: 3c26700a-4fcd2a1b@198.51.100.10\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:+12125550100@198.51.100.10:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE\r\n\
Supported: replaces, timer\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 240\r\n\
\r\n\
v=0\r\n\
o=- 3724394000 3724394000 IN IP4 198.51.100.10\r\n\
s=-\r\n\
c=IN IP4 198.51.100.10\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

const OK_200: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKjx0.proxy.1\r\n\
Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6;rport=5060;received=198.51.100.10\r\n\
Record-Route: <sip:192.0.2.1;lr>\r\n\
Record-Route: <sip:sbc.pbx.example.com;lr;ftag=as5f3e1a2b>\r\n\
From: \"Front Desk\" <sip:+12125550100@pbx.example.com;user=phone>;tag=as5f3e1a2b\r\n\
To: <sip:+14155550123@carrier.example.net;user=phone>;tag=7f3a9c21\r\n\
Call-ID: 3c26700a-4fcd2a1b@198.51.100.10\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:+14155550123@203.0.113.20:5060>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 175\r\n\
\r\n\
v=0\r\n\
o=- 81234 81234 IN IP4 203.0.113.20\r\n\
s=-\r\n\
c=IN IP4 203.0.113.20\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=ptime:20\r\n";

const BYE: &str = "BYE sip:+14155550123@203.0.113.20:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---bye0001;rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:sbc.pbx.example.com;lr;ftag=as5f3e1a2b>\r\n\
Route: <sip:192.0.2.1;lr>\r\n\
From: \"Front Desk\" <sip:+12125550100@pbx.example.com;user=phone>;tag=as5f3e1a2b\r\n\
To: <sip:+14155550123@carrier.example.net;user=phone>;tag=7f3a9c21\r\n\
Call-ID: 3c26700a-4fcd2a1b@198.51.100.10\r\n\
CSeq: 103 BYE\r\n\
Content-Length: 0\r\n\
\r\n";

fn bench(c: &mut Criterion) {
    let mut out = Box::new(Message::default());
    for (name, text) in [("invite", INVITE), ("200", OK_200), ("bye", BYE)] {
        let bytes = text.as_bytes();
        // The benchmark means nothing if either parser rejects the message.
        assert_eq!(scan(bytes, &mut out), Ok(()), "{name}");
        assert_eq!(out.body.end as usize, bytes.len(), "{name}: Content-Length");
        assert!(rsip::SipMessage::try_from(bytes).is_ok(), "{name}: rsip");

        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("junction_scan", |b| {
            b.iter(|| scan(black_box(bytes), &mut out))
        });
        group.bench_function("junction_peek_call_id", |b| {
            b.iter(|| peek_call_id(black_box(bytes)))
        });
        group.bench_function("rsip_try_from", |b| {
            b.iter(|| rsip::SipMessage::try_from(black_box(bytes)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
