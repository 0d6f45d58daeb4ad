//! The part of SPDY/3.1 that Kubernetes' port forwarding speaks (kubectl's SPDY client):
//! frames, and name/value header blocks compressed with zlib and the SPDY/3 dictionary. Frames
//! from the peer are untrusted: lengths are bounded and malformed input is an error.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Largest frame accepted from the peer.
pub const MAX_FRAME: usize = 1 << 20;
/// Largest decompressed header block accepted.
const MAX_HEADERS: usize = 64 << 10;

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const SETTINGS: u16 = 4;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const HEADERS: u16 = 8;
pub const WINDOW_UPDATE: u16 = 9;

pub const FLAG_FIN: u8 = 0x01;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpdyError {
    #[error("malformed SPDY frame: {0}")]
    Malformed(&'static str),
    #[error("SPDY header compression: {0}")]
    Compression(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Control { kind: u16, flags: u8, payload: Vec<u8> },
    Data { stream: u32, flags: u8, data: Vec<u8> },
}

/// The length of the frame whose 8-byte header is `head`, checked against [`MAX_FRAME`].
pub fn payload_len(head: &[u8; 8]) -> Result<usize, SpdyError> {
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    if len > MAX_FRAME {
        return Err(SpdyError::Malformed("frame too large"));
    }
    Ok(len)
}

/// Decodes a frame from its header and payload.
pub fn decode(head: &[u8; 8], payload: Vec<u8>) -> Result<Frame, SpdyError> {
    let flags = head[4];
    if head[0] & 0x80 != 0 {
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != 3 {
            return Err(SpdyError::Malformed("not SPDY version 3"));
        }
        Ok(Frame::Control { kind: u16::from_be_bytes([head[2], head[3]]), flags, payload })
    } else {
        let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
        Ok(Frame::Data { stream, flags, data: payload })
    }
}

pub fn encode(frame: &Frame) -> Vec<u8> {
    let (mut out, body) = match frame {
        Frame::Control { kind, flags, payload } => {
            let mut h = vec![0x80, 3];
            h.extend_from_slice(&kind.to_be_bytes());
            h.push(*flags);
            (h, payload)
        }
        Frame::Data { stream, flags, data } => {
            let mut h = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
            h.push(*flags);
            (h, data)
        }
    };
    let len = (body.len() as u32).to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(body);
    out
}

/// The stream a SYN_STREAM, SYN_REPLY, RST_STREAM or HEADERS payload is about.
pub fn stream_of(payload: &[u8]) -> Result<u32, SpdyError> {
    let b: [u8; 4] =
        payload.get(..4).and_then(|b| b.try_into().ok()).ok_or(SpdyError::Malformed("short"))?;
    Ok(u32::from_be_bytes(b) & 0x7fff_ffff)
}

/// The SPDY/3 header dictionary: length-prefixed header names and values, then a run of
/// common text (draft-mbelshe-httpbis-spdy-00, section 2.6.10.1).
fn dictionary() -> Vec<u8> {
    const WORDS: [&str; 65] = [
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = "100101201202205206300302303304305306307402405406407408409410411412413\
        414415416417502504505203 Non-Authoritative Information204 No Content301 Moved \
        Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server \
        Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct \
        Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,\
        image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,\
        publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
    let mut d = Vec::with_capacity(1423);
    for w in WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
}

/// One direction's header compression state (a single zlib stream across the session).
pub struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
    dictionary: Vec<u8>,
}

impl Default for HeaderCodec {
    fn default() -> Self {
        HeaderCodec {
            inflate: Decompress::new(true),
            deflate: Compress::new(Compression::default(), true),
            dictionary: dictionary(),
        }
    }
}

fn be32(b: &[u8], at: &mut usize) -> Result<u32, SpdyError> {
    let v = b.get(*at..*at + 4).ok_or(SpdyError::Malformed("truncated header block"))?;
    *at += 4;
    Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

impl HeaderCodec {
    /// Decompresses and parses a name/value header block (names are lower case in SPDY/3).
    pub fn read(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
        let mut out = Vec::with_capacity(256);
        let mut input = block;
        loop {
            if out.len() >= MAX_HEADERS {
                return Err(SpdyError::Malformed("header block too large"));
            }
            out.reserve(4096.min(MAX_HEADERS - out.len()));
            let before = self.inflate.total_in();
            match self.inflate.decompress_vec(input, &mut out, FlushDecompress::Sync) {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&self.dictionary)
                        .map_err(|e| SpdyError::Compression(e.to_string()))?;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            let used = (self.inflate.total_in() - before) as usize;
            input = &input[used..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        let mut at = 0;
        let n = be32(&out, &mut at)?;
        let mut pairs = Vec::new();
        for _ in 0..n {
            let len = be32(&out, &mut at)? as usize;
            let name = out.get(at..at + len).ok_or(SpdyError::Malformed("truncated name"))?;
            at += len;
            let len = be32(&out, &mut at)? as usize;
            let value = out.get(at..at + len).ok_or(SpdyError::Malformed("truncated value"))?;
            at += len;
            pairs.push((
                String::from_utf8_lossy(name).to_lowercase(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        }
        Ok(pairs)
    }

    /// Encodes and compresses a header block.
    pub fn write(&mut self, pairs: &[(&str, &str)]) -> Result<Vec<u8>, SpdyError> {
        let mut raw = (pairs.len() as u32).to_be_bytes().to_vec();
        for (n, v) in pairs {
            for s in [n, v] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            out.reserve(256);
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            input = &input[(self.deflate.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if status == Status::StreamEnd {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_specs() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert!(d.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(d.ends_with(b"utf-,*,enq=0."));
    }

    #[test]
    fn header_blocks_round_trip_through_one_zlib_stream_each_way() {
        let (mut a, mut b) = (HeaderCodec::default(), HeaderCodec::default());
        for i in 0..3 {
            let port = format!("{}", 8000 + i);
            let block = a.write(&[("streamtype", "data"), ("port", &port)]).unwrap();
            let pairs = b.read(&block).unwrap();
            assert_eq!(pairs, vec![("streamtype".into(), "data".into()), ("port".into(), port)]);
        }
    }

    #[test]
    fn hostile_frames_are_errors() {
        let mut head = [0x80, 3, 0, 1, 0, 0xff, 0xff, 0xff];
        assert!(payload_len(&head).is_err());
        head[1] = 2;
        assert!(decode(&head, Vec::new()).is_err());
        assert!(stream_of(&[0, 0]).is_err());
        let mut c = HeaderCodec::default();
        assert!(c.read(b"not zlib at all").is_err());
        // A valid stream claiming more pairs than it holds.
        let mut w = HeaderCodec::default();
        let mut block = w.write(&[]).unwrap();
        block.truncate(block.len());
        let mut lying = HeaderCodec::default();
        let raw = [0u8, 0, 0, 9];
        let mut z = Compress::new(Compression::default(), true);
        let mut out = Vec::with_capacity(64);
        z.compress_vec(&raw, &mut out, FlushCompress::Sync).unwrap();
        assert!(lying.read(&out).is_err());
        let f = Frame::Data { stream: 5, flags: FLAG_FIN, data: b"hi".to_vec() };
        let bytes = encode(&f);
        let h: [u8; 8] = bytes[..8].try_into().unwrap();
        assert_eq!(decode(&h, bytes[8..].to_vec()).unwrap(), f);
    }
}
