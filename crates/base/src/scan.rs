//! Fast structural scanning of JSON text: where a value ends, and what the keys of an
//! object are, without building anything.
//!
//! A pod watch event is mostly bytes the auditor does not read (`managedFields`, and the
//! `spec` of a pod it already knows). serde_json skips them at its general parsing speed;
//! the matcher here finds the end of an object or array several times faster by
//! classifying 64 bytes at a time (quotes, backslashes, brackets), computing which bytes
//! are inside strings with a prefix XOR, and counting brackets by popcount, looking at
//! single brackets only in the block where the value may close (the technique of
//! simdjson's stage 1). The reader then overwrites such a value with a string of blanks of
//! the same length, which serde_json skips at memory speed.
//!
//! Everything here answers `None` rather than guess: on malformed or truncated text the
//! caller leaves the document as it is, and the parser reports the error.

/// End (exclusive) of the JSON string whose opening quote is at `start`.
pub fn string_end(buf: &[u8], start: usize) -> Option<usize> {
    debug_assert_eq!(buf.get(start), Some(&b'"'));
    let mut i = start + 1;
    loop {
        let j = memchr::memchr2(b'"', b'\\', buf.get(i..)?)?;
        i += j;
        if buf[i] == b'\\' {
            i += 2;
        } else {
            return Some(i + 1);
        }
    }
}

/// End (exclusive) of the JSON value starting at `start` (no leading whitespace).
pub fn value_end(buf: &[u8], start: usize) -> Option<usize> {
    match *buf.get(start)? {
        b'"' => string_end(buf, start),
        b'{' | b'[' => container_end(buf, start),
        _ => {
            let rest = &buf[start..];
            let n = rest
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace())?;
            (n > 0).then_some(start + n)
        }
    }
}

/// End (exclusive) of the object or array whose opening bracket is at `start`.
pub fn container_end(buf: &[u8], start: usize) -> Option<usize> {
    debug_assert!(matches!(buf.get(start), Some(b'{' | b'[')));
    #[cfg(target_arch = "x86_64")]
    {
        container_end_blocks(buf, start)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        container_end_scalar(buf, start)
    }
}

/// Byte by byte; the reference for the block matcher.
pub fn container_end_scalar(buf: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < buf.len() {
        match buf[i] {
            b'"' => {
                i = string_end(buf, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

const EVEN_BITS: u64 = 0x5555_5555_5555_5555;

/// Bits of the characters escaped by a backslash (an odd run of backslashes before them),
/// carrying a run across blocks in `carry`.
#[inline(always)]
fn escaped_bits(backslash: u64, carry: &mut u64) -> u64 {
    let backslash = backslash & !*carry;
    let follows_escape = (backslash << 1) | *carry;
    let odd_starts = backslash & !EVEN_BITS & !follows_escape;
    let (sequences_starting_on_even, overflow) = odd_starts.overflowing_add(backslash);
    *carry = overflow as u64;
    let invert = sequences_starting_on_even << 1;
    (EVEN_BITS ^ invert) & follows_escape
}

/// XOR of all lower bits into each bit: 1 between an opening and a closing quote.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Masks of quotes, backslashes, opening and closing brackets in 64 bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify(block: &[u8; 64]) -> [u64; 4] {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut out = [0u64; 4];
    // SAFETY: SSE2 is part of the x86_64 baseline; each load reads 16 bytes inside `block`.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let (open_sq, open_cu) = (_mm_set1_epi8(b'[' as i8), _mm_set1_epi8(b'{' as i8));
        let (close_sq, close_cu) = (_mm_set1_epi8(b']' as i8), _mm_set1_epi8(b'}' as i8));
        for k in 0..4 {
            let v = _mm_loadu_si128(block.as_ptr().add(k * 16).cast::<__m128i>());
            let bits = |m| (_mm_movemask_epi8(m) as u16 as u64) << (k * 16);
            out[0] |= bits(_mm_cmpeq_epi8(v, quote));
            out[1] |= bits(_mm_cmpeq_epi8(v, backslash));
            out[2] |= bits(_mm_or_si128(
                _mm_cmpeq_epi8(v, open_sq),
                _mm_cmpeq_epi8(v, open_cu),
            ));
            out[3] |= bits(_mm_or_si128(
                _mm_cmpeq_epi8(v, close_sq),
                _mm_cmpeq_epi8(v, close_cu),
            ));
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
fn container_end_blocks(buf: &[u8], start: usize) -> Option<usize> {
    let mut depth: i64 = 0;
    let mut escape_carry = 0u64;
    let mut in_string_carry = 0u64;
    let mut pos = start;
    let mut tail = [b' '; 64];
    while pos < buf.len() {
        let block: &[u8; 64] = match buf.get(pos..pos + 64) {
            Some(b) => b.try_into().ok()?,
            // The last, partial block (only one), padded with blanks.
            None => {
                tail[..buf.len() - pos].copy_from_slice(&buf[pos..]);
                &tail
            }
        };
        let [quotes, backslashes, opens, closes] = classify(block);
        let quotes = quotes & !escaped_bits(backslashes, &mut escape_carry);
        let in_string = prefix_xor(quotes) ^ in_string_carry;
        in_string_carry = ((in_string as i64) >> 63) as u64;
        let (opens, closes) = (opens & !in_string, closes & !in_string);
        let n_closes = i64::from(closes.count_ones());
        if depth - n_closes > 0 {
            // The value cannot close inside this block.
            depth += i64::from(opens.count_ones()) - n_closes;
        } else {
            let mut structural = opens | closes;
            while structural != 0 {
                let bit = structural.trailing_zeros();
                if opens >> bit & 1 == 1 {
                    depth += 1;
                } else {
                    depth -= 1;
                    if depth == 0 {
                        return Some(pos + bit as usize + 1);
                    }
                    if depth < 0 {
                        return None;
                    }
                }
                structural &= structural - 1;
            }
        }
        pos += 64;
    }
    None
}

/// Walks the members of one JSON object: the caller reads a key, then either skips its
/// value ([`ObjectCursor::resume_at`] its end) or descends into it and stops walking.
pub struct ObjectCursor {
    pos: usize,
    first: bool,
    closed_at: Option<usize>,
}

impl ObjectCursor {
    /// A cursor on the object whose `{` is at `start`.
    pub fn new(buf: &[u8], start: usize) -> Option<Self> {
        (buf.get(start) == Some(&b'{')).then_some(ObjectCursor {
            pos: start + 1,
            first: true,
            closed_at: None,
        })
    }

    /// The next member's key (as written, without quotes) and where its value starts;
    /// `None` at the end of the object or at anything it cannot read for certain.
    pub fn next_key<'a>(&mut self, buf: &'a [u8]) -> Option<(&'a [u8], usize)> {
        let mut i = skip_ws(buf, self.pos)?;
        if buf[i] == b'}' {
            self.closed_at = Some(i + 1);
            return None;
        }
        if !self.first {
            if buf[i] != b',' {
                return None;
            }
            i = skip_ws(buf, i + 1)?;
        }
        self.first = false;
        if buf[i] != b'"' {
            return None;
        }
        let key_end = string_end(buf, i)?;
        let colon = skip_ws(buf, key_end)?;
        if buf[colon] != b':' {
            return None;
        }
        let value_start = skip_ws(buf, colon + 1)?;
        // Until the caller resumes, the cursor is at the end of the object (stops).
        self.pos = usize::MAX;
        Some((&buf[i + 1..key_end - 1], value_start))
    }

    /// The end of the object, once [`ObjectCursor::next_key`] has walked to its `}`.
    pub fn closed_at(&self) -> Option<usize> {
        self.closed_at
    }

    /// Go on after a value that ends at `end`.
    pub fn resume_at(&mut self, end: usize) {
        self.pos = end;
    }
}

pub fn skip_ws(buf: &[u8], mut i: usize) -> Option<usize> {
    while buf.get(i)?.is_ascii_whitespace() {
        i += 1;
    }
    Some(i)
}

/// Overwrite the object or array at `range` with a string of blanks of the same length.
pub fn blank(buf: &mut [u8], range: std::ops::Range<usize>) {
    let Some(span) = buf.get_mut(range) else {
        return;
    };
    if span.len() < 2 || !matches!(span[0], b'{' | b'[') {
        return;
    }
    let last = span.len() - 1;
    span.fill(b' ');
    span[0] = b'"';
    span[last] = b'"';
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IgnoredAny;

    fn serde_end(bytes: &[u8]) -> Option<usize> {
        let mut it = serde_json::Deserializer::from_slice(bytes).into_iter::<IgnoredAny>();
        match it.next() {
            Some(Ok(_)) => Some(it.byte_offset()),
            _ => None,
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i32>().prop_map(serde_json::Value::from),
            // Strings heavy in what the matcher must get right.
            "[\"\\\\\\[\\]{}a é\u{1F600}\n\t]{0,80}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-z\"\\\\{}]{0,6}", inner, 0..8)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn container_end_agrees_with_serde(v in arb_json(), pretty in any::<bool>(), pad in 0usize..70, tail in "[,}\\] \"x]{0,5}") {
            prop_assume!(v.is_array() || v.is_object());
            let body = if pretty { serde_json::to_vec_pretty(&v).unwrap() } else { serde_json::to_vec(&v).unwrap() };
            let mut buf = vec![b' '; pad];
            buf.extend_from_slice(&body);
            buf.extend_from_slice(tail.as_bytes());
            let want = serde_end(&buf[pad..]).map(|e| e + pad);
            prop_assert_eq!(container_end(&buf, pad), want);
            prop_assert_eq!(container_end_scalar(&buf, pad), want);
            // Truncated anywhere inside, no end is claimed.
            for cut in [pad + 1, pad + body.len() / 2, pad + body.len() - 1] {
                prop_assert_eq!(container_end(&buf[..cut], pad), None);
            }
        }

        #[test]
        fn members_and_blanking_preserve_the_rest(
            m in prop::collection::btree_map("[a-z\"\\\\{}]{0,6}", arb_json(), 0..8),
        ) {
            let v = serde_json::Value::Object(m.into_iter().collect());
            let mut buf = serde_json::to_vec_pretty(&v).unwrap();
            let obj = v.as_object().unwrap();
            let mut found: Vec<(Vec<u8>, usize, usize)> = Vec::new();
            let mut cursor = ObjectCursor::new(&buf, 0).unwrap();
            while let Some((k, s)) = cursor.next_key(&buf) {
                let e = value_end(&buf, s).unwrap();
                found.push((k.to_vec(), s, e));
                cursor.resume_at(e);
            }
            prop_assert_eq!(found.len(), obj.len());
            for ((key, s, e), (k, value)) in found.iter().zip(obj) {
                let expect_key = serde_json::to_string(k).unwrap();
                prop_assert_eq!(key.as_slice(), &expect_key.as_bytes()[1..expect_key.len() - 1]);
                let parsed: serde_json::Value = serde_json::from_slice(&buf[*s..*e]).unwrap();
                prop_assert_eq!(&parsed, value);
            }
            // Blanking every container value leaves a document whose other values are intact.
            for (_, s, e) in &found {
                blank(&mut buf, *s..*e);
            }
            let after: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            for (k, value) in obj {
                if value.is_object() || value.is_array() {
                    prop_assert!(after[k].as_str().is_some_and(|s| s.trim().is_empty()));
                } else {
                    prop_assert_eq!(&after[k], value);
                }
            }
        }
    }

    #[test]
    fn escapes_across_block_boundaries() {
        for n in 0..140 {
            let s = format!("{{\"k\":\"{}\\\\\",\"x\":[\"\\\"]\"]}}", "a".repeat(n));
            let end = container_end(s.as_bytes(), 0);
            assert_eq!(end, Some(s.len()), "padding {n}: {s}");
            assert_eq!(container_end_scalar(s.as_bytes(), 0), Some(s.len()));
        }
    }
}
