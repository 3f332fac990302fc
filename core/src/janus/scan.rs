//! A small validating JSON reader for one event object.
//!
//! It reads the whole value, checks it against the JSON grammar (RFC 8259: strings without
//! raw control characters, valid escapes and surrogate pairs, number syntax, nesting up to
//! [`MAX_DEPTH`]) and hands the few fields heplink uses to the caller as it passes them,
//! borrowing strings from the input when they have no escapes. Everything else is checked
//! and skipped without being decoded. It replaced serde_json here because the generic
//! visitor machinery cost more than the whole rest of the pipeline (see the `breakdown`
//! bench); serde_json is still used for everything that is not on the per-event path.
//!
//! The input is a `&str`: UTF-8 is checked once for the whole event before reading.
//!
//! Why this file is over 500 lines: the scanner is the whole RFC 8259 grammar (strings,
//! escapes, numbers, nesting) with its tests against serde_json; its parts only make sense
//! together.

use std::borrow::Cow;
use std::fmt;

/// How deep objects and arrays may nest (serde_json's default limit too).
pub const MAX_DEPTH: usize = 128;

/// Why an event is not valid JSON, or has a field of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// What was wrong.
    pub msg: &'static str,
    /// Byte offset in the event where it was noticed.
    pub at: usize,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.msg, self.at)
    }
}

impl ScanError {
    /// An error noticed at byte `at`.
    pub fn new(msg: &'static str, at: usize) -> ScanError {
        ScanError { msg, at }
    }
}

/// Result of a read.
pub type R<T> = Result<T, ScanError>;

/// A JSON number as read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// A non-negative integer that fits in u64.
    U(u64),
    /// A negative integer that fits in i64.
    I(i64),
    /// Anything else (fraction, exponent, out of range).
    F(f64),
}

/// A cursor over one JSON text.
pub struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `s`.
    pub fn new(s: &'a str) -> Self {
        Scanner {
            s,
            b: s.as_bytes(),
            pos: 0,
            depth: 0,
        }
    }

    /// A scanner over the same text at byte `pos`.
    pub fn at_pos(&self, pos: usize) -> Scanner<'a> {
        Scanner {
            pos,
            ..Scanner::new(self.s)
        }
    }

    /// Consumes the `[` of an array the caller reads element by element with
    /// [`array_next`](Self::array_next) (the array itself does not count towards the depth).
    pub fn array_open(&mut self) -> R<()> {
        if self.peek()? != b'[' {
            return self.err("expected an array");
        }
        self.pos += 1;
        Ok(())
    }

    /// After `[` (`first`) or after an element: consumes `,` or `]`, and says whether an
    /// element follows.
    pub fn array_next(&mut self, first: bool) -> R<bool> {
        match self.peek()? {
            b']' => {
                self.pos += 1;
                Ok(false)
            }
            _ if first => Ok(true),
            b',' => {
                self.pos += 1;
                Ok(true)
            }
            _ => self.err("expected ',' or ']'"),
        }
    }

    /// The current byte offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    #[cold]
    #[inline(never)]
    fn err<T>(&self, msg: &'static str) -> R<T> {
        Err(ScanError::new(msg, self.pos))
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// The next significant byte (after whitespace), not consumed.
    #[inline]
    pub fn peek(&mut self) -> R<u8> {
        self.ws();
        match self.b.get(self.pos) {
            Some(&c) => Ok(c),
            None => self.err("unexpected end of input"),
        }
    }

    /// Checks that only whitespace is left.
    pub fn end(&mut self) -> R<()> {
        self.ws();
        if self.pos < self.b.len() {
            return self.err("trailing characters after the value");
        }
        Ok(())
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        Ok(())
    }

    /// Consumes `open` and enters a level; true when `close` follows at once (consumed,
    /// level left): the container is empty.
    fn open(&mut self, open: u8, close: u8, what: &'static str) -> R<bool> {
        if self.peek()? != open {
            return self.err(what);
        }
        self.enter()?;
        self.pos += 1;
        if self.peek()? == close {
            self.pos += 1;
            self.depth -= 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// After a member: consumes `,` (true: another follows) or `close` (false: the level
    /// is left).
    fn more(&mut self, close: u8, what: &'static str) -> R<bool> {
        match self.peek()? {
            b',' => {
                self.pos += 1;
                Ok(true)
            }
            c if c == close => {
                self.pos += 1;
                self.depth -= 1;
                Ok(false)
            }
            _ => self.err(what),
        }
    }

    /// Reads an object; `f` gets each key with the scanner before its value and must read
    /// (or [`skip`](Self::skip)) exactly that value.
    pub fn object(&mut self, mut f: impl FnMut(&mut Self, Cow<'a, str>) -> R<()>) -> R<()> {
        if self.open(b'{', b'}', "expected an object")? {
            return Ok(());
        }
        loop {
            if self.peek()? != b'"' {
                return self.err("expected a string key");
            }
            let key = self.string()?;
            if self.peek()? != b':' {
                return self.err("expected ':'");
            }
            self.pos += 1;
            f(self, key)?;
            if !self.more(b'}', "expected ',' or '}'")? {
                return Ok(());
            }
        }
    }

    /// An object, or `null` (returns false).
    pub fn opt_object(&mut self, f: impl FnMut(&mut Self, Cow<'a, str>) -> R<()>) -> R<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Ok(false);
        }
        self.object(f).map(|()| true)
    }

    /// Reads an array; `f` must read (or skip) each element.
    pub fn array(&mut self, mut f: impl FnMut(&mut Self) -> R<()>) -> R<()> {
        if self.open(b'[', b']', "expected an array")? {
            return Ok(());
        }
        loop {
            f(self)?;
            if !self.more(b']', "expected ',' or ']'")? {
                return Ok(());
            }
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> R<()> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.err("invalid literal")
        }
    }

    /// Checks and skips one value of any kind.
    pub fn skip(&mut self) -> R<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => self.object(|s, _| s.skip()),
            b'[' => self.array(|s| s.skip()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number_span().map(|_| ()),
            _ => self.err("expected a value"),
        }
    }

    /// Index of the first `"`, `\` or control character at or after `from`.
    /// Eight bytes at a time (SWAR): most strings of an event are short keys and values,
    /// SDP lines run a few dozen bytes between escapes; a `memchr` call per piece costs
    /// more than it saves there.
    #[inline]
    fn plain_end(&self, from: usize) -> usize {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let b = self.b;
        let mut i = from;
        while let Some(chunk) = b.get(i..i + 8) {
            let x = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            // A byte is flagged when it is < 0x20, or equals '"' or '\\'. Borrows can flag
            // bytes after a flagged one, never before it, so the lowest flag is exact.
            let ctl = x.wrapping_sub(ONES * 0x20) & !x;
            let q = x ^ (ONES * u64::from(b'"'));
            let q = q.wrapping_sub(ONES) & !q;
            let bs = x ^ (ONES * u64::from(b'\\'));
            let bs = bs.wrapping_sub(ONES) & !bs;
            let m = (ctl | q | bs) & HIGH;
            if m != 0 {
                return i + (m.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        while let Some(&c) = b.get(i) {
            if c < 0x20 || c == b'"' || c == b'\\' {
                return i;
            }
            i += 1;
        }
        i
    }

    /// Checks and skips a string (the scanner is at its opening quote).
    fn skip_string(&mut self) -> R<()> {
        self.pos += 1;
        loop {
            self.pos = self.plain_end(self.pos);
            match self.b.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.escape(None)?;
                }
                Some(_) => return self.err("control character in a string"),
                None => return self.err("unterminated string"),
            }
        }
    }

    /// Reads a string (the scanner is at its opening quote): borrowed when it has no
    /// escapes, decoded otherwise.
    pub fn string(&mut self) -> R<Cow<'a, str>> {
        self.pos += 1;
        let start = self.pos;
        self.pos = self.plain_end(start);
        match self.b.get(self.pos) {
            Some(b'"') => {
                self.pos += 1;
                return Ok(Cow::Borrowed(&self.s[start..self.pos - 1]));
            }
            Some(b'\\') => {}
            Some(_) => return self.err("control character in a string"),
            None => return self.err("unterminated string"),
        }
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(&self.s[start..self.pos]);
        loop {
            match self.b.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => self.escape(Some(&mut out))?,
                Some(_) => return self.err("control character in a string"),
                None => return self.err("unterminated string"),
            }
            let from = self.pos;
            self.pos = self.plain_end(from);
            out.push_str(&self.s[from..self.pos]);
        }
    }

    /// One escape sequence (the scanner is at its backslash), decoded into `out` if given.
    fn escape(&mut self, out: Option<&mut String>) -> R<()> {
        let c = match self.b.get(self.pos + 1) {
            Some(&c) => c,
            None => return self.err("unterminated string"),
        };
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4(self.pos + 2)?;
                let (ch, len) = if (0xd800..0xdc00).contains(&hi) {
                    if self.b.get(self.pos + 6) != Some(&b'\\')
                        || self.b.get(self.pos + 7) != Some(&b'u')
                    {
                        return self.err("lone leading surrogate in a \\u escape");
                    }
                    let lo = self.hex4(self.pos + 8)?;
                    if !(0xdc00..0xe000).contains(&lo) {
                        return self.err("invalid low surrogate in a \\u escape");
                    }
                    let cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                    (char::from_u32(cp), 12)
                } else if (0xdc00..0xe000).contains(&hi) {
                    return self.err("lone trailing surrogate in a \\u escape");
                } else {
                    (char::from_u32(hi), 6)
                };
                let Some(ch) = ch else {
                    return self.err("invalid \\u escape");
                };
                if let Some(out) = out {
                    out.push(ch);
                }
                self.pos += len;
                return Ok(());
            }
            _ => return self.err("invalid escape"),
        };
        if let Some(out) = out {
            out.push(ch);
        }
        self.pos += 2;
        Ok(())
    }

    fn hex4(&self, at: usize) -> R<u32> {
        let Some(h) = self.b.get(at..at + 4) else {
            return Err(ScanError::new("unterminated \\u escape", at));
        };
        let mut v = 0u32;
        for &c in h {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(ScanError::new("invalid hex digit in a \\u escape", at)),
            };
            v = v * 16 + u32::from(d);
        }
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.b.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Checks a number's syntax and returns its text and whether it is an integer.
    fn number_span(&mut self) -> R<(&'a str, bool)> {
        let start = self.pos;
        if self.b[self.pos] == b'-' {
            self.pos += 1;
        }
        match self.b.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err("invalid number"),
        }
        let mut integer = true;
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            integer = false;
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        if matches!(self.b.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            integer = false;
            if matches!(self.b.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        Ok((&self.s[start..self.pos], integer))
    }

    /// Reads a number (the scanner is at its first character).
    fn number(&mut self) -> R<Num> {
        let start = self.pos;
        // Fast path: an integer of up to 19 digits (ids, timestamps) read in one pass.
        let neg = self.b[start] == b'-';
        let first = start + usize::from(neg);
        let mut i = first;
        let mut v: u64 = 0;
        while let Some(&c) = self.b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            v = v.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            i += 1;
        }
        let n = i - first;
        if (1..=19).contains(&n)
            && (n == 1 || self.b[first] != b'0')
            && !matches!(self.b.get(i), Some(b'.' | b'e' | b'E'))
        {
            self.pos = i;
            return Ok(if !neg {
                Num::U(v)
            } else {
                // 19 digits always fit in a u64, not always in an i64.
                match i64::try_from(v) {
                    Ok(v) => Num::I(-v),
                    Err(_) if v == i64::MIN.unsigned_abs() => Num::I(i64::MIN),
                    Err(_) => Num::F(-(v as f64)),
                }
            });
        }
        let (text, integer) = self.number_span()?;
        if integer {
            let (neg, digits) = match text.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, text),
            };
            let mut v: u64 = 0;
            let mut fits = true;
            for c in digits.bytes() {
                match v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(c - b'0')))
                {
                    Some(n) => v = n,
                    None => {
                        fits = false;
                        break;
                    }
                }
            }
            if fits {
                if !neg {
                    return Ok(Num::U(v));
                }
                if v <= i64::MAX as u64 + 1 {
                    return Ok(Num::I((v as i64).wrapping_neg()));
                }
            }
        }
        text.parse::<f64>()
            .map(Num::F)
            .map_err(|_| ScanError::new("invalid number", start))
    }

    /// A string or `null`; any other type is an error.
    pub fn opt_str(&mut self) -> R<Option<Cow<'a, str>>> {
        match self.peek()? {
            b'"' => self.string().map(Some),
            b'n' => self.literal(b"null").map(|()| None),
            _ => self.err("expected a string"),
        }
    }

    /// A string, or `None` for a value of any other type (skipped).
    pub fn any_str(&mut self) -> R<Option<Cow<'a, str>>> {
        if self.peek()? == b'"' {
            return self.string().map(Some);
        }
        self.skip().map(|()| None)
    }

    /// A number, a string or `null`, as read.
    pub fn opt_scalar(&mut self) -> R<Option<Scalar<'a>>> {
        match self.peek()? {
            b'"' => self.string().map(|s| Some(Scalar::Str(s))),
            b'n' => self.literal(b"null").map(|()| None),
            b'-' | b'0'..=b'9' => self.number().map(|n| Some(Scalar::Num(n))),
            _ => self.err("expected a number or a string"),
        }
    }

    /// An unsigned integer that fits in a u16, or `null`.
    pub fn opt_u16(&mut self) -> R<Option<u16>> {
        let at = self.pos;
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b'-' | b'0'..=b'9' => match self.number()? {
                Num::U(v) => u16::try_from(v)
                    .map(Some)
                    .map_err(|_| ScanError::new("number out of range for a 16-bit field", at)),
                _ => Err(ScanError::new("expected an unsigned integer", at)),
            },
            _ => self.err("expected an unsigned integer"),
        }
    }
}

/// A scalar value: a number or a string.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// A number.
    Num(Num),
    /// A string.
    Str(Cow<'a, str>),
}

/// The scanner's lenient mode, for cutting a body into events ([`super::split`]): it
/// follows brackets and strings only and checks nothing else, so that a malformed event
/// still ends where its brackets say and the events after it are found. Each event is then
/// read (and checked) by the validating [`Scanner`].
pub(crate) mod lenient {
    /// The first byte at or after `pos` that is not JSON whitespace.
    pub(crate) fn skip_ws(b: &[u8], mut pos: usize) -> usize {
        while pos < b.len() && b[pos].is_ascii_whitespace() {
            pos += 1;
        }
        pos
    }

    /// The end (exclusive) of the object or array starting at `pos`.
    pub(crate) fn value_end(b: &[u8], pos: usize) -> Option<usize> {
        walk(b, pos, false)
    }

    /// The end (exclusive) of an array element starting at `pos`: the next `,` or `]` at
    /// depth 0. Malformed elements end there too, so the next element is still found.
    pub(crate) fn element_end(b: &[u8], pos: usize) -> Option<usize> {
        walk(b, pos, true)
    }

    /// Walks brackets and strings from `pos`: to the end of the value that opens there,
    /// or (`element`) to the `,` or `]` that ends an array element.
    fn walk(b: &[u8], pos: usize, element: bool) -> Option<usize> {
        let mut depth = 0usize;
        let mut i = pos;
        while i < b.len() {
            match b[i] {
                b'"' => i = string_end(b, i)?,
                b'{' | b'[' => depth += 1,
                b',' | b']' if element && depth == 0 => return Some(i),
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if !element && depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        None
    }

    /// The index of the closing quote of the string opening at `pos` (memchr jumps over the
    /// long runs: SDPs are most of the bytes).
    pub(crate) fn string_end(b: &[u8], pos: usize) -> Option<usize> {
        let mut i = pos + 1;
        // Most strings are short (keys, ids): a plain loop beats a memchr call on them.
        let short_end = b.len().min(i + 32);
        while i < short_end {
            match b[i] {
                b'\\' => i += 2,
                b'"' => return Some(i),
                _ => i += 1,
            }
        }
        while i < b.len() {
            i += memchr::memchr2(b'"', b'\\', &b[i..])?;
            match b[i] {
                b'\\' => i += 2,
                _ => return Some(i),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(s: &str) -> bool {
        let mut sc = Scanner::new(s);
        sc.skip().and_then(|()| sc.end()).is_ok()
    }

    #[test]
    fn accepts_what_serde_json_accepts() {
        for s in [
            r#"{"a":[1,-2,3.5e-3,0,-0,1E9,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"],"b":{}}"#,
            " [ ] ",
            r#""é""#,
            "18446744073709551616",
            "-9223372036854775809",
        ] {
            assert!(valid(s), "{s}");
            assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok(),
                "{s}"
            );
        }
    }

    #[test]
    fn rejects_what_serde_json_rejects() {
        for s in [
            "{",
            r#"{"a"}"#,
            r#"{"a":1,}"#,
            "[1,]",
            "01",
            "1.",
            "-",
            "1e",
            ".5",
            "\"a\u{1}\"",
            r#""\x""#,
            r#""\u12""#,
            "tru",
            "nul",
            "{} {}",
            r#"{"a":1}x"#,
            "'a'",
            "\"abc",
        ] {
            assert!(!valid(s), "{s}");
            assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(s).is_err(),
                "{s}"
            );
        }
        // Lone surrogates: serde_json refuses them in strings it decodes (not in values it
        // skips); this scanner refuses them everywhere, as PostgreSQL's jsonb does.
        for s in [r#""\ud800""#, r#""\udc00""#, r#""\ud800\u0041""#] {
            assert!(!valid(s), "{s}");
            assert!(serde_json::from_str::<String>(s).is_err(), "{s}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(!valid(&deep));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(valid(&ok));
    }

    #[test]
    fn strings_borrow_or_decode() {
        let mut sc = Scanner::new(r#""plain""#);
        assert!(matches!(sc.string().unwrap(), Cow::Borrowed("plain")));
        let mut sc = Scanner::new(r#""a\r\nb\u00e9\ud83d\ude00\"""#);
        assert_eq!(sc.string().unwrap(), "a\r\nbé😀\"");
    }

    proptest::proptest! {
        #[test]
        fn plain_end_finds_the_first_special_byte(v in proptest::collection::vec(
            proptest::prop_oneof![0u8..0x80, proptest::strategy::Just(b'"'),
                proptest::strategy::Just(b'\\'), 0x18u8..0x22], 0..40), from in 0usize..10) {
            let s: String = v.iter().map(|&b| b as char).collect();
            let from = from.min(s.len());
            let sc = Scanner::new(&s);
            let naive = (from..s.len())
                .find(|&i| { let c = s.as_bytes()[i]; c < 0x20 || c == b'"' || c == b'\\' })
                .unwrap_or(s.len());
            proptest::prop_assert_eq!(sc.plain_end(from), naive);
        }
    }

    #[test]
    fn numbers() {
        let n = |s: &str| Scanner::new(s).number().unwrap();
        assert_eq!(n("0"), Num::U(0));
        assert_eq!(n("18446744073709551615"), Num::U(u64::MAX));
        assert_eq!(n("18446744073709551616"), Num::F(18446744073709551616.0));
        assert_eq!(n("-9223372036854775808"), Num::I(i64::MIN));
        assert_eq!(n("-5"), Num::I(-5));
        assert_eq!(n("-0"), Num::I(0));
        assert_eq!(n("9999999999999999999"), Num::U(9_999_999_999_999_999_999));
        assert_eq!(
            n("-9999999999999999999"),
            Num::F(-9_999_999_999_999_999_999.0)
        );
        assert_eq!(n("12.5"), Num::F(12.5));
        assert_eq!(n("2.5e2"), Num::F(250.0));
        let mut sc = Scanner::new("70000");
        assert!(sc.opt_u16().is_err());
        let mut sc = Scanner::new("1.0");
        assert!(sc.opt_u16().is_err());
    }
}
