//! A hand-written AMQP 0-9-1 publisher, for sending what no client library
//! would: properties and header tables exactly as a test writes their bytes
//! (invalid UTF-8, any field type, nesting as deep as a frame holds).
//!
//! It speaks just enough of the protocol to open one channel in confirm
//! mode and publish to a queue through the default exchange; anything else
//! the broker says (a close, a nack, a return) is an error.

use std::io::{Error, ErrorKind, Result};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_END: u8 = 0xCE;
/// Type, channel and size before a frame's payload, and its end octet.
const FRAME_OVERHEAD: usize = 8;
/// Class, weight, body size and property flags before a content header's properties.
const CONTENT_HEADER_FIXED: usize = 14;
const CHANNEL: u16 = 1;

/// Encoders of AMQP field values, as RabbitMQ reads them: each returns the
/// type octet and the value. (RabbitMQ's `s` is a signed 16-bit integer,
/// not the spec's short string; `l` and `L` are both signed 64-bit.)
pub mod field {
    /// `t`
    pub fn boolean(value: bool) -> Vec<u8> {
        vec![b't', u8::from(value)]
    }
    /// Encoders of the fixed-size numbers: the type octet, then big-endian.
    macro_rules! numbers {
        ($($(#[$doc:meta])* $tag:literal $name:ident($type:ty);)*) => {$(
            #[doc = concat!("`", stringify!($tag), "`")]
            $(#[$doc])*
            pub fn $name(value: $type) -> Vec<u8> {
                let mut encoded = vec![$tag];
                encoded.extend_from_slice(&value.to_be_bytes());
                encoded
            }
        )*};
    }
    numbers! {
        b'b' i8(i8);
        b'B' u8(u8);
        b's' i16(i16);
        b'u' u16(u16);
        b'I' i32(i32);
        b'i' u32(u32);
        b'l' i64(i64);
        /// The spec's unsigned 64-bit integer, which RabbitMQ reads as signed.
        b'L' u64(u64);
        b'f' f32(f32);
        b'd' f64(f64);
        /// Seconds since the epoch.
        b'T' timestamp(u64);
    }
    /// `D`: `value` × 10^-`scale`.
    pub fn decimal(scale: u8, value: u32) -> Vec<u8> {
        let mut encoded = vec![b'D', scale];
        encoded.extend_from_slice(&value.to_be_bytes());
        encoded
    }
    /// `S`: any bytes.
    pub fn long_string(bytes: &[u8]) -> Vec<u8> {
        with_length(b'S', bytes)
    }
    /// `A`: values already encoded.
    pub fn array(values: &[Vec<u8>]) -> Vec<u8> {
        with_length(b'A', &values.concat())
    }
    /// `F`: a nested table.
    pub fn table(pairs: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
        let mut encoded = vec![b'F'];
        encoded.extend(super::table(pairs));
        encoded
    }
    /// `V`
    pub fn void() -> Vec<u8> {
        vec![b'V']
    }
    /// `x`: RabbitMQ's byte array.
    pub fn bytes(bytes: &[u8]) -> Vec<u8> {
        with_length(b'x', bytes)
    }

    fn with_length(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut encoded = vec![tag];
        super::put_u32(&mut encoded, value.len());
        encoded.extend_from_slice(value);
        encoded
    }
}

/// A field table (as the `headers` property holds it): its length, then
/// each name (a short string, any bytes) with its encoded value.
pub fn table(pairs: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut entries = Vec::new();
    for (name, value) in pairs {
        put_short_string(&mut entries, name);
        entries.extend_from_slice(value);
    }
    let mut encoded = Vec::with_capacity(4 + entries.len());
    put_u32(&mut encoded, entries.len());
    encoded.extend(entries);
    encoded
}

/// What a [`nested`] value nests in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// Arrays of one element: 5 bytes a level.
    Array,
    /// Tables of one field named `n`: 7 bytes a level.
    Table,
}

impl Nesting {
    const fn level_len(self) -> usize {
        match self {
            Nesting::Array => 5,
            Nesting::Table => 7,
        }
    }
}

/// A field value `depth` levels of `nesting` deep around `leaf` (an encoded
/// value). Built front to back in one pass: no recursion, whatever the depth.
pub fn nested(depth: usize, nesting: Nesting, leaf: &[u8]) -> Vec<u8> {
    let level = nesting.level_len();
    let mut encoded = Vec::with_capacity(depth * level + leaf.len());
    for remaining in (0..depth).rev() {
        // What follows this level's length: the levels inside it and the leaf.
        let inner = remaining * level + leaf.len();
        match nesting {
            Nesting::Array => {
                encoded.push(b'A');
                put_u32(&mut encoded, inner);
            }
            Nesting::Table => {
                encoded.push(b'F');
                put_u32(&mut encoded, inner + 2);
                put_short_string(&mut encoded, b"n");
            }
        }
    }
    encoded.extend_from_slice(leaf);
    encoded
}

/// The deepest [`nested`] value around a leaf of `leaf_len` bytes that takes
/// at most `budget` bytes.
pub fn deepest_within(budget: usize, nesting: Nesting, leaf_len: usize) -> usize {
    budget.saturating_sub(leaf_len) / nesting.level_len()
}

/// A message's properties as raw bytes: short strings may be anything up to
/// 255 bytes, `headers` is a complete field table (see [`table`]).
#[derive(Debug, Clone, Default)]
pub struct RawProperties {
    /// `content_type`
    pub content_type: Option<Vec<u8>>,
    /// `headers`, encoded, its length included.
    pub headers: Option<Vec<u8>>,
    /// `delivery_mode`
    pub delivery_mode: Option<u8>,
    /// `correlation_id`
    pub correlation_id: Option<Vec<u8>>,
    /// `reply_to`
    pub reply_to: Option<Vec<u8>>,
    /// `message_id`
    pub message_id: Option<Vec<u8>>,
    /// `timestamp`, seconds since the epoch.
    pub timestamp: Option<u64>,
    /// `type`
    pub kind: Option<Vec<u8>>,
    /// `app_id`
    pub app_id: Option<Vec<u8>>,
}

impl RawProperties {
    /// A persistent JSON job of type `kind`, with nothing else set.
    pub fn job(kind: &[u8]) -> Self {
        RawProperties {
            content_type: Some(b"application/json".to_vec()),
            delivery_mode: Some(2),
            kind: Some(kind.to_vec()),
            ..RawProperties::default()
        }
    }

    /// The property flags and property list of a content header.
    pub fn encode(&self) -> Vec<u8> {
        fn short(bit: u16, value: &Option<Vec<u8>>, flags: &mut u16, list: &mut Vec<u8>) {
            if let Some(value) = value {
                *flags |= 1 << bit;
                put_short_string(list, value);
            }
        }
        let mut flags = 0_u16;
        let mut list = Vec::new();
        short(15, &self.content_type, &mut flags, &mut list);
        if let Some(headers) = &self.headers {
            flags |= 1 << 13;
            list.extend_from_slice(headers);
        }
        if let Some(mode) = self.delivery_mode {
            flags |= 1 << 12;
            list.push(mode);
        }
        short(10, &self.correlation_id, &mut flags, &mut list);
        short(9, &self.reply_to, &mut flags, &mut list);
        short(7, &self.message_id, &mut flags, &mut list);
        if let Some(timestamp) = self.timestamp {
            flags |= 1 << 6;
            list.extend_from_slice(&timestamp.to_be_bytes());
        }
        short(5, &self.kind, &mut flags, &mut list);
        short(3, &self.app_id, &mut flags, &mut list);
        let mut encoded = flags.to_be_bytes().to_vec();
        encoded.extend(list);
        encoded
    }
}

/// One connection with one channel in confirm mode.
#[derive(Debug)]
pub struct RawPublisher {
    stream: BufReader<TcpStream>,
    frame_max: usize,
    published: u64,
}

impl RawPublisher {
    /// Connects to the test broker (`AMQP_URL`'s host and credentials, or
    /// guest) in `vhost`, and opens the channel.
    pub async fn connect(vhost: &str) -> Result<Self> {
        let (user, password) = credentials();
        let socket = TcpStream::connect(crate::broker_address()).await?;
        socket.set_nodelay(true)?;
        let mut publisher = RawPublisher {
            stream: BufReader::new(socket),
            frame_max: 4096,
            published: 0,
        };
        publisher.stream.get_mut().write_all(b"AMQP\x00\x00\x09\x01").await?;
        publisher.expect(0, 10, 10).await?; // Connection.Start
        let mut start_ok = table(&[(b"connection_name", field::long_string(b"warren-tests raw publisher"))]);
        put_short_string(&mut start_ok, b"PLAIN");
        let response = [b"\0", user.as_bytes(), b"\0", password.as_bytes()].concat();
        start_ok.extend(&field::long_string(&response)[1..]);
        put_short_string(&mut start_ok, b"en_US");
        publisher.method(0, 10, 11, &start_ok).await?;
        let tune = publisher.expect(0, 10, 30).await?; // Connection.Tune
        let frame_max = u32::from_be_bytes(tune[2..6].try_into().expect("4 bytes"));
        publisher.frame_max = if frame_max == 0 { 131_072 } else { frame_max as usize };
        // The server's channel_max and frame_max; no heartbeats.
        let tune_ok = [&tune[0..6], &[0, 0]].concat();
        publisher.method(0, 10, 31, &tune_ok).await?;
        let mut open = Vec::new();
        put_short_string(&mut open, vhost.as_bytes());
        open.extend([0, 0]); // reserved short string, reserved bit
        publisher.method(0, 10, 40, &open).await?;
        publisher.expect(0, 10, 41).await?;
        publisher.method(CHANNEL, 20, 10, &[0]).await?;
        publisher.expect(CHANNEL, 20, 11).await?;
        publisher.method(CHANNEL, 85, 10, &[0]).await?; // Confirm.Select
        publisher.expect(CHANNEL, 85, 11).await?;
        Ok(publisher)
    }

    /// The frame size agreed with the broker.
    pub fn frame_max(&self) -> usize {
        self.frame_max
    }

    /// The most property bytes ([`RawProperties::encode`]) one content header frame holds.
    pub fn max_properties_len(&self) -> usize {
        self.frame_max - FRAME_OVERHEAD - CONTENT_HEADER_FIXED
    }

    /// Publishes `body` to `queue` (default exchange, mandatory) and waits
    /// for the broker's confirm.
    pub async fn publish(&mut self, queue: &str, properties: &RawProperties, body: &[u8]) -> Result<()> {
        let mut publish = vec![0, 0, 0]; // reserved short, exchange ""
        put_short_string(&mut publish, queue.as_bytes());
        publish.push(1); // mandatory
        self.method(CHANNEL, 60, 40, &publish).await?;
        let mut header = Vec::with_capacity(CONTENT_HEADER_FIXED);
        header.extend(60_u16.to_be_bytes());
        header.extend(0_u16.to_be_bytes());
        header.extend((body.len() as u64).to_be_bytes());
        header.extend(properties.encode());
        self.frame(FRAME_HEADER, CHANNEL, &header).await?;
        for chunk in body.chunks(self.frame_max - FRAME_OVERHEAD) {
            self.frame(FRAME_BODY, CHANNEL, chunk).await?;
        }
        self.published += 1;
        let mut returned = None;
        loop {
            let (kind, channel, payload) = self.read_frame().await?;
            if kind != FRAME_METHOD {
                continue; // a returned message's content, or a heartbeat
            }
            let tag = payload
                .get(4..12)
                .map(|t| u64::from_be_bytes(t.try_into().expect("8 bytes")));
            match method_id(&payload) {
                (60, 80) if tag >= Some(self.published) => return returned.map_or(Ok(()), Err),
                (60, 120) => return Err(Error::other(format!("the broker nacked message {}", self.published))),
                (60, 50) => returned = Some(Error::other(format!("returned: {}", reply_text(&payload)))),
                (20 | 10, 40 | 50) => return Err(closed(channel, &payload)),
                _ => {}
            }
        }
    }

    async fn method(&mut self, channel: u16, class: u16, method: u16, arguments: &[u8]) -> Result<()> {
        let payload = [&class.to_be_bytes()[..], &method.to_be_bytes(), arguments].concat();
        self.frame(FRAME_METHOD, channel, &payload).await
    }

    async fn frame(&mut self, kind: u8, channel: u16, payload: &[u8]) -> Result<()> {
        let mut frame = Vec::with_capacity(payload.len() + FRAME_OVERHEAD);
        frame.push(kind);
        frame.extend(channel.to_be_bytes());
        put_u32(&mut frame, payload.len());
        frame.extend_from_slice(payload);
        frame.push(FRAME_END);
        self.stream.get_mut().write_all(&frame).await
    }

    async fn read_frame(&mut self) -> Result<(u8, u16, Vec<u8>)> {
        let mut head = [0; 7];
        self.stream.read_exact(&mut head).await?;
        let size = u32::from_be_bytes(head[3..7].try_into().expect("4 bytes")) as usize;
        let mut payload = vec![0; size + 1];
        self.stream.read_exact(&mut payload).await?;
        if payload.pop() != Some(FRAME_END) {
            return Err(Error::new(ErrorKind::InvalidData, "frame without its end octet"));
        }
        Ok((head[0], u16::from_be_bytes([head[1], head[2]]), payload))
    }

    /// Reads up to method `class.method` on `channel` and returns its arguments.
    async fn expect(&mut self, channel: u16, class: u16, method: u16) -> Result<Vec<u8>> {
        loop {
            let (kind, on, payload) = self.read_frame().await?;
            match (kind, method_id(&payload)) {
                (FRAME_METHOD, id) if id == (class, method) && on == channel => return Ok(payload[4..].to_vec()),
                (FRAME_METHOD, (20 | 10, 40 | 50)) => return Err(closed(on, &payload)),
                _ => {}
            }
        }
    }
}

fn method_id(payload: &[u8]) -> (u16, u16) {
    match payload {
        [c1, c2, m1, m2, ..] => (u16::from_be_bytes([*c1, *c2]), u16::from_be_bytes([*m1, *m2])),
        _ => (0, 0),
    }
}

/// The reply text of a Close or Return method: after its reply code.
fn reply_text(payload: &[u8]) -> String {
    let text = payload.get(6..).unwrap_or_default();
    let len = text.first().copied().unwrap_or(0) as usize;
    String::from_utf8_lossy(text.get(1..1 + len).unwrap_or_default()).into_owned()
}

fn closed(channel: u16, payload: &[u8]) -> Error {
    let code = payload.get(4..6).map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
    Error::new(
        ErrorKind::ConnectionAborted,
        format!("the broker closed channel {channel}: {code} {}", reply_text(payload)),
    )
}

/// User and password of `AMQP_URL`, or guest's.
fn credentials() -> (String, String) {
    let url = crate::amqp_url();
    let authority = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or(authority);
    match authority.rsplit_once('@').and_then(|(user, _)| user.split_once(':')) {
        Some((user, password)) => (user.to_owned(), password.to_owned()),
        None => ("guest".to_owned(), "guest".to_owned()),
    }
}

fn put_u32(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("a field longer than 4 GiB");
    out.extend(len.to_be_bytes());
}

fn put_short_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(u8::try_from(bytes.len()).expect("a short string holds at most 255 bytes"));
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use lapin::types::parsing::parse_field_table;
    use lapin::types::{AMQPValue, DecimalValue, FieldTable};

    use super::*;

    #[test]
    fn every_field_type_reads_back_with_lapin() {
        let encoded = table(&[
            (b"t", field::boolean(true)),
            (b"b", field::i8(-2)),
            (b"B", field::u8(200)),
            (b"s", field::i16(-300)),
            (b"u", field::u16(60_000)),
            (b"I", field::i32(-70_000)),
            (b"i", field::u32(4_000_000_000)),
            (b"l", field::i64(-(1 << 40))),
            (b"L", field::u64(1 << 41)),
            (b"f", field::f32(1.5)),
            (b"d", field::f64(-2.25)),
            (b"D", field::decimal(2, 12_345)),
            (b"S", field::long_string(b"text")),
            (b"A", field::array(&[field::void(), field::u8(1)])),
            (b"T", field::timestamp(1_700_000_000)),
            (b"F", field::table(&[(b"k", field::boolean(false))])),
            (b"V", field::void()),
            (b"x", field::bytes(&[0, 255])),
        ]);
        let (rest, parsed) = parse_field_table(&encoded[..]).expect("lapin reads it");
        assert!(rest.is_empty());
        let value = |name: &str| parsed.inner().get(name).cloned().expect(name);
        assert_eq!(parsed.inner().len(), 18);
        assert_eq!(value("t"), AMQPValue::Boolean(true));
        assert_eq!(value("b"), AMQPValue::ShortShortInt(-2));
        assert_eq!(value("B"), AMQPValue::ShortShortUInt(200));
        assert_eq!(value("s"), AMQPValue::ShortInt(-300));
        assert_eq!(value("u"), AMQPValue::ShortUInt(60_000));
        assert_eq!(value("I"), AMQPValue::LongInt(-70_000));
        assert_eq!(value("i"), AMQPValue::LongUInt(4_000_000_000));
        assert_eq!(value("l"), AMQPValue::LongLongInt(-(1 << 40)));
        assert_eq!(value("L"), AMQPValue::LongLongInt(1 << 41));
        assert_eq!(value("f"), AMQPValue::Float(1.5));
        assert_eq!(value("d"), AMQPValue::Double(-2.25));
        assert_eq!(
            value("D"),
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12_345
            })
        );
        assert_eq!(value("S"), AMQPValue::LongString("text".into()));
        assert_eq!(value("T"), AMQPValue::Timestamp(1_700_000_000));
        let mut inner = FieldTable::default();
        inner.insert("k".into(), AMQPValue::Boolean(false));
        assert_eq!(value("F"), AMQPValue::FieldTable(inner));
        assert_eq!(value("V"), AMQPValue::Void);
        assert_eq!(value("x"), AMQPValue::ByteArray(vec![0, 255].into()));
        let AMQPValue::FieldArray(array) = value("A") else {
            panic!("not an array")
        };
        assert_eq!(array.as_slice(), [AMQPValue::Void, AMQPValue::ShortShortUInt(1)]);
    }

    #[test]
    fn nesting_is_as_deep_as_asked_and_sized_as_promised() {
        assert_eq!(
            nested(2, Nesting::Array, &field::void()),
            [b'A', 0, 0, 0, 6, b'A', 0, 0, 0, 1, b'V']
        );
        for nesting in [Nesting::Array, Nesting::Table] {
            let encoded = table(&[(b"deep", nested(40, nesting, &field::u8(7)))]);
            let (_, parsed) = parse_field_table(&encoded[..]).expect("lapin reads it");
            let mut value = parsed.inner().get("deep").cloned().expect("deep");
            let mut depth = 0;
            loop {
                value = match value {
                    AMQPValue::FieldArray(array) => array.as_slice()[0].clone(),
                    AMQPValue::FieldTable(table) => table.inner().get("n").cloned().expect("n"),
                    leaf => break assert_eq!(leaf, AMQPValue::ShortShortUInt(7)),
                };
                depth += 1;
            }
            assert_eq!(depth, 40, "{nesting:?}");

            let depth = deepest_within(131_000, nesting, 2);
            assert!(nested(depth, nesting, &field::u8(7)).len() <= 131_000);
            assert!(nested(depth + 1, nesting, &field::u8(7)).len() > 131_000);
        }
    }

    #[test]
    fn properties_read_back_with_lapin() {
        let properties = RawProperties {
            message_id: Some(b"id".to_vec()),
            correlation_id: Some(b"c".to_vec()),
            reply_to: Some(b"r".to_vec()),
            timestamp: Some(1_700_000_000),
            app_id: Some(b"app".to_vec()),
            headers: Some(table(&[(b"k", field::i32(5))])),
            ..RawProperties::job(b"record")
        };
        let encoded = properties.encode();
        let (rest, parsed) = lapin::protocol::basic::parse_properties(&encoded[..]).expect("lapin reads it");
        assert!(rest.is_empty());
        assert_eq!(parsed.kind().as_ref().map(|k| k.as_str()), Some("record"));
        assert_eq!(parsed.message_id().as_ref().map(|k| k.as_str()), Some("id"));
        assert_eq!(parsed.correlation_id().as_ref().map(|k| k.as_str()), Some("c"));
        assert_eq!(parsed.reply_to().as_ref().map(|k| k.as_str()), Some("r"));
        assert_eq!(parsed.app_id().as_ref().map(|k| k.as_str()), Some("app"));
        assert_eq!(*parsed.delivery_mode(), Some(2));
        assert_eq!(*parsed.timestamp(), Some(1_700_000_000));
        let headers = parsed.headers().as_ref().expect("headers");
        assert_eq!(headers.inner().get("k"), Some(&AMQPValue::LongInt(5)));
    }
}
