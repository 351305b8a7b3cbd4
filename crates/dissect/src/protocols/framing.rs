//! Length-prefixed message framing shared by the binary protocols whose
//! messages start with their length (Kafka, MongoDB): keeps the first
//! bytes of each message (its head, up to a cap) and skips the rest
//! without holding it, so a 100 MB produce request costs the cap, not
//! 100 MB. Used by the `kafka` and `mongodb` sessions.

use trawl_flow::Nanos;

/// A message whose head is complete: its first `head.len()` bytes (all of
/// it when it fits the cap), its full length and the times of its first
/// and last bytes.
#[derive(Debug)]
pub struct Framed<'a> {
    pub head: &'a [u8],
    pub total: usize,
    pub start: Nanos,
    pub end: Nanos,
}

/// One direction's framer.
#[derive(Debug, Default)]
pub struct Framer {
    head: Vec<u8>,
    /// Full length of the current message, once its prefix is read.
    total: Option<usize>,
    /// Bytes of the current message seen so far.
    seen: usize,
    start: Nanos,
}

/// The length prefix did not give a valid message length: the stream is
/// not (or no longer) this protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadLength;

impl Framer {
    /// Feeds `data`. `total_len` turns the 4-byte prefix into the whole
    /// message's length (prefix included) or None when invalid;
    /// `head_cap` bounds the bytes kept per message. `on_message` runs
    /// once per complete message.
    pub fn push(
        &mut self,
        ts: Nanos,
        mut data: &[u8],
        head_cap: usize,
        total_len: impl Fn([u8; 4]) -> Option<usize>,
        mut on_message: impl FnMut(Framed<'_>),
    ) -> Result<(), BadLength> {
        while !data.is_empty() {
            if self.seen == 0 {
                self.start = ts;
            }
            let total = match self.total {
                Some(t) => t,
                None => {
                    let need = 4 - self.head.len();
                    let (take, rest) = data.split_at(need.min(data.len()));
                    self.head.extend_from_slice(take);
                    self.seen += take.len();
                    data = rest;
                    let Some(prefix) = self.head.first_chunk::<4>() else {
                        return Ok(());
                    };
                    let t = total_len(*prefix).ok_or(BadLength)?;
                    self.total = Some(t);
                    t
                }
            };
            let keep = total.min(head_cap);
            let n = if self.head.len() < keep {
                let n = (keep - self.head.len()).min(data.len());
                self.head
                    .extend_from_slice(data.get(..n).unwrap_or_default());
                n
            } else {
                (total - self.seen).min(data.len())
            };
            self.seen += n;
            data = data.get(n..).unwrap_or_default();
            if self.seen >= total {
                on_message(Framed {
                    head: &self.head,
                    total,
                    start: self.start,
                    end: ts,
                });
                self.head.clear();
                self.total = None;
                self.seen = 0;
            }
        }
        Ok(())
    }

    /// Forgets a partial message (after a gap).
    pub fn reset(&mut self) {
        self.head.clear();
        self.total = None;
        self.seen = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be_total(p: [u8; 4]) -> Option<usize> {
        let n = usize::try_from(u32::from_be_bytes(p)).ok()?;
        (n <= 1000).then_some(n + 4)
    }

    #[test]
    fn frames_split_anywhere_and_caps_heads() {
        let mut stream = Vec::new();
        for body in [&b"hello"[..], b"", b"0123456789abcdef"] {
            stream.extend((body.len() as u32).to_be_bytes());
            stream.extend_from_slice(body);
        }
        for chunk in 1..=stream.len() {
            let mut f = Framer::default();
            let mut got = Vec::new();
            for (i, c) in stream.chunks(chunk).enumerate() {
                f.push(i as i64, c, 10, be_total, |m| {
                    got.push((m.head.to_vec(), m.total))
                })
                .unwrap();
            }
            assert_eq!(
                got,
                vec![
                    (b"\0\0\0\x05hello".to_vec(), 9),
                    (b"\0\0\0\0".to_vec(), 4),
                    (b"\0\0\0\x10012345".to_vec(), 20),
                ],
                "chunk {chunk}"
            );
        }
        let mut f = Framer::default();
        assert_eq!(f.push(0, &[0xff; 8], 10, be_total, |_| {}), Err(BadLength));
    }
}
