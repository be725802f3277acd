//! The bytes of an unfinished request, in one pointer: most connections (every caught-up stream) hold
//! none, so the buffer costs 8 bytes in the connection when empty (a `Vec` takes 24) and its memory is
//! given back as soon as it empties.

/// Bytes read but not yet parsed: an unfinished head, a body on its way, pipelined requests.
// A boxed `Vec` on purpose: one pointer in every connection instead of three words.
#[allow(clippy::box_collection)]
#[derive(Debug, Default)]
pub struct InBuf(Option<Box<Vec<u8>>>);

impl InBuf {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |bytes| bytes.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffered bytes.
    pub fn bytes(&self) -> &[u8] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    pub fn extend_from_slice(&mut self, more: &[u8]) {
        if !more.is_empty() {
            self.0.get_or_insert_with(Box::default).extend_from_slice(more);
        }
    }

    /// Takes the first `n` bytes off the front; the buffer is freed once empty.
    pub fn take_front(&mut self, n: usize) -> Vec<u8> {
        let Some(bytes) = self.0.as_mut() else { return Vec::new() };
        let front = bytes.drain(..n.min(bytes.len())).collect();
        if bytes.is_empty() {
            self.0 = None;
        }
        front
    }

    /// Drops the first `n` bytes (a request head already parsed) without copying them anywhere; the
    /// buffer is freed once empty.
    pub fn consume(&mut self, n: usize) {
        let Some(bytes) = self.0.as_mut() else { return };
        bytes.drain(..n.min(bytes.len()));
        if bytes.is_empty() {
            self.0 = None;
        }
    }

    /// Drops everything, and the memory with it.
    pub fn clear(&mut self) {
        self.0 = None;
    }

    /// Whether memory is held (for tests: an idle connection holds none).
    pub fn is_allocated(&self) -> bool {
        self.0.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_holds_no_memory_and_takes_one_pointer() {
        let mut buf = InBuf::default();
        assert!(!buf.is_allocated());
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        buf.extend_from_slice(b"\r\nrest");
        assert_eq!(buf.take_front(18), b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(buf.bytes(), b"rest");
        assert_eq!(buf.take_front(10), b"rest");
        assert!(!buf.is_allocated(), "freed once empty");
        assert_eq!(std::mem::size_of::<InBuf>(), 8);
    }

    #[test]
    fn consuming_drops_the_front_and_frees_the_buffer_once_empty() {
        let mut buf = InBuf::default();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\nGET");
        buf.consume(18);
        assert_eq!(buf.bytes(), b"GET");
        buf.consume(3);
        assert!(!buf.is_allocated());
    }
}
