//! Bounded capture of a step's output (SPEC §9): the first and the last bytes are kept, the
//! middle is cut and the cut is marked, so a chatty step cannot fill the store.

use std::collections::VecDeque;

/// The captured output of one step, stdout and stderr interleaved in arrival order, bounded
/// to `limit` bytes: the first half of the limit is kept as the head, the last half as a
/// rolling tail, and everything in between is counted but dropped.
#[derive(Debug, Clone)]
pub struct BoundedOutput {
    head_cap: usize,
    tail_cap: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl BoundedOutput {
    /// An empty capture keeping at most `limit` bytes (`limit / 2` of head, the rest tail).
    pub fn new(limit: usize) -> Self {
        let head_cap = limit / 2;
        Self {
            head_cap,
            tail_cap: limit - head_cap,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    /// Appends the next bytes of output, whichever stream they came from.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total = self.total.saturating_add(bytes.len() as u64);
        let room = self.head_cap - self.head.len();
        if room > 0 {
            let take = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if bytes.is_empty() || self.tail_cap == 0 {
            return;
        }
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_cap..]);
        } else {
            let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(bytes);
        }
    }

    /// Every byte pushed so far, including the ones that were cut.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// The capture as text (invalid UTF-8 replaced by U+FFFD). When bytes were cut, the text
    /// is the head, a `[... N bytes cut ...]` line and the tail; a character split by the
    /// cut is dropped whole (and counted in `N`) rather than shown as replacement garbage.
    pub fn finish(&self) -> String {
        let kept = (self.head.len() + self.tail.len()) as u64;
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        if kept == self.total {
            let mut all = self.head.clone();
            all.extend_from_slice(&tail);
            return String::from_utf8_lossy(&all).into_owned();
        }
        let head_end = self.head.len() - incomplete_suffix_len(&self.head);
        let tail_start = continuation_prefix_len(&tail);
        let cut = self.total - kept + (self.head.len() - head_end) as u64 + tail_start as u64;
        format!(
            "{}\n[... {cut} bytes cut ...]\n{}",
            String::from_utf8_lossy(&self.head[..head_end]),
            String::from_utf8_lossy(&tail[tail_start..])
        )
    }
}

/// Length of a UTF-8 sequence that starts at the end of `bytes` but is not complete there.
fn incomplete_suffix_len(bytes: &[u8]) -> usize {
    // A sequence is at most 4 bytes, so its lead byte is among the last 3 if incomplete.
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if is_continuation(b) {
            continue;
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

/// Number of continuation bytes at the start of `bytes` (the rest of a character whose
/// beginning was cut), at most 3.
fn continuation_prefix_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take(3)
        .take_while(|b| is_continuation(**b))
        .count()
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_suffix() {
        assert_eq!(incomplete_suffix_len(b"abc"), 0);
        assert_eq!(incomplete_suffix_len("é".as_bytes()), 0);
        assert_eq!(incomplete_suffix_len(&"é".as_bytes()[..1]), 1);
        assert_eq!(incomplete_suffix_len(&"€".as_bytes()[..2]), 2);
        assert_eq!(incomplete_suffix_len(&"😀".as_bytes()[..3]), 3);
        assert_eq!(incomplete_suffix_len("a😀".as_bytes()), 0);
    }

    #[test]
    fn continuation_prefix() {
        assert_eq!(continuation_prefix_len(b"abc"), 0);
        assert_eq!(continuation_prefix_len(&"😀".as_bytes()[1..]), 3);
        assert_eq!(continuation_prefix_len(&"€x".as_bytes()[2..]), 1);
    }
}
