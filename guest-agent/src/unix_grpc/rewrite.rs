//! The client-to-server half of an HTTP/2 connection, frame by frame, with every header block
//! re-encoded so that a `:authority` that is not a valid authority (gRPC clients send the
//! socket's path, percent-encoded, when they dial a Unix socket) becomes `localhost`.
//!
//! HPACK is stateful: once one header block is rewritten, the server's dynamic table would no
//! longer match the client's, so every block is decoded with the client's table and sent again
//! as literals that never touch the server's table. Frames other than HEADERS and CONTINUATION
//! pass through unchanged.

use thiserror::Error;

/// The client connection preface, passed through as it is.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
/// Bigger frames are refused: the server accepts 16 KiB unless it raised its own limit, which
/// the project's servers do not.
const MAX_FRAME_LEN: usize = 1 << 20;
/// A header block spread over CONTINUATION frames is bounded as well.
const MAX_BLOCK_LEN: usize = 1 << 20;
/// What every HTTP/2 peer accepts as a frame payload (SETTINGS_MAX_FRAME_SIZE's minimum).
const OUT_FRAME_LEN: usize = 16_384;
/// SETTINGS_HEADER_TABLE_SIZE's default, which the project's servers keep.
const HEADER_TABLE_SIZE: usize = 4096;

const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// What replaces an authority that does not parse as one.
const PLACEHOLDER_AUTHORITY: &[u8] = b"localhost";

#[derive(Debug, Error, PartialEq)]
pub enum RewriteError {
    #[error("HTTP/2 frame of {0} bytes is larger than this server accepts")]
    FrameTooLarge(usize),
    #[error("header block of more than {MAX_BLOCK_LEN} bytes")]
    BlockTooLarge,
    #[error("malformed HEADERS frame (padding or priority longer than the frame)")]
    MalformedHeaders,
    #[error("frame of type {0:#x} inside a header block of stream {1}")]
    InterruptedBlock(u8, u32),
    #[error("CONTINUATION frame without a header block to continue")]
    StrayContinuation,
    #[error("a client may not send PUSH_PROMISE")]
    PushPromise,
    #[error("header block does not decode: {0}")]
    Hpack(String),
}

/// A header block whose CONTINUATION frames are still to come.
struct PendingBlock {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

pub struct Rewriter {
    preface_left: usize,
    decoder: loona_hpack::Decoder<'static>,
    pending: Option<PendingBlock>,
}

impl Default for Rewriter {
    fn default() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        Rewriter { preface_left: PREFACE_LEN, decoder, pending: None }
    }
}

impl Rewriter {
    /// Takes the complete frames at the front of `input` out of it and appends what the server
    /// is to receive instead to `out`; an incomplete frame stays in `input` for the next call.
    pub fn feed(&mut self, input: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let mut at = 0;
        if self.preface_left > 0 {
            let n = self.preface_left.min(input.len());
            out.extend_from_slice(&input[..n]);
            self.preface_left -= n;
            at = n;
        }
        while self.preface_left == 0 && input.len() - at >= FRAME_HEADER_LEN {
            let header = &input[at..at + FRAME_HEADER_LEN];
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            if len > MAX_FRAME_LEN {
                return Err(RewriteError::FrameTooLarge(len));
            }
            if input.len() - at < FRAME_HEADER_LEN + len {
                break;
            }
            let (kind, flags) = (header[3], header[4]);
            let stream =
                u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & !(1 << 31);
            let payload = &input[at + FRAME_HEADER_LEN..at + FRAME_HEADER_LEN + len];
            match kind {
                HEADERS => self.headers(stream, flags, payload, out)?,
                CONTINUATION => self.continuation(stream, flags, payload, out)?,
                PUSH_PROMISE => return Err(RewriteError::PushPromise),
                _ => {
                    if let Some(p) = &self.pending {
                        return Err(RewriteError::InterruptedBlock(kind, p.stream));
                    }
                    out.extend_from_slice(&input[at..at + FRAME_HEADER_LEN + len]);
                }
            }
            at += FRAME_HEADER_LEN + len;
        }
        input.drain(..at);
        Ok(())
    }

    fn headers(
        &mut self,
        stream: u32,
        flags: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        if let Some(p) = &self.pending {
            return Err(RewriteError::InterruptedBlock(HEADERS, p.stream));
        }
        let mut body = payload;
        let mut padding = 0;
        if flags & PADDED != 0 {
            let (&pad, rest) = body.split_first().ok_or(RewriteError::MalformedHeaders)?;
            padding = pad as usize;
            body = rest;
        }
        let mut priority = None;
        if flags & PRIORITY != 0 {
            let (p, rest) = body.split_first_chunk::<5>().ok_or(RewriteError::MalformedHeaders)?;
            priority = Some(*p);
            body = rest;
        }
        let fragment = body
            .get(..body.len().checked_sub(padding).ok_or(RewriteError::MalformedHeaders)?)
            .ok_or(RewriteError::MalformedHeaders)?;
        let block = PendingBlock {
            stream,
            end_stream: flags & END_STREAM != 0,
            priority,
            fragment: fragment.to_vec(),
        };
        self.finish_or_wait(block, flags, out)
    }

    fn continuation(
        &mut self,
        stream: u32,
        flags: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        let mut block = match self.pending.take() {
            Some(b) if b.stream == stream => b,
            _ => return Err(RewriteError::StrayContinuation),
        };
        if block.fragment.len() + payload.len() > MAX_BLOCK_LEN {
            return Err(RewriteError::BlockTooLarge);
        }
        block.fragment.extend_from_slice(payload);
        self.finish_or_wait(block, flags, out)
    }

    /// Emits `block` when its last frame (END_HEADERS) has come, else keeps it for the next.
    fn finish_or_wait(
        &mut self,
        block: PendingBlock,
        flags: u8,
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        if flags & END_HEADERS != 0 {
            self.emit(block, out)
        } else {
            self.pending = Some(block);
            Ok(())
        }
    }

    /// Decodes `block` with the client's table and writes it again as HEADERS (+ CONTINUATION)
    /// frames of literals.
    fn emit(&mut self, block: PendingBlock, out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let mut encoded = Vec::with_capacity(block.fragment.len() + 64);
        self.decoder
            .decode_with_cb(&block.fragment, |name, value| {
                let value = if &*name == b":authority" && !is_authority(&value) {
                    PLACEHOLDER_AUTHORITY
                } else {
                    &value
                };
                literal(&name, value, &mut encoded);
            })
            .map_err(|e| RewriteError::Hpack(format!("{e:?}")))?;

        let mut first = Vec::with_capacity(5 + OUT_FRAME_LEN);
        let mut flags = if block.end_stream { END_STREAM } else { 0 };
        if let Some(p) = block.priority {
            first.extend_from_slice(&p);
            flags |= PRIORITY;
        }
        let take = encoded.len().min(OUT_FRAME_LEN - first.len());
        first.extend_from_slice(&encoded[..take]);
        let mut rest = encoded[take..].chunks(OUT_FRAME_LEN).peekable();
        if rest.peek().is_none() {
            flags |= END_HEADERS;
        }
        frame(HEADERS, flags, block.stream, &first, out);
        while let Some(chunk) = rest.next() {
            let flags = if rest.peek().is_none() { END_HEADERS } else { 0 };
            frame(CONTINUATION, flags, block.stream, chunk, out);
        }
        Ok(())
    }
}

fn is_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// A "literal header field never indexed" with a literal name: it leaves the server's dynamic
/// table as it is.
fn literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x10);
    for s in [name, value] {
        // Writing into a Vec cannot fail.
        let _ = loona_hpack::encoder::encode_integer_into(s.len(), 7, 0, out);
        out.extend_from_slice(s);
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn encode(headers: &[(&[u8], &[u8])]) -> Vec<u8> {
        loona_hpack::Encoder::new().encode(headers.iter().copied())
    }

    type Frame = (u8, u8, u32, usize, Vec<(Vec<u8>, Vec<u8>)>);

    fn decode_all(mut bytes: &[u8]) -> Vec<Frame> {
        bytes = &bytes[PREFACE_LEN..];
        let mut decoder = loona_hpack::Decoder::new();
        let mut frames = Vec::new();
        let mut block = Vec::new();
        while !bytes.is_empty() {
            let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
            let (kind, flags) = (bytes[3], bytes[4]);
            let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
            let mut payload = &bytes[9..9 + len];
            if kind == HEADERS && flags & PRIORITY != 0 {
                payload = &payload[5..];
            }
            let mut headers = Vec::new();
            if kind == HEADERS || kind == CONTINUATION {
                block.extend_from_slice(payload);
                if flags & END_HEADERS != 0 {
                    headers = decoder.decode(&block).unwrap();
                    block.clear();
                }
            }
            frames.push((kind, flags, stream, len, headers));
            bytes = &bytes[9 + len..];
        }
        frames
    }

    fn request(authority: &[u8]) -> Vec<(&'static [u8], Vec<u8>)> {
        vec![
            (b":method", b"POST".to_vec()),
            (b":scheme", b"http".to_vec()),
            (b":path", b"/runtime.v1.RuntimeService/Version".to_vec()),
            (b":authority", authority.to_vec()),
            (b"content-type", b"application/grpc".to_vec()),
        ]
    }

    #[test]
    fn a_socket_path_authority_becomes_localhost_and_later_blocks_stay_consistent() {
        let mut client = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        let path = b"%2Frun%2Fringfence%2Fcri.sock";
        for (stream, extra) in [(1u32, b"a".as_slice()), (3, b"b")] {
            let mut headers = request(path);
            headers.push((b"x-call", extra.to_vec()));
            let block = client.encode(headers.iter().map(|(n, v)| (*n, v.as_slice())));
            frame(HEADERS, END_HEADERS, stream, &block, &mut input);
            frame(0x0, END_STREAM, stream, b"\0\0\0\0\0", &mut input);
        }
        let mut out = Vec::new();
        // Byte by byte: frames split anywhere must come out the same.
        let mut r = Rewriter::default();
        let mut pending = Vec::new();
        for b in input {
            pending.push(b);
            r.feed(&mut pending, &mut out).unwrap();
        }
        assert!(pending.is_empty());
        let frames = decode_all(&out);
        assert_eq!(frames.len(), 4);
        for (i, extra) in [(0, b"a"), (2, b"b")] {
            let headers = &frames[i].4;
            let get = |n: &[u8]| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            assert_eq!(get(b":authority").unwrap(), b"localhost");
            assert_eq!(get(b":path").unwrap(), b"/runtime.v1.RuntimeService/Version");
            assert_eq!(get(b"x-call").unwrap(), extra);
        }
        assert_eq!(frames[1].0, 0x0);
        assert_eq!(frames[3].1, END_STREAM);
    }

    #[test]
    fn valid_authorities_padding_priority_and_continuations_are_kept() {
        let headers = request(b"localhost:50051");
        let block = encode(&headers.iter().map(|(n, v)| (*n, v.as_slice())).collect::<Vec<_>>());
        let (a, b) = block.split_at(block.len() / 2);
        let mut payload = vec![3u8];
        payload.extend_from_slice(&[0, 0, 0, 0, 16]);
        payload.extend_from_slice(a);
        payload.extend_from_slice(&[0; 3]);
        let mut input = PREFACE.to_vec();
        frame(HEADERS, PADDED | PRIORITY | END_STREAM, 5, &payload, &mut input);
        frame(CONTINUATION, END_HEADERS, 5, b, &mut input);
        let mut out = Vec::new();
        Rewriter::default().feed(&mut input, &mut out).unwrap();
        let frames = decode_all(&out);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].1, END_STREAM | PRIORITY | END_HEADERS);
        let authority = frames[0].4.iter().find(|(k, _)| k == b":authority").unwrap();
        assert_eq!(authority.1, b"localhost:50051");
    }

    #[test]
    fn a_large_block_is_split_into_continuations() {
        let big = vec![b'x'; 40_000];
        let mut headers = request(b"/tmp/a.sock");
        headers.push((b"x-big", big.clone()));
        let block = encode(&headers.iter().map(|(n, v)| (*n, v.as_slice())).collect::<Vec<_>>());
        let mut input = PREFACE.to_vec();
        let mut chunks = block.chunks(16_384).peekable();
        let mut kind = HEADERS;
        while let Some(c) = chunks.next() {
            frame(kind, if chunks.peek().is_none() { END_HEADERS } else { 0 }, 7, c, &mut input);
            kind = CONTINUATION;
        }
        let mut out = Vec::new();
        Rewriter::default().feed(&mut input, &mut out).unwrap();
        let frames = decode_all(&out);
        assert!(frames.len() >= 3);
        assert!(frames.iter().all(|f| f.3 <= OUT_FRAME_LEN));
        let last = frames.last().unwrap();
        assert!(last.4.iter().any(|(k, v)| k == b"x-big" && *v == big));
        assert!(last.4.iter().any(|(k, v)| k == b":authority" && v == b"localhost"));
    }

    #[test]
    fn hostile_input_is_refused_without_panicking() {
        let cases: Vec<(Vec<u8>, RewriteError)> = vec![
            (
                {
                    let mut f = Vec::new();
                    frame(HEADERS, PADDED | END_HEADERS, 1, &[200, 1, 2], &mut f);
                    f
                },
                RewriteError::MalformedHeaders,
            ),
            (
                {
                    let mut f = Vec::new();
                    frame(CONTINUATION, END_HEADERS, 1, &[1], &mut f);
                    f
                },
                RewriteError::StrayContinuation,
            ),
            (
                {
                    let mut f = Vec::new();
                    frame(HEADERS, 0, 1, &[0x82], &mut f);
                    frame(0x0, 0, 1, &[1], &mut f);
                    f
                },
                RewriteError::InterruptedBlock(0, 1),
            ),
            (vec![0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1], RewriteError::FrameTooLarge(0xff_ffff)),
            (
                {
                    let mut f = Vec::new();
                    frame(PUSH_PROMISE, END_HEADERS, 1, &[0, 0, 0, 2], &mut f);
                    f
                },
                RewriteError::PushPromise,
            ),
        ];
        for (frames, want) in cases {
            let mut input = PREFACE.to_vec();
            input.extend_from_slice(&frames);
            assert_eq!(Rewriter::default().feed(&mut input, &mut Vec::new()), Err(want));
        }
        // Index 70 is in neither table; a table-size update above the server's setting.
        for block in [[0xbe_u8].as_slice(), &[0x3f, 0xe1, 0xff, 0x03]] {
            let mut input = PREFACE.to_vec();
            frame(HEADERS, END_HEADERS, 1, block, &mut input);
            let r = Rewriter::default().feed(&mut input, &mut Vec::new());
            assert!(matches!(r, Err(RewriteError::Hpack(_))), "{r:?}");
        }
        // Pseudo-random frames never panic.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let mut input = PREFACE.to_vec();
            for _ in 0..(seed % 64) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                input.push(if seed.is_multiple_of(3) { 0 } else { (seed >> 8) as u8 });
            }
            let _ = Rewriter::default().feed(&mut input, &mut Vec::new());
        }
    }
}
